"""The audit trail replays: events written as JSON lines or Parquet come back identical, and
replaying them reproduces the run's final state bit for bit; the CLI writes the trail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crossmargin.adapters.eventlog import JsonLinesEventSink, read_events, write_events
from crossmargin.adapters.files import load_book, read_price_path
from crossmargin.cli.main import app
from crossmargin.core.ledger.apply import replay
from crossmargin.core.ledger.state import LedgerState
from crossmargin.engine.memory import ListEventSink
from crossmargin.engine.ports import EventSink
from crossmargin.engine.simulation import run_price_path, simulation_from_book
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
            **dict(
                zip(
                    sim.config.assets.symbols,
                    load_book(DESK).market.asset_prices(sim.config.assets).tolist(),
                    strict=True,
                )
            ),
        },
    )
    assert replay(start, events, sim.config).digest() == sim.state.digest()


def test_the_json_lines_sink_streams_the_log_write_events_writes(tmp_path: Path) -> None:
    """The EventSink adapter writes each accepted event as it is applied: the same file as
    `write_events` after the run, and the same events the in-memory sink keeps."""
    prices = tmp_path / "path.csv"
    prices.write_text(PATH_CSV)
    streamed = tmp_path / "streamed.jsonl"
    kept = ListEventSink()
    with JsonLinesEventSink(streamed) as sink:
        assert isinstance(sink, EventSink)
        sim = simulation_from_book(load_book(DESK), adl_policy="queue", sink=sink)
        run_price_path(sim, read_price_path(prices))
    again = simulation_from_book(load_book(DESK), adl_policy="queue", sink=kept)
    run_price_path(again, read_price_path(prices))
    written = tmp_path / "written.jsonl"
    write_events(written, sim.events)
    assert streamed.read_text() == written.read_text()
    assert kept.events == sim.events == read_events(streamed)
    assert len(sim.events) > 10  # deposits, transfers, price updates, liquidations


def test_bad_price_path_cell_names_file_and_line(tmp_path: Path) -> None:
    prices = tmp_path / "path.csv"
    prices.write_text("time,BTC\n2025-12-30T18:00:00Z,85000\n2025-12-30T19:00:00Z,lots\n")
    with pytest.raises(InputError, match=r"path.csv: line 3, column BTC"):
        read_price_path(prices)
    (tmp_path / "no_time.csv").write_text("when,BTC\n1,2\n")
    with pytest.raises(InputError, match=r"time"):
        read_price_path(tmp_path / "no_time.csv")


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


def test_a_run_that_fails_leaves_no_event_log(tmp_path: Path) -> None:
    """Nothing half-written: the log is published only when the run completes."""
    target = tmp_path / "events.jsonl"
    with pytest.raises(InputError), JsonLinesEventSink(target) as sink:
        sim = simulation_from_book(load_book(DESK), adl_policy="queue", sink=sink)
        assert sim.events  # the book's deposits and transfers were streamed to the partial file
        assert sink.partial_path.exists() and not target.exists()
        raise InputError("prices", "a price path that fails half way")
    assert not target.exists() and not sink.partial_path.exists()
