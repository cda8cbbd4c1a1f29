"""Issue 14, `simulate` changes nothing without saying so: dated contracts expire and settle on
the path (an expired put is not "liquidated" months later), every rejected event is in the summary
with its reason, amounts are in asset units per asset, and a price path the ledger would bend
(out of order, before the book, an unknown symbol) is refused before anything runs."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crossmargin.adapters.files import load_book, read_price_path
from crossmargin.cli.main import app
from crossmargin.engine.simulation import run_price_path, simulation_from_book, summary
from crossmargin.errors import InputError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DESK = EXAMPLES / "desk.yaml"
PATH = EXAMPLES / "price_path.csv"  # crosses the 30JAN26 option expiry and the 27MAR26 future's
JAN30 = "2026-01-30T08:00:00Z"


@functools.cache
def _run() -> dict:  # type: ignore[type-arg]
    """The example path over the desk, run once for the tests that read it."""
    sim = simulation_from_book(load_book(DESK))
    run_price_path(sim, read_price_path(PATH))
    return summary(sim) | {"_sim": sim}


def test_dated_contracts_expire_and_settle_on_the_path() -> None:
    report = _run()
    sim = report["_sim"]
    # Settled at the last index price on the path before their expiry (the 2026-01-29 row).
    assert report["expiries"]["BTC-30JAN26-80000-P"] == 70_000.0
    assert report["expiries"]["ETH-30JAN26-2600-P"] == 2_200.0
    assert report["expiries"]["BTC-27MAR26"] == 74_000.0  # the 2026-02-02 row
    # After an expiry no position in it is left and nothing trades it.
    expired_at = {r.account: r.sequence for r in sim.records if r.kind == "expiry"}
    for record in sim.records:
        instrument = record.detail.get("instrument")
        if record.kind == "liquidation_fill" and instrument in expired_at:
            assert record.sequence < expired_at[instrument], record
    assert not any(i in expired_at for (_, i) in sim.state.positions)


def test_a_rejected_event_is_in_the_summary_with_its_reason() -> None:
    report = _run()
    assert report["rejected"] == len(report["rejected_events"]) == 1
    (spot,) = report["rejected_events"]
    assert spot["event"] == "PositionTransfer"
    assert (spot["account"], spot["instrument"]) == ("basis-trader", "BTC-USDC")
    assert spot["problem"] == "spot is held as a balance, not a position"


def test_amounts_are_in_asset_units_per_asset() -> None:
    report = _run()
    # Socialised loss: one amount per asset (USDC and BTC were once summed as raw minor units).
    assert set(report["socialised_loss"]) <= {"BTC", "ETH", "USDC", "USDT"}
    assert all(0.0 < v < 1e7 for v in report["socialised_loss"].values())
    assert "socialised_loss_units" not in report


@pytest.mark.parametrize(
    ("steps", "field"),
    [
        (
            [(1_800_000_000_000_000_000, {"BTC": 80_000.0}), (1_799_000_000_000_000_000, {"BTC": 80_000.0})],
            "prices[1].as_of_ns",
        ),
        ([(1_500_000_000_000_000_000, {"BTC": 80_000.0})], "prices[0].as_of_ns"),
        ([(1_800_000_000_000_000_000, {"btc": 80_000.0})], "prices[0].btc"),
        ([(1_800_000_000_000_000_000, {"BTC": float("nan")})], "prices[0].BTC"),
    ],
)
def test_a_path_the_ledger_would_bend_is_refused_before_it_runs(steps: list, field: str) -> None:  # type: ignore[type-arg]
    sim = simulation_from_book(load_book(DESK))
    events = len(sim.events)
    with pytest.raises(InputError) as raised:
        run_price_path(sim, steps)
    assert raised.value.field == field
    assert len(sim.events) == events  # nothing applied


def test_out_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "trail"
    short = tmp_path / "path.csv"  # two steps: the trail's shape, not the crash
    short.write_text("time,BTC\n2025-12-31T00:00:00Z,86000\n2026-01-01T00:00:00Z,80000\n")
    result = runner.invoke(app, ["simulate", str(DESK), "--prices", str(short), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {
        "events.jsonl",
        "postings.parquet",
        "records.csv",
        "summary.json",
    }
    assert json.loads((out / "summary.json").read_text())["rejected_events"][0]["instrument"] == "BTC-USDC"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["path.csv", "trail"]  # no staging directory left
    again = runner.invoke(app, ["simulate", str(DESK), "--prices", str(short), "--out", str(out)])
    assert again.exit_code == 2
    assert "the directory is not empty" in " ".join(again.stderr.split())
