"""Liquidation and bankruptcy prices: closed form for one isolated position (linear, inverse), the
vectorised root finder against it, and against brute-force repricing for an option book."""

from __future__ import annotations

import numpy as np
import pytest

from crossmargin.core.assets import Asset
from crossmargin.core.instruments import Instrument, InstrumentKind, MarginSchedule, Settlement
from crossmargin.core.liquidation.prices import cross_price_levels, isolated_prices
from crossmargin.core.margin import CrossMargin
from crossmargin.core.market import MarketState
from tests.builders import VALUATION_NS, at_par, book_from_rows
from tests.core.liquidation.option_book import IMPLIED_VOLS, option_book

PRICE_TOLERANCE = 1e-9  # relative: bisection to float64 spacing
BRACKET = 1e-6  # relative step either side of a root for the brute-force sign check
FLAT = MarginSchedule.flat(initial_rate=0.10, maintenance_rate=0.05)


def test_isolated_closed_form_by_hand() -> None:
    liq, bank = isolated_prices(
        quantity=[1.0, -1.0, 1000.0],
        contract_size=[1.0, 1.0, 10.0],
        entry_price=[40_000.0, 40_000.0, 40_000.0],
        collateral=[5_000.0, 5_000.0, 0.1],
        maintenance_rate=[0.05, 0.05, 0.05],
        inverse=[False, False, True],
    )
    # long: (40,000 − 5,000) / 0.95; short: (−40,000 − 5,000) / (−1.05); inverse: 10 · 1,050 / 0.35
    assert liq == pytest.approx([35_000 / 0.95, 45_000 / 1.05, 30_000.0], rel=1e-15)
    assert bank == pytest.approx([35_000.0, 45_000.0, 10_000 / 0.35], rel=1e-15)


@pytest.mark.parametrize("side", [1.0, -1.0])
@pytest.mark.parametrize("inverse", [False, True])
def test_cross_root_finder_matches_closed_form(side: float, inverse: bool) -> None:
    perp = Instrument(
        id="P",
        kind=InstrumentKind.PERPETUAL,
        underlying="BTC",
        margin=FLAT,
        settlement=Settlement.INVERSE if inverse else Settlement.LINEAR,
        contract_size=10.0 if inverse else 1.0,
    )
    assets = [Asset(symbol="USDC"), Asset(symbol="BTC")]
    quantity = side * (1000.0 if inverse else 1.0)
    collateral = 0.1 if inverse else 5_000.0
    book = book_from_rows(
        assets=assets,
        instruments=[perp],
        balances={"a": {"BTC" if inverse else "USDC": collateral}},
        positions=[("a", "P", quantity, 40_000.0)],
    )
    market = MarketState.build(book.instruments, valuation_ns=VALUATION_NS, index_prices={"BTC": 40_000.0})
    market = at_par(market, book)
    levels = cross_price_levels(book, market)
    liq, bank = isolated_prices(
        quantity=[quantity],
        contract_size=[perp.contract_size],
        entry_price=[40_000.0],
        collateral=[collateral],
        maintenance_rate=[0.05],
        inverse=[inverse],
    )
    if np.isnan(liq[0]):  # an inverse short backed by coin cannot be liquidated on the way up
        assert np.isnan(levels.liquidation_price[0, 0])
    else:
        assert levels.liquidation_price[0, 0] == pytest.approx(liq[0], rel=PRICE_TOLERANCE)
    if np.isnan(bank[0]):
        assert np.isnan(levels.bankruptcy_price[0, 0])
    else:
        assert levels.bankruptcy_price[0, 0] == pytest.approx(bank[0], rel=PRICE_TOLERANCE)


def test_option_book_levels_agree_with_brute_force_repricing() -> None:
    book = option_book(index_usd=40_000.0, valuation_ns=VALUATION_NS)
    vols = IMPLIED_VOLS

    def gap(account: int, price: float) -> tuple[float, float]:
        """equity − MM and equity by full repricing: the ordinary margin path at this price."""
        market = MarketState.build(
            book.instruments, valuation_ns=VALUATION_NS, index_prices={"BTC": price}, implied_vols=vols
        )
        result = CrossMargin().evaluate(book, at_par(market, book))
        equity = float(result.equity_usd[account])
        return equity - float(result.maintenance_margin_usd[account]), equity

    market = MarketState.build(
        book.instruments, valuation_ns=VALUATION_NS, index_prices={"BTC": 40_000.0}, implied_vols=vols
    )
    levels = cross_price_levels(book, at_par(market, book))
    for account in range(book.n_accounts):
        for which, price in (
            (0, levels.liquidation_price[account, 0]),
            (1, levels.bankruptcy_price[account, 0]),
        ):
            if not np.isfinite(price):  # never reached: no crossing anywhere on a brute-force grid
                assert all(gap(account, p)[which] > 0.0 for p in np.geomspace(40.0, 4e6, 61))
                continue
            inside = gap(account, price * (1.0 + BRACKET if price > 40_000.0 else 1.0 - BRACKET))[which]
            before = gap(account, price * (1.0 - BRACKET if price > 40_000.0 else 1.0 + BRACKET))[which]
            assert inside <= 0.0 < before, (account, which, price)
            # and no crossing nearer to today's price, on a brute-force grid
            grid = np.linspace(40_000.0, price, 50)[:-1]
            assert all(gap(account, p)[which] > 0.0 for p in grid[1:])
