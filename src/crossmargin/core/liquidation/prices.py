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
Black-76 at their implied vols (today's too: a venue mark that Black-76 at the given vol does not
reproduce is replaced by the repriced value on this path). Root finding is vectorised over
accounts: every stored position becomes its own instrument on its own synthetic underlying priced
at S_u · f_account, so one `revalue` + one `book_totals` pass evaluates every account at its own
trial price; `roots.nearest_roots` searches a shared log grid outward from today, then refines each
account's first bracket to CROSS_LOG_TOLERANCE in ln f. The nearest root below and above today
are both kept. An account already past the level reports today's price; one that never reaches it
(within ×1e-4 .. ×1e4) reports NaN. Bankruptcy prices (equity = 0) hold for every margin model:
equity does not depend on the model. Other models' liquidation prices: `model_prices`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from crossmargin.core.book import Book
from crossmargin.core.collateral import value_collateral
from crossmargin.core.instruments import InstrumentTable
from crossmargin.core.liquidation.roots import GapFunction, SidedRoots, nearest_roots
from crossmargin.core.margin.options_rule import OptionMarginParams, option_unit_margin
from crossmargin.core.margin.requirements import book_totals, position_requirements
from crossmargin.core.market import MarketState
from crossmargin.core.position_matrix import PositionMatrix
from crossmargin.core.pricing import revalue

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

SMALL_BOOK_POSITIONS = 10_000  # below this, numpy beats the parallel kernel's launch per trial
CROSS_LOG_TOLERANCE = 1e-12  # ln f: the vectorised path refines to near float64 spacing


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
    """Per account and underlying, shapes (R, U) for the R requested account rows, USD index prices.

    liquidation_price / bankruptcy_price: the root nearest today (today's price if already there);
    the _below / _above pairs: the nearest root on each side (a long is liquidated on the way down,
    a short on the way up, an option book can have both). NaN: not reached within ×1e-4..×1e4, or
    the account has no exposure to the underlying.
    """

    underlyings: tuple[str, ...]
    account_rows: IntArray
    liquidation_price: FloatArray
    bankruptcy_price: FloatArray
    liquidation_below: FloatArray
    liquidation_above: FloatArray
    bankruptcy_below: FloatArray
    bankruptcy_above: FloatArray


@dataclass(frozen=True, slots=True)
class SidedPrices:
    """Index prices of one underlying for R accounts, (R,) each: nearest, below, above."""

    nearest: FloatArray
    below: FloatArray
    above: FloatArray

    @classmethod
    def of(cls, roots: SidedRoots, *, index_price_usd: float, touched: BoolArray) -> SidedPrices:
        def price(log_factor: FloatArray) -> FloatArray:
            value: FloatArray = np.where(touched, index_price_usd * np.exp(log_factor), np.nan)
            return value

        return cls(nearest=price(roots.nearest), below=price(roots.below), above=price(roots.above))


def assemble_levels(
    underlyings: tuple[str, ...],
    rows: IntArray,
    liquidation: list[SidedPrices],
    bankruptcy: list[SidedPrices],
) -> PriceLevels:
    """Stack per-underlying results into (R, U) arrays."""

    def stack(items: list[SidedPrices], name: str) -> FloatArray:
        if not items:
            return np.full((rows.size, len(underlyings)), np.nan)
        return np.stack([getattr(item, name) for item in items], axis=1)

    return PriceLevels(
        underlyings=underlyings,
        account_rows=rows,
        liquidation_price=stack(liquidation, "nearest"),
        bankruptcy_price=stack(bankruptcy, "nearest"),
        liquidation_below=stack(liquidation, "below"),
        liquidation_above=stack(liquidation, "above"),
        bankruptcy_below=stack(bankruptcy, "below"),
        bankruptcy_above=stack(bankruptcy, "above"),
    )


def _take(table: InstrumentTable, rows: npt.NDArray[np.int64]) -> InstrumentTable:
    """One instrument per stored position, each on its own synthetic underlying."""
    n = rows.size
    fields = {}
    for f in dataclasses.fields(table):
        value = getattr(table, f.name)
        if f.init and isinstance(value, np.ndarray):  # derived arrays are derived again
            fields[f.name] = value[rows]
    fields["underlying_index"] = np.arange(n, dtype=np.int64)
    ids = tuple(f"p{j}" for j in range(n))
    return InstrumentTable(ids=ids, underlyings=ids, index={x: j for j, x in enumerate(ids)}, **fields)


def touched_accounts(book: Book, u: int) -> BoolArray:
    """Accounts with a position on underlying u or a balance in the asset of the same name, (A,)."""
    on_u = book.instruments.underlying_index[book.positions.indices] == u
    positions = np.bincount(book.position_account, weights=on_u.astype(np.float64), minlength=book.n_accounts)
    moves = np.array([s == book.instruments.underlyings[u] for s in book.assets.symbols], dtype=bool)
    touched: BoolArray = (positions > 0) | np.any(book.balances[:, moves] != 0.0, axis=1)
    return touched


def cross_price_levels(
    book: Book,
    market: MarketState,
    *,
    option_params: OptionMarginParams | None = None,
    rows: Sequence[int] | IntArray | None = None,
) -> PriceLevels:
    """Liquidation (equity = cross MM) and bankruptcy (equity = 0) prices for the given account
    rows (every account by default) and every underlying, vectorised on the revaluation path
    (module docstring), to CROSS_LOG_TOLERANCE in ln f."""
    picked = np.arange(book.n_accounts, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    book = book if rows is None else book.select(picked)
    liquidation: list[SidedPrices] = []
    bankruptcy: list[SidedPrices] = []
    equity_gap = CrossEquityGap(book, market, option_params=option_params)
    for u in range(len(book.instruments.underlyings)):  # a handful; each solve is vectorised over accounts
        touched = touched_accounts(book, u)
        liquidation_gap, equity = equity_gap.for_underlying(u)
        index = float(market.index_price_usd[u])
        roots = nearest_roots(liquidation_gap, book.n_accounts, tolerance=CROSS_LOG_TOLERANCE)
        liquidation.append(SidedPrices.of(roots, index_price_usd=index, touched=touched))
        roots = nearest_roots(equity, book.n_accounts, tolerance=CROSS_LOG_TOLERANCE)
        bankruptcy.append(SidedPrices.of(roots, index_price_usd=index, touched=touched))
    return assemble_levels(book.instruments.underlyings, picked, liquidation, bankruptcy)


class CrossEquityGap:
    """Equity and equity − cross MM of every account with underlying u's complex moved by each
    account's own factor: every stored position is its own instrument on its own synthetic
    underlying, so one `revalue` + one `book_totals` evaluates all accounts at their trial prices."""

    def __init__(
        self, book: Book, market: MarketState, *, option_params: OptionMarginParams | None = None
    ) -> None:
        self.book = book
        self.market = market
        self.option_params = option_params if option_params is not None else OptionMarginParams()
        base = revalue(book.instruments, market)
        table = book.instruments
        inst = book.positions.indices.astype(np.int64)
        nnz = inst.size
        self.inst = inst
        self.synthetic = _take(table, inst)
        self.positions = PositionMatrix.of(
            book.positions.data, np.arange(nnz, dtype=np.int32), book.positions.indptr, (book.n_accounts, nnz)
        )
        self.spot = base.spot_usd[inst]
        self.mark = np.where(table.is_option[inst], np.nan, base.mark_price[inst])
        self.forward = np.where(table.is_option[inst], base.forward_usd[inst], np.nan)
        self.vol = np.where(table.is_option[inst], base.implied_vol[inst], np.nan)
        price_usd = market.asset_prices(book.assets)
        self.collateral = value_collateral(book.balances, book.assets, price_usd).value_usd  # (A, K), linear

    def for_underlying(self, u: int) -> tuple[GapFunction, GapFunction]:
        """(equity − MM, equity) as functions of ln f per account, underlying u moving."""
        book = self.book
        table = book.instruments
        owner = book.position_account
        on_u = table.underlying_index[self.inst] == u
        moves = np.array([s == table.underlyings[u] for s in book.assets.symbols], dtype=bool)
        fixed_collateral = self.collateral[:, ~moves].sum(axis=1)
        moving_collateral = self.collateral[:, moves].sum(axis=1)
        nnz = self.inst.size
        trial_book = Book(
            account_ids=book.account_ids,
            assets=book.assets,
            instruments=self.synthetic,
            positions=self.positions,
            entry_price=book.entry_price,
            balances=np.zeros_like(book.balances),
        )

        def totals(log_factor: FloatArray) -> tuple[FloatArray, FloatArray]:
            factor = np.exp(log_factor)
            f = np.where(on_u, factor[owner], 1.0)
            trial = MarketState(
                valuation_ns=self.market.valuation_ns,
                underlyings=self.synthetic.underlyings,
                index_price_usd=self.spot * f,
                rate=self.market.rate,
                mark_price=self.mark * f,
                implied_vol=self.vol,
                forward_price_usd=self.forward * f,
                funding_rate_8h=np.zeros(nnz),
            )
            valuation = revalue(self.synthetic, trial)
            if nnz > SMALL_BOOK_POSITIONS:
                # The trial book holds no balances (collateral is `self.collateral`): unit prices.
                result = book_totals(trial_book, valuation, self.option_params, np.ones(book.assets.n_assets))
                value, maintenance = result.position_value_usd, result.maintenance_margin_usd
            else:  # the numpy reference (tests hold it equal to the kernel): no parallel launch
                req = position_requirements(
                    trial_book,
                    valuation,
                    option_unit_margin(self.synthetic, valuation, self.option_params),
                    instrument_index=np.arange(nnz, dtype=np.int64),
                    quantity=book.positions.data,
                    entry_price=book.entry_price,
                )
                value = np.bincount(owner, weights=req.value_usd, minlength=book.n_accounts).astype(
                    np.float64
                )
                maintenance = np.bincount(
                    owner, weights=req.maintenance_margin_usd, minlength=book.n_accounts
                ).astype(np.float64)
            equity = fixed_collateral + moving_collateral * factor + value
            return equity, maintenance

        def liquidation_gap(log_factor: FloatArray, active: BoolArray) -> FloatArray:
            equity, maintenance = totals(log_factor)
            gap: FloatArray = equity - maintenance
            return gap

        def equity_gap(log_factor: FloatArray, active: BoolArray) -> FloatArray:
            return totals(log_factor)[0]

        return liquidation_gap, equity_gap
