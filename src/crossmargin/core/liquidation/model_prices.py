"""Liquidation prices under any margin model: the price of one underlying at which equity falls to
the model's own MM, every other price fixed.

For each underlying u the whole complex of u moves by one factor f (index, delta-one marks, option
forwards, and the collateral asset named u), options repriced by Black-76 at today's implied vols
(the `prices` convention), and the model is evaluated exactly as a margin run would: its own
`evaluate` on the moved book and market (a portfolio model rebuilds its scenario grid around the
moved price, a VaR model applies its historical moves to it, the sensitivity model recomputes its
greeks there). So MM_model(f) is the real requirement at that price, not a linearisation.

Search (`roots.nearest_roots`): every point of the shared log grid is ONE whole-book model
evaluation at that factor (all pending accounts together). Inside the brackets every unresolved
account needs its own trial price, and a model takes one market state per call, so accounts are
grouped by identical trial point and each group is one model evaluation on `book.select(group)`:
the number of calls per refinement step is the number of distinct trial points (one per account
once brackets differ), a handful of steps per account. Every model here margins each account on
its own given the book's instrument and asset tables (which `select` keeps), so an account's result
on the sub-book equals its result on the whole book (the same property `breakdown` relies on).

Tolerance: MODEL_LOG_TOLERANCE in ln f, i.e. the reported price P satisfies equity <= MM at P and
equity > MM somewhere in (P·e^(−tol), P) toward today: P is within a relative 1e-7 of a crossing.
Bankruptcy prices (equity = 0) are model-independent and come from the vectorised cross path.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from crossmargin.core.book import Book
from crossmargin.core.liquidation.prices import (
    CROSS_LOG_TOLERANCE,
    CrossEquityGap,
    PriceLevels,
    SidedPrices,
    assemble_levels,
    touched_accounts,
)
from crossmargin.core.liquidation.roots import GapFunction, nearest_roots
from crossmargin.core.margin import MarginModel
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import InstrumentValuation, revalue

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

MODEL_LOG_TOLERANCE = 1e-7  # ln f: relative price error of a reported liquidation price


def moved_market(
    book: Book, market: MarketState, base: InstrumentValuation, *, underlying: int, factor: float
) -> MarketState:
    """The market with underlying u's complex moved by `factor`: index, delta-one marks and
    option forwards scaled, options at today's implied vols (marks dropped so that Black-76
    reprices them), the collateral asset named u repriced; every other price as today."""
    table = book.instruments
    on_u = table.underlying_index == underlying
    scale = np.where(on_u, factor, 1.0)
    index = market.index_price_usd.copy()
    index[underlying] *= factor
    name = table.underlyings[underlying]
    asset_scale = np.where(np.array([s == name for s in book.assets.symbols], dtype=bool), factor, 1.0)
    return MarketState(
        valuation_ns=market.valuation_ns,
        underlyings=market.underlyings,
        index_price_usd=index,
        rate=market.rate,
        mark_price=np.where(table.is_option, np.nan, base.mark_price * scale),
        implied_vol=np.where(table.is_option, base.implied_vol, np.nan),
        forward_price_usd=base.forward_usd * scale,
        funding_rate_8h=market.funding_rate_8h,
        asset_symbols=market.asset_symbols,
        asset_price_usd=market.asset_prices(book.assets) * asset_scale,
    )


def model_gap(model: MarginModel, book: Book, market: MarketState, *, underlying: int) -> GapFunction:
    """equity − MM_model per account as a function of ln f per account (module docstring):
    accounts sharing a trial point are evaluated together, one model call per distinct point."""
    base = revalue(book.instruments, market)
    n = book.n_accounts

    def evaluate(log_factor: FloatArray, active: BoolArray) -> FloatArray:
        gap = np.full(n, np.nan)
        rows = np.flatnonzero(active)
        points, group = np.unique(log_factor[rows], return_inverse=True)
        for k, point in enumerate(points.tolist()):  # one whole-group model evaluation per point
            members = rows[group == k]
            sub = book if members.size == n else book.select(members)
            moved = moved_market(sub, market, base, underlying=underlying, factor=float(np.exp(point)))
            result = model.evaluate(sub, moved)
            gap[members] = result.equity_usd - result.maintenance_margin_usd
        return gap

    return evaluate


def model_price_levels(
    model: MarginModel,
    book: Book,
    market: MarketState,
    *,
    rows: Sequence[int] | IntArray | None = None,
) -> PriceLevels:
    """Liquidation prices (equity = the model's MM) to MODEL_LOG_TOLERANCE and bankruptcy prices
    (equity = 0, model-independent) for the given account rows (all by default) and every
    underlying. Accounts without exposure to an underlying report NaN for it."""
    picked = np.arange(book.n_accounts, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    book = book if rows is None else book.select(picked)
    equity_gap = CrossEquityGap(book, market)
    liquidation: list[SidedPrices] = []
    bankruptcy: list[SidedPrices] = []
    for u in range(len(book.instruments.underlyings)):  # a handful of underlyings
        touched = touched_accounts(book, u)
        index = float(market.index_price_usd[u])
        roots = nearest_roots(equity_gap.for_underlying(u)[1], book.n_accounts, tolerance=CROSS_LOG_TOLERANCE)
        bankruptcy.append(SidedPrices.of(roots, index_price_usd=index, touched=touched))
        exposed = np.flatnonzero(touched)
        solved = np.full(book.n_accounts, np.nan)
        below, above = solved.copy(), solved.copy()
        if exposed.size:
            sub = book if exposed.size == book.n_accounts else book.select(exposed)
            found = nearest_roots(
                model_gap(model, sub, market, underlying=u), sub.n_accounts, tolerance=MODEL_LOG_TOLERANCE
            )
            solved[exposed], below[exposed], above[exposed] = found.nearest, found.below, found.above
        liquidation.append(
            SidedPrices(
                nearest=index * np.exp(solved), below=index * np.exp(below), above=index * np.exp(above)
            )
        )
    return assemble_levels(book.instruments.underlyings, picked, liquidation, bankruptcy)
