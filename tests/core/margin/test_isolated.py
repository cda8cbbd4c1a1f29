"""Isolated margin on hand-checked books: pro-rata collateral split, per-position bankruptcy."""

from __future__ import annotations

import numpy as np
import pytest

from crossmargin.core.instruments import Instrument, InstrumentKind, InstrumentTable, MarginSchedule
from crossmargin.core.margin import CrossMargin, IsolatedMargin
from crossmargin.core.market import MarketState
from tests.builders import VALUATION_NS, book_from_rows, usd_asset

REL_TOLERANCE = 1e-12
FIVE_PERCENT = MarginSchedule.flat(initial_rate=0.05, maintenance_rate=0.025)
TABLE = InstrumentTable.from_instruments(
    [
        Instrument(id="BTC-PERP", kind=InstrumentKind.PERPETUAL, underlying="BTC", margin=FIVE_PERCENT),
        Instrument(id="ETH-PERP", kind=InstrumentKind.PERPETUAL, underlying="ETH", margin=FIVE_PERCENT),
        Instrument(id="FREE-PERP", kind=InstrumentKind.PERPETUAL, underlying="BTC"),  # zero rates
    ]
)
MARKET = MarketState.build(
    TABLE,
    valuation_ns=VALUATION_NS,
    index_prices={"BTC": 50_000.0, "ETH": 2_500.0},
    asset_symbols=("USDC",),
    asset_prices={"USDC": 1.0},
)


def test_collateral_split_pro_rata_to_initial_margin() -> None:
    """IM 5 % of 20,000 = 1,000 (BTC) and of 60,000 = 3,000 (ETH): 10,000 USDC splits 2,500 / 7,500.
    The BTC long entered at 48,000 is up 0.4 × 2,000 = 800, so its own equity is 3,300."""
    book = book_from_rows(
        assets=[usd_asset()],
        instruments=TABLE,
        balances={"a": {"USDC": 10_000.0}},
        positions=[("a", "BTC-PERP", 0.4, 48_000.0), ("a", "ETH-PERP", -24.0, 2_500.0)],
    )
    result = IsolatedMargin().evaluate(book, MARKET)
    parts = IsolatedMargin().breakdown(book, MARKET, [0])
    np.testing.assert_allclose(parts.initial_margin_usd, [1_000.0, 3_000.0], rtol=REL_TOLERANCE)
    np.testing.assert_allclose(parts.isolated_equity_usd, [3_300.0, 7_500.0], rtol=REL_TOLERANCE)
    assert result.equity_usd[0] == pytest.approx(10_800.0, rel=REL_TOLERANCE)
    assert result.initial_margin_usd[0] == pytest.approx(4_000.0, rel=REL_TOLERANCE)
    # Worst position: ETH, MM 1,500 over its own equity 7,500.
    assert result.margin_ratio[0] == pytest.approx(0.2, rel=REL_TOLERANCE)
    # Cross nets the same money: ratio 2,000 / 10,800.
    assert CrossMargin().evaluate(book, MARKET).margin_ratio[0] == pytest.approx(2_000.0 / 10_800.0)


def test_isolated_position_under_water_flags_account() -> None:
    """A short BTC perp losing more than its share of collateral is bankrupt on its own, although
    the account as a whole is solvent (no rescue from the other position's margin)."""
    book = book_from_rows(
        assets=[usd_asset()],
        instruments=TABLE,
        balances={"a": {"USDC": 10_000.0}},
        positions=[("a", "BTC-PERP", -0.4, 40_000.0), ("a", "ETH-PERP", 24.0, 2_500.0)],
    )
    # BTC: IM 1,000 of 4,000 -> 2,500 of collateral; PnL -0.4 × 10,000 = -4,000 -> own equity -1,500.
    result = IsolatedMargin().evaluate(book, MARKET)
    parts = IsolatedMargin().breakdown(book, MARKET, [0])
    assert parts.isolated_equity_usd[0] == pytest.approx(-1_500.0, rel=REL_TOLERANCE)
    assert result.equity_usd[0] == pytest.approx(6_000.0, rel=REL_TOLERANCE)
    assert bool(result.bankrupt[0])
    assert np.isnan(result.margin_ratio[0])
    assert not CrossMargin().evaluate(book, MARKET).bankrupt[0]


def test_zero_margin_position_at_entry_is_not_bankrupt() -> None:
    """A perp on a zero-rate schedule, just entered at the mark, with 1,000,000 USDC behind it:
    nothing is owed and nothing is lost, so the account is not bankrupt (cross agrees)."""
    book = book_from_rows(
        assets=[usd_asset()],
        instruments=TABLE,
        balances={"a": {"USDC": 1_000_000.0}},
        positions=[("a", "FREE-PERP", 1.0, 50_000.0)],
    )
    assert not CrossMargin().evaluate(book, MARKET).bankrupt[0]
    result = IsolatedMargin().evaluate(book, MARKET)
    assert not result.bankrupt[0]
    assert result.margin_ratio[0] == 0.0
