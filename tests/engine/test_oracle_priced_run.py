"""Margin on oracle prices over the example desk: price_status only on the accounts exposed to a
stale asset, collateral at the worse of spot and smoothed, the uncertainty add-on growing with
the sources' spread, and `crossmargin margin --prices`."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from crossmargin.adapters.feeds import write_quotes
from crossmargin.adapters.files import load_book
from crossmargin.cli.main import app
from crossmargin.core.collateral import haircut_quantity
from crossmargin.core.oracle import NS_PER_SECOND
from crossmargin.engine.inputs import QuoteTable
from crossmargin.engine.margin_run import margin_report, run_margin
from crossmargin.engine.priced_run import (
    PricedRun,
    priced_margin_report,
    run_priced_margin,
    snapshot_from_quotes,
)

DESK = Path(__file__).resolve().parents[2] / "examples" / "desk.yaml"
SOURCES = ("a", "b", "c", "d", "e")
DESK_PRICES = {"BTC": 88_528.93, "ETH": 2_978.73, "SOL": 125.0}
# Float64 sums in another order.
TOLERANCE_USD = 1e-6
VALUATION_NS = load_book(DESK).market.valuation_ns


def quotes(steps: Sequence[tuple[int, Mapping[str, float | Sequence[float]]]]) -> QuoteTable:
    """Rows (second, {asset: one price for all five sources, or one per source}); the last second
    falls on the desk's valuation time (the oracle is read there)."""
    start_ns = VALUATION_NS - max(second for second, _ in steps) * NS_PER_SECOND
    times: list[int] = []
    assets: list[str] = []
    sources: list[str] = []
    prices: list[float] = []
    for second, row in steps:
        for asset, price in row.items():
            per_source = [price] * len(SOURCES) if isinstance(price, float) else list(price)
            for source, value in zip(SOURCES, per_source, strict=True):
                times.append(start_ns + second * NS_PER_SECOND)
                assets.append(asset)
                sources.append(source)
                prices.append(float(value))
    return QuoteTable.from_columns(time_ns=times, asset=assets, source=sources, price_usd=prices)


def _run(table: QuoteTable, model: str | None = None) -> PricedRun:
    return run_priced_margin(load_book(DESK), snapshot_from_quotes(table, as_of_ns=VALUATION_NS), model=model)


def _accounts(report: dict) -> dict[str, dict]:  # type: ignore[type-arg]
    return {a["account_id"]: a for a in report["accounts"]}


def test_oracle_stale_sol_marks_only_the_accounts_exposed_to_it() -> None:
    # All three at the book's prices; then BTC and ETH quoted again 30 s later, SOL silent (stale).
    table = quotes([(0, DESK_PRICES), (30, {"BTC": DESK_PRICES["BTC"], "ETH": DESK_PRICES["ETH"]})])
    priced = _run(table)
    report = priced_margin_report(priced)
    accounts = _accounts(report)
    assert {a: accounts[a]["price_status"] for a in accounts} == {
        "basis-trader": "ok",
        "vol-seller": "ok",
        "directional": "stale",  # SOL-USDC-PERP
        "near-liquidation": "stale",  # SOL-USDC-PERP
    }
    assert {p["asset"]: p["status"] for p in report["prices"]} == {"BTC": "ok", "ETH": "ok", "SOL": "stale"}
    # Unmoved, unspread prices: the unexposed accounts are margined exactly as without an oracle.
    plain = _accounts(margin_report(run_margin(load_book(DESK))))
    for name in ("basis-trader", "vol-seller"):
        assert accounts[name]["oracle_uncertainty_usd"] == 0.0
        for key in ("equity_usd", "initial_margin_usd", "maintenance_margin_usd", "collateral_value_usd"):
            assert accounts[name][key] == pytest.approx(plain[name][key], abs=TOLERANCE_USD)
    # SOL is 30 s old: add-on 1e-4/s × (30 − 10) s = 0.2 % of the SOL exposure (2000 SOL at 125 USD).
    assert accounts["directional"]["oracle_uncertainty_usd"] == pytest.approx(0.002 * 2000 * 125.0, rel=1e-12)
    assert accounts["directional"]["initial_margin_usd"] == pytest.approx(
        plain["directional"]["initial_margin_usd"] + 500.0, abs=TOLERANCE_USD
    )
    # Cross margin: MM grows by the account's own MM/IM share of the add-on.
    grown = accounts["directional"]["maintenance_margin_usd"] - plain["directional"]["maintenance_margin_usd"]
    share = plain["directional"]["maintenance_margin_usd"] / plain["directional"]["initial_margin_usd"]
    assert grown == pytest.approx(share * 500.0, rel=1e-9)


def test_oracle_worse_of_lowers_collateral_and_raises_liabilities() -> None:
    # BTC up 3 % and USDC down 3 % one second later (within the breaker): spot moves at once, the
    # smoothed price (EMA, τ = 300 s) has moved 1/300 of the way.
    table = quotes(
        [
            (0, {**DESK_PRICES, "USDC": 1.0}),
            (1, {**DESK_PRICES, "BTC": DESK_PRICES["BTC"] * 1.03, "USDC": 0.97}),
        ]
    )
    priced = _run(table)
    update = priced.snapshot.update
    btc, usdc = priced.snapshot.assets.index("BTC"), priced.snapshot.assets.index("USDC")
    spot_btc, smooth_btc = float(update.price_usd[btc]), float(update.smoothed_usd[btc])
    spot_usdc, smooth_usdc = float(update.price_usd[usdc]), float(update.smoothed_usd[usdc])
    assert spot_btc == pytest.approx(DESK_PRICES["BTC"] * 1.03) and smooth_btc < spot_btc
    assert spot_usdc == pytest.approx(0.97) and smooth_usdc > spot_usdc
    # The same book at the oracle's spot prices, without the oracle adjustments.
    book = priced.run.loaded.book
    spot = run_margin(priced.run.loaded)
    row = book.account_row("vol-seller")  # holds 4 BTC (5 % haircut: 3.8 BTC count) and 100,000 USDC
    lowered = spot.result.collateral_value_usd[row] - priced.run.result.collateral_value_usd[row]
    assert lowered == pytest.approx(3.8 * (spot_btc - smooth_btc), rel=1e-9)
    assert lowered > 0.0
    row = book.account_row("directional")  # owes 40,000 USDC at liability weight 1.02
    raised = spot.result.collateral_value_usd[row] - priced.run.result.collateral_value_usd[row]
    assert raised == pytest.approx(40_000 * 1.02 * (smooth_usdc - spot_usdc), rel=1e-9)
    assert raised > 0.0
    # The per-asset collateral rows of the report say the same.
    hq = haircut_quantity(book.balances, book.assets)
    rows = _accounts(priced_margin_report(priced))["vol-seller"]["collateral"]
    btc_row = next(c for c in rows if c["asset"] == "BTC")
    assert btc_row["value_usd"] == pytest.approx(
        hq[book.account_row("vol-seller"), 2] * smooth_btc, rel=1e-12
    )


def test_oracle_uncertainty_addon_grows_with_source_spread() -> None:
    def requirement(spread: float) -> np.ndarray:
        btc = DESK_PRICES["BTC"]
        offsets = np.linspace(-spread, spread, len(SOURCES))
        table = quotes([(0, {**DESK_PRICES, "BTC": [btc * (1.0 + o) for o in offsets]})])
        return _run(table).oracle_uncertainty_usd

    narrow, middle, wide = requirement(0.0005), requirement(0.002), requirement(0.008)
    book = load_book(DESK).book
    for name in ("basis-trader", "vol-seller", "near-liquidation"):
        row = book.account_row(name)
        assert 0.0 < narrow[row] < middle[row] < wide[row], name
    # directional trades no BTC: no BTC add-on.
    assert wide[book.account_row("directional")] == 0.0


@pytest.mark.parametrize("model", ["cross", "isolated", "portfolio", "sensitivity"])
def test_oracle_priced_run_every_model_keeps_mm_below_im(model: str) -> None:
    table = quotes([(0, DESK_PRICES), (30, {"BTC": DESK_PRICES["BTC"], "ETH": DESK_PRICES["ETH"]})])
    priced = _run(table, model=model)
    result = priced.run.result
    assert np.all(result.maintenance_margin_usd <= result.initial_margin_usd + 1e-9)
    assert priced_margin_report(priced)["model"] == model


def test_oracle_cli_margin_prices_option(tmp_path: Path) -> None:
    table = quotes([(0, DESK_PRICES), (30, {"BTC": DESK_PRICES["BTC"], "ETH": DESK_PRICES["ETH"]})])
    path = tmp_path / "quotes.csv"
    write_quotes(table, path)
    runner = CliRunner()
    result = runner.invoke(app, ["margin", str(DESK), "--prices", str(path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {a["account_id"]: a["price_status"] for a in report["accounts"]}["directional"] == "stale"
    assert {p["asset"] for p in report["prices"]} == {"BTC", "ETH", "SOL"}
    plain = json.loads(runner.invoke(app, ["margin", str(DESK), "--json"]).stdout)
    assert "prices" not in plain and all("price_status" not in a for a in plain["accounts"])
    table_output = runner.invoke(app, ["margin", str(DESK), "--prices", str(path)])
    assert table_output.exit_code == 0, table_output.output
    assert "stale" in table_output.stdout
    missing = runner.invoke(app, ["margin", str(DESK), "--prices", str(tmp_path / "none.csv")])
    assert missing.exit_code == 2
