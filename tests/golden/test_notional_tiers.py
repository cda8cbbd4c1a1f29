"""Notional tier ("tax bracket") maintenance margin: Binance USDⓈ-M and Hyperliquid.

Both venues publish MM = notional × rate_n - deduction_n with
deduction_n = deduction_{n-1} + floor_n × (rate_n - rate_{n-1}), which is what
`InstrumentTable.tier_maintenance_deduction_usd` computes. Sources:
- Binance FAQ https://www.binance.com/en/support/faq/how-to-calculate-liquidation-price-of-usd%E2%93%A2-m-futures-contracts-b3c689c1f50a44cabb3a84e663b81d93
  ("Maintenance Amount on Level 3 = 250,000 * (1% - 0.5%) + 50 USDT = 1,300 USDT"), bracket table
  from https://developers.binance.com/docs/derivatives/usds-margined-futures/account/rest-api/Notional-and-Leverage-Brackets
  (`cum` = "Auxiliary number for quick calculation").
- Hyperliquid https://hyperliquid.gitbook.io/hyperliquid-docs/trading/margin-tiers
  ("maintenance_margin_rate(tier = n) = (Initial Margin Rate at Maximum leverage at tier n) / 2").

Only maintenance margin is compared: both venues charge IM = notional / chosen leverage, a
trader's choice, while crossmargin's tiered IM applies 1/max_leverage progressively.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from crossmargin.core.instruments import (
    Instrument,
    InstrumentKind,
    InstrumentTable,
    MarginSchedule,
    RateTier,
    tiered_margin_usd,
)
from crossmargin.core.margin import CrossMargin, IsolatedMargin
from crossmargin.core.market import MarketState
from tests.builders import VALUATION_NS, at_par, book_from_rows, usd_asset
from tests.golden import load_golden

REL_TOLERANCE = 1e-12
ABS_TOLERANCE_USD = 1e-6  # deductions reach 4e8 USD; float64 spacing there is 6e-8

BINANCE_2024 = load_golden("binance_btcusdt_brackets_2024.json")
BINANCE_OLD = load_golden("binance_btcusdt_brackets_old.json")
HYPERLIQUID = load_golden("hyperliquid_btc_tiers.json")


def binance_schedule(golden: dict[str, Any]) -> MarginSchedule:
    return MarginSchedule(
        tiers=tuple(
            RateTier(
                above_notional_usd=float(b["notionalFloor"]),
                initial_rate=1.0 / b["initialLeverage"],
                maintenance_rate=b["maintMarginRatio"],
            )
            for b in golden["brackets"]
        )
    )


def hyperliquid_schedule(tiers: list[dict[str, Any]]) -> MarginSchedule:
    return MarginSchedule(
        tiers=tuple(
            RateTier(
                above_notional_usd=float(t["lower_bound_usd"]),
                initial_rate=1.0 / t["max_leverage"],
                maintenance_rate=0.5 / t["max_leverage"],
            )
            for t in tiers
        )
    )


def _table(schedule: MarginSchedule) -> InstrumentTable:
    return InstrumentTable.from_instruments(
        [Instrument(id="BTCUSDT", kind=InstrumentKind.PERPETUAL, underlying="BTC", margin=schedule)]
    )


def _maintenance_usd(table: InstrumentTable, notional_usd: float | np.ndarray) -> np.ndarray:
    notional = np.atleast_1d(np.asarray(notional_usd, dtype=np.float64))
    return tiered_margin_usd(
        notional_usd=notional,
        size_units=np.zeros_like(notional),
        instrument_index=np.zeros(notional.size, dtype=np.int64),
        table=table,
        maintenance=True,
    )


def _book_margin(schedule: MarginSchedule, notional_usd: float, *, index_usd: float = 100_000.0):  # type: ignore[no-untyped-def]
    """A linear BTCUSDT perp (1 BTC contracts) holding notional_usd, evaluated by both models."""
    table = _table(schedule)
    book = book_from_rows(
        assets=[usd_asset("USDT")],
        instruments=table,
        balances={"trader": {"USDT": notional_usd}},
        positions=[("trader", "BTCUSDT", notional_usd / index_usd, index_usd)],
    )
    market = MarketState.build(table, valuation_ns=VALUATION_NS, index_prices={"BTC": index_usd})
    market = at_par(market, book)
    return CrossMargin().evaluate(book, market), IsolatedMargin().evaluate(book, market)


@pytest.mark.parametrize("golden", [BINANCE_2024, BINANCE_OLD], ids=["2024", "old"])
def test_binance_deductions_equal_published_cum(golden: dict[str, Any]) -> None:
    table = _table(binance_schedule(golden))
    cum = np.array([b["cum"] for b in golden["brackets"]], dtype=np.float64)
    np.testing.assert_allclose(
        table.tier_maintenance_deduction_usd[0], cum, rtol=REL_TOLERANCE, atol=ABS_TOLERANCE_USD
    )


@pytest.mark.parametrize("golden", [BINANCE_2024, BINANCE_OLD], ids=["2024", "old"])
def test_binance_every_bracket_uses_published_rate_and_cum(golden: dict[str, Any]) -> None:
    """Inside each bracket, MM = notional × maintMarginRatio - cum (Binance's own formula)."""
    table = _table(binance_schedule(golden))
    for bracket in golden["brackets"]:
        inside = 0.5 * (bracket["notionalFloor"] + bracket["notionalCap"])
        expected = inside * bracket["maintMarginRatio"] - bracket["cum"]
        assert _maintenance_usd(table, inside)[0] == pytest.approx(expected, rel=REL_TOLERANCE), bracket[
            "bracket"
        ]


def test_binance_2024_one_million_notional() -> None:
    """Bracket 3: 1,000,000 × 0.65 % - 950 = 5,550 USDT (= 200 + 2,750 + 2,600 bracket by bracket)."""
    example = BINANCE_2024["examples"][0]
    cross, isolated = _book_margin(binance_schedule(BINANCE_2024), example["notional_usd"])
    assert cross.maintenance_margin_usd[0] == pytest.approx(
        example["maintenance_margin_usd"], rel=REL_TOLERANCE
    )
    assert isolated.maintenance_margin_usd[0] == pytest.approx(
        example["maintenance_margin_usd"], rel=REL_TOLERANCE
    )


def test_binance_faq_five_hundred_thousand() -> None:
    """Binance FAQ, old table: level 3 maintenance amount 1,300; 500,000 × 1 % - 1,300 = 3,700 USDT."""
    table = _table(binance_schedule(BINANCE_OLD))
    assert table.tier_maintenance_deduction_usd[0, 2] == pytest.approx(1_300.0, rel=REL_TOLERANCE)
    cross, _ = _book_margin(binance_schedule(BINANCE_OLD), 500_000.0)
    assert cross.maintenance_margin_usd[0] == pytest.approx(3_700.0, rel=REL_TOLERANCE)
    small = BINANCE_OLD["examples"][1]
    assert _maintenance_usd(table, small["notional_usd"])[0] == pytest.approx(
        small["maintenance_margin_usd"], rel=REL_TOLERANCE
    )


@pytest.mark.parametrize("golden", [BINANCE_2024, BINANCE_OLD], ids=["2024", "old"])
def test_binance_margin_continuous_at_every_floor(golden: dict[str, Any]) -> None:
    """The cum column exists to make MM continuous: just below and at each floor agree."""
    table = _table(binance_schedule(golden))
    floors = np.array([b["notionalFloor"] for b in golden["brackets"][1:]], dtype=np.float64)
    below = _maintenance_usd(table, np.nextafter(floors, 0.0))
    at = _maintenance_usd(table, floors)
    np.testing.assert_allclose(below, at, rtol=1e-12)


def test_hyperliquid_mainnet_btc() -> None:
    """BTC 40x to 150M, 20x above: MMR 1.25 % / 2.5 %, deduction 1,875,000; 200M -> 3,125,000."""
    golden = HYPERLIQUID["mainnet_btc"]
    schedule = hyperliquid_schedule(golden["tiers"])
    np.testing.assert_allclose(
        _table(schedule).tier_maintenance_deduction_usd[0],
        golden["deductions_usd"],
        rtol=REL_TOLERANCE,
        atol=ABS_TOLERANCE_USD,
    )
    for example in golden["examples"]:
        cross, isolated = _book_margin(schedule, example["notional_usd"])
        assert cross.maintenance_margin_usd[0] == pytest.approx(
            example["maintenance_margin_usd"], rel=REL_TOLERANCE
        )
        assert isolated.maintenance_margin_usd[0] == pytest.approx(
            example["maintenance_margin_usd"], rel=REL_TOLERANCE
        )


def test_hyperliquid_testnet_btc_five_tiers() -> None:
    """Testnet BTC: deductions 0, 75, 1,575, 6,575, 26,575; 400,000 -> 400,000/6 - 26,575 = 40,091.67."""
    golden = HYPERLIQUID["testnet_btc"]
    schedule = hyperliquid_schedule(golden["tiers"])
    np.testing.assert_allclose(
        _table(schedule).tier_maintenance_deduction_usd[0],
        golden["deductions_usd"],
        rtol=REL_TOLERANCE,
        atol=ABS_TOLERANCE_USD,
    )
    example = golden["examples"][0]
    cross, _ = _book_margin(schedule, example["notional_usd"])
    assert cross.maintenance_margin_usd[0] == pytest.approx(
        example["maintenance_margin_usd"], rel=REL_TOLERANCE
    )
    assert round(cross.maintenance_margin_usd[0], 2) == 40_091.67
