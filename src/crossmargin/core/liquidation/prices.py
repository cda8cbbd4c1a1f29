"""Liquidation and bankruptcy prices.

Isolated positions, closed form (m = maintenance rate, C = collateral in settlement units):
    linear   equity(P) = C + q·cs·(P − E),  MM(P) = m·|q|·cs·P
             liquidation P = (q·cs·E − C) / (q·cs − m·|q|·cs),   bankruptcy P = E − C / (q·cs)
    inverse  equity(P) = C + q·cs·(1/E − 1/P) coin,  MM(P) = m·|q|·cs / P coin
             liquidation P = cs·(q + m·|q|) / (C + q·cs/E),      bankruptcy P = q·cs / (C + q·cs/E)
A price that does not exist (denominator <= 0: the position cannot be liquidated on that side)
is NaN.

Cross accounts: for each account and underlying u, the price of u at which equity = MM
(liquidation) or equity = 0 (bankruptcy), every other price fixed. The whole complex of u moves
by one factor f (index, delta-one marks, option forwards, collateral in u), options repriced by
Black-76 at their implied vols. Root finding is vectorised over accounts: every stored position
becomes its own instrument on its own synthetic underlying priced at S_u · f_account, so one
`revalue` + one `book_totals` pass evaluates every account at its own trial price; bisection on
log f, below and above today's price, keeps the root nearest today. An account already past the
level reports today's price; one that never reaches it (within ×1e-4 .. ×1e4) reports NaN.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from crossmargin.core.book import Book
from crossmargin.core.collateral import value_collateral
from crossmargin.core.instruments import InstrumentTable
from crossmargin.core.margin.options_rule import OptionMarginParams
from crossmargin.core.margin.requirements import book_totals
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import revalue

FloatArray = npt.NDArray[np.float64]

BISECTION_STEPS = 64  # log f over [ln 1e-4, 0]: width 9.2 / 2**64, below float64 spacing
FACTOR_RANGE = 1e4


def isolated_prices(
    *,
    quantity: npt.ArrayLike,
    contract_size: npt.ArrayLike,
    entry_price: npt.ArrayLike,
    collateral: npt.ArrayLike,
    maintenance_rate: npt.ArrayLike,
    inverse: npt.ArrayLike,
) -> tuple[FloatArray, FloatArray]:
    """(liquidation, bankruptcy) price per isolated position, closed form (module docstring)."""
    q, cs, e, c, m = (
        np.asarray(x, dtype=np.float64)
        for x in (quantity, contract_size, entry_price, collateral, maintenance_rate)
    )
    inv = np.asarray(inverse, dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        lin_liq = (q * cs * e - c) / (q * cs - m * np.abs(q) * cs)
        lin_bank = e - c / (q * cs)
        coin = c + q * cs / e
        inv_liq = cs * (q + m * np.abs(q)) / coin
        inv_bank = q * cs / coin
    liquidation = np.where(inv, inv_liq, lin_liq)
    bankruptcy = np.where(inv, inv_bank, lin_bank)
    liquidation = np.where(np.isfinite(liquidation) & (liquidation > 0.0), liquidation, np.nan)
    bankruptcy = np.where(np.isfinite(bankruptcy) & (bankruptcy > 0.0), bankruptcy, np.nan)
    return liquidation, bankruptcy


@dataclass(frozen=True, slots=True)
class PriceLevels:
    """Per account and underlying, shapes (A, U), USD: liquidation and bankruptcy index prices."""

    underlyings: tuple[str, ...]
    liquidation_price: FloatArray
    bankruptcy_price: FloatArray


def _take(table: InstrumentTable, rows: npt.NDArray[np.int64]) -> InstrumentTable:
    """One instrument per stored position, each on its own synthetic underlying."""
    n = rows.size
    fields = {}
    for f in dataclasses.fields(table):
        value = getattr(table, f.name)
        if isinstance(value, np.ndarray):
            fields[f.name] = value[rows]
    fields["underlying_index"] = np.arange(n, dtype=np.int64)
    ids = tuple(f"p{j}" for j in range(n))
    return InstrumentTable(ids=ids, underlyings=ids, index={x: j for j, x in enumerate(ids)}, **fields)


def cross_price_levels(
    book: Book, market: MarketState, *, option_params: OptionMarginParams | None = None
) -> PriceLevels:
    """Liquidation (equity = MM) and bankruptcy (equity = 0) prices for every account and
    underlying, by vectorised bisection on the revaluation path (module docstring)."""
    option_params = option_params if option_params is not None else OptionMarginParams()
    base = revalue(book.instruments, market)
    table = book.instruments
    owner = book.position_account
    inst = book.positions.indices.astype(np.int64)
    nnz = inst.size
    synthetic = _take(table, inst)
    positions = sp.csr_array(
        (book.positions.data, np.arange(nnz, dtype=np.int32), book.positions.indptr),
        shape=(book.n_accounts, nnz),
    )
    spot = base.spot_usd[inst]
    mark = np.where(table.is_option[inst], np.nan, base.mark_price[inst])
    forward = np.where(table.is_option[inst], base.forward_usd[inst], np.nan)
    vol = np.where(table.is_option[inst], base.implied_vol[inst], np.nan)
    collateral = value_collateral(book.balances, book.assets).value_usd  # (A, K), linear in price
    zero_balances = np.zeros_like(book.balances)

    def levels_for(u: int) -> tuple[FloatArray, FloatArray]:
        on_u = table.underlying_index[inst] == u
        moves = np.array([s == table.underlyings[u] for s in book.assets.symbols])
        fixed_collateral = collateral[:, ~moves].sum(axis=1)
        moving_collateral = collateral[:, moves].sum(axis=1)
        touched = (np.bincount(owner, weights=on_u.astype(np.float64), minlength=book.n_accounts) > 0) | (
            moving_collateral != 0.0
        )

        def gap(factor: FloatArray) -> tuple[FloatArray, FloatArray]:
            f = np.where(on_u, factor[owner], 1.0)
            trial = MarketState(
                valuation_ns=market.valuation_ns,
                underlyings=synthetic.underlyings,
                index_price_usd=spot * f,
                rate=market.rate,
                mark_price=mark * f,
                implied_vol=vol,
                forward_price_usd=forward * f,
                funding_rate_8h=np.zeros(nnz),
            )
            valuation = revalue(synthetic, trial)
            trial_book = Book(
                account_ids=book.account_ids,
                assets=book.assets,
                instruments=synthetic,
                positions=positions,
                entry_price=book.entry_price,
                balances=zero_balances,
            )
            totals = book_totals(trial_book, valuation, option_params)
            equity = fixed_collateral + moving_collateral * factor + totals.position_value_usd
            return equity - totals.maintenance_margin_usd, equity

        def solve(which: int) -> FloatArray:
            today_gap = gap(np.ones(book.n_accounts))[which]
            best = np.full(book.n_accounts, np.nan)
            best_distance = np.full(book.n_accounts, np.inf)
            for direction in (-1.0, 1.0):
                far = np.full(book.n_accounts, direction * np.log(FACTOR_RANGE))
                crosses = gap(np.exp(far))[which] <= 0.0
                low = np.zeros(book.n_accounts)  # log f with gap > 0
                high = far.copy()  # log f with gap <= 0 (where it crosses)
                for _ in range(BISECTION_STEPS):
                    mid = 0.5 * (low + high)
                    below = gap(np.exp(mid))[which] <= 0.0
                    high = np.where(below, mid, high)
                    low = np.where(below, low, mid)
                closer = crosses & (np.abs(high) < best_distance)
                best = np.where(closer, np.exp(high), best)
                best_distance = np.where(closer, np.abs(high), best_distance)
            best = np.where(today_gap <= 0.0, 1.0, best)
            return np.where(touched, best * market.index_price_usd[u], np.nan)

        return solve(0), solve(1)

    n_under = len(table.underlyings)
    liquidation = np.full((book.n_accounts, n_under), np.nan)
    bankruptcy = np.full((book.n_accounts, n_under), np.nan)
    for u in range(n_under):  # a handful of underlyings; each solve is vectorised over accounts
        liquidation[:, u], bankruptcy[:, u] = levels_for(u)
    return PriceLevels(
        underlyings=table.underlyings, liquidation_price=liquidation, bankruptcy_price=bankruptcy
    )
