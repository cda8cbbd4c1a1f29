"""The audit trail replays: events written as JSON lines or Parquet come back identical, and
replaying them reproduces the run's final state bit for bit; the CLI writes the trail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crossmargin.adapters.eventlog import read_events, write_events
from crossmargin.adapters.files import load_book
from crossmargin.cli.main import app
from crossmargin.core.ledger.apply import replay
from crossmargin.core.ledger.state import LedgerState
from crossmargin.engine.simulation import read_price_path, run_price_path, simulation_from_book
from crossmargin.errors import InputError

DESK = Path(__file__).resolve().parents[3] / "examples" / "desk.yaml"
PATH_CSV = "time,BTC,ETH,SOL\n2025-12-30T18:00:00Z,85000,2900,120\n2025-12-30T19:00:00Z,72000,2400,95\n2025-12-30T20:00:00Z,65000,2100,80\n"


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_simulation_audit_trail_replays_bit_for_bit(tmp_path: Path, suffix: str) -> None:
    prices = tmp_path / "path.csv"
    prices.write_text(PATH_CSV)
    sim = simulation_from_book(load_book(DESK), adl_policy="pro_rata", insurance_fund_usd=1_000.0)
    run_price_path(sim, read_price_path(prices))
    assert any(r.kind == "liquidation_fill" for r in sim.records)
    log = tmp_path / f"events{suffix}"
    write_events(log, sim.events)
    events = read_events(log)
    assert events == sim.events
    start = LedgerState.open(
        sim.config,
        sim.state.traders,
        {
            **dict(
                zip(
                    sim.config.instruments.underlyings,
                    load_book(DESK).market.index_price_usd.tolist(),
                    strict=True,
                )
            ),
            **dict(zip(sim.config.assets.symbols, sim.config.assets.price_usd.tolist(), strict=True)),
        },
    )
    assert replay(start, events, sim.config).digest() == sim.state.digest()


def test_bad_event_line_names_line_and_field(tmp_path: Path) -> None:
    log = tmp_path / "bad.jsonl"
    log.write_text(
        '{"type": "Deposit", "account": "a", "asset": "USDC", "amount_units": 1, "as_of_ns": 0}\n{"type": "Teleport"}\n'
    )
    with pytest.raises(InputError, match=r"bad.jsonl:2: event.type"):
        read_events(log)


def test_cli_simulate_writes_trail_and_summary(tmp_path: Path) -> None:
    prices = tmp_path / "path.csv"
    prices.write_text(PATH_CSV)
    out = tmp_path / "trail"
    result = CliRunner().invoke(
        app,
        ["simulate", str(DESK), "--prices", str(prices), "--adl", "risk_aware", "--out", str(out), "--json"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["liquidation_fills"] > 0
    assert {p.name for p in out.iterdir()} == {
        "events.jsonl",
        "postings.parquet",
        "records.csv",
        "summary.json",
    }
    bad = CliRunner().invoke(app, ["simulate", str(DESK), "--prices", str(prices), "--adl", "nope"])
    assert bad.exit_code == 2 and "adl_policy" in bad.output


def test_margin_json_reports_liquidation_and_bankruptcy_prices() -> None:
    result = CliRunner().invoke(app, ["margin", str(DESK), "--json", "--levels"])
    assert result.exit_code == 0, result.output
    accounts = json.loads(result.output)["accounts"]
    for account in accounts:
        assert set(account["liquidation_price"]) == {"BTC", "ETH", "SOL"}
        assert set(account["bankruptcy_price"]) == {"BTC", "ETH", "SOL"}
    near = next(a for a in accounts if a["account_id"] == "near-liquidation")
    assert near["bankruptcy_price"]["BTC"] < near["liquidation_price"]["BTC"] < 88_528.93
