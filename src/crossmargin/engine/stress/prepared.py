"""The venue as the stress sees it (`StressVenue`: the book with a cash asset, its market and
model), shocked markets, and the scenario pass over every account (`screen`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from crossmargin.core.assets import AssetTable
from crossmargin.core.book import Book
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import revalue
from crossmargin.core.scenarios import MIN_SHOCKED_VOL, ScenarioSet, revalue_scenarios
from crossmargin.engine.stress.shocks import CASH_SYMBOL, risk_factors

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class StressVenue:
    """A book prepared for stress: a USD cash asset (where realised PnL, fees and sale proceeds
    settle) appended if the book has none, and today's market with every option priced by
    Black-76 at its implied vol (as `revalue_scenarios` prices scenario P&L: a venue mark off the
    model never shows up as stress P&L)."""

    book: Book
    market: MarketState
    cash_column: int

    @property
    def factors(self) -> tuple[str, ...]:
        return risk_factors(self.book)


def prepare_venue(book: Book, market: MarketState) -> StressVenue:
    """`StressVenue` of a book and its market (docstring there)."""
    if CASH_SYMBOL in book.assets.index:
        cash_column = book.assets.index[CASH_SYMBOL]
    else:
        market = dataclasses.replace(
            market,
            asset_symbols=(*book.assets.symbols, CASH_SYMBOL),
            asset_price_usd=np.append(market.asset_prices(book.assets), 1.0),  # USD cash at par
        )
        book = _with_cash_asset(book)
        cash_column = book.assets.n_assets - 1
    valuation = revalue(book.instruments, market)
    option = book.instruments.is_option
    base = dataclasses.replace(
        market,
        mark_price=np.where(option, np.nan, market.mark_price),
        implied_vol=np.where(option, valuation.implied_vol, market.implied_vol),
        forward_price_usd=np.where(option, valuation.forward_usd, market.forward_price_usd),
    )
    return StressVenue(book=book, market=base, cash_column=cash_column)


def _with_cash_asset(book: Book) -> Book:
    a = book.assets
    pad = np.full((1, a.tier_floor.shape[1]), np.inf)
    pad[0, 0] = 0.0
    assets = AssetTable(
        symbols=(*a.symbols, CASH_SYMBOL),
        tier_floor=np.vstack([a.tier_floor, pad]),
        tier_haircut=np.vstack([a.tier_haircut, np.zeros((1, a.tier_haircut.shape[1]))]),
        tier_value_below=np.vstack([a.tier_value_below, np.zeros((1, a.tier_value_below.shape[1]))]),
        liability_weight=np.append(a.liability_weight, 1.0),
        borrow_rate_apr=np.append(a.borrow_rate_apr, 0.0),
        index={**a.index, CASH_SYMBOL: a.n_assets},
    )
    balances = np.hstack([book.balances, np.zeros((book.n_accounts, 1))])
    return dataclasses.replace(book, assets=assets, balances=balances, isolated_collateral=None)


def shocked_market(
    venue_market: MarketState,
    asset_price_usd: FloatArray,
    book: Book,
    factors: Sequence[str],
    price_factor: FloatArray,
    vol_shift: FloatArray,
) -> tuple[MarketState, FloatArray]:
    """Today's market and collateral prices (K,) moved by a factor per risk factor (F,): index,
    delta-one marks and option forwards of an underlying's complex together, collateral of the same
    name with them; vols shifted additively (never below MIN_SHOCKED_VOL). The collateral prices
    are returned beside the market too (the liquidation rules read them as an array)."""
    column = {f: n for n, f in enumerate(factors)}
    padded = np.append(price_factor, 1.0)
    under = np.array([column.get(u, -1) for u in venue_market.underlyings], dtype=np.int64)
    f_under = padded[under]
    f_inst = f_under[book.instruments.underlying_index]
    option = book.instruments.is_option
    vol = np.where(
        option, np.maximum(venue_market.implied_vol + vol_shift, MIN_SHOCKED_VOL), venue_market.implied_vol
    )
    assets = np.array([column.get(s, -1) for s in book.assets.symbols], dtype=np.int64)
    shocked_asset_usd = asset_price_usd * padded[assets]
    market = dataclasses.replace(
        venue_market,
        index_price_usd=venue_market.index_price_usd * f_under,
        mark_price=venue_market.mark_price * f_inst,  # NaN stays NaN (defaults follow the index)
        forward_price_usd=venue_market.forward_price_usd * f_inst,
        implied_vol=vol,
        asset_price_usd=shocked_asset_usd,
    )
    return market, shocked_asset_usd


def screen(
    venue: StressVenue, scenarios: ScenarioSet, *, funding_carry: FloatArray | None = None
) -> FloatArray:
    """Every account's P&L (A, S) USD in every scenario, without liquidation: one
    `revalue_scenarios` of the set, then the book's two sparse products and its collateral
    (haircut units × price × Δfactor), minus funding paid (Q @ notional·carry)."""
    book, market = venue.book, venue.market
    valuation = revalue(book.instruments, market)
    reval = revalue_scenarios(book.instruments, book.assets, market, valuation, scenarios)
    positions = book.positions.to_scipy()
    term = book.entry_term
    weighted = sp.csr_array(
        (positions.data * term, positions.indices, positions.indptr), shape=positions.shape
    )
    pnl: FloatArray = positions @ reval.d_unit_value_usd + weighted @ reval.d_entry_coefficient_usd
    indptr, asset, units = book.balance_csr
    value = sp.csr_array(
        (units * market.asset_prices(book.assets)[asset], asset, indptr),
        shape=(book.n_accounts, book.assets.n_assets),
    )
    pnl = pnl + value @ reval.d_asset_factor
    if funding_carry is not None:
        pnl = pnl - positions @ (valuation.notional_usd[:, None] * funding_carry.T)
    return np.asarray(pnl)
