"""Cross margin: one collateral pool per account backs every position.

equity_usd = Σ_k haircut value of balance k + Σ_p value_p
IM = Σ_p IM_p, MM = Σ_p MM_p, each position on its risk-limit schedule (Deribit linear growth or
notional tiers) and options on Deribit's standard rule (`options_rule`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from crossmargin.core.book import Book
from crossmargin.core.checks import check_instance
from crossmargin.core.collateral import value_collateral
from crossmargin.core.margin.options_rule import OptionMarginParams, option_unit_margin
from crossmargin.core.margin.requirements import (
    book_result,
    fused_position_requirements,
    value_totals,
)
from crossmargin.core.margin.result import Breakdown, MarginResult
from crossmargin.core.margin.tier_presets import check_tier_preset, scheduled
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import InstrumentValuation, revalue


@dataclass(frozen=True, slots=True, kw_only=True)
class CrossParams:
    """Option rule; `tier_preset` a venue's risk-limit tiers for linear perpetuals
    (`tier_presets.TIER_PRESETS`: binance, hyperliquid), None for the book's own schedules."""

    option_margin: OptionMarginParams = field(default_factory=OptionMarginParams)
    tier_preset: str | None = None

    def __post_init__(self) -> None:
        if self.tier_preset is not None:
            check_tier_preset(self.tier_preset)


@dataclass(frozen=True, slots=True)
class CrossMargin:
    """The cross-margin model. `evaluate` reduces the whole book in one pass."""

    params: CrossParams = field(default_factory=CrossParams)
    name: str = "cross"

    def __post_init__(self) -> None:
        check_instance(self.params, CrossParams, "params")

    def evaluate(
        self, book: Book, market: MarketState, valuation: InstrumentValuation | None = None
    ) -> MarginResult:
        valuation = valuation if valuation is not None else revalue(book.instruments, market)
        return self._pooled(book, market, valuation, None)

    def evaluate_rows(
        self, book: Book, market: MarketState, valuation: InstrumentValuation, rows: npt.NDArray[np.int64]
    ) -> MarginResult:
        """`evaluate` of the accounts `rows` (sorted) alone, read in place (`RowEvaluation`): the
        same bits as their rows of the whole-book result, at the cost of their positions only."""
        return self._pooled(book, market, valuation, rows)

    def _pooled(
        self,
        book: Book,
        market: MarketState,
        valuation: InstrumentValuation,
        rows: npt.NDArray[np.int64] | None,
    ) -> MarginResult:
        book = scheduled(book, self.params.tier_preset)
        prices = market.asset_prices(book.assets)
        return book_result(book, valuation, self.params.option_margin, prices, rows, model=self.name)

    def breakdown(
        self,
        book: Book,
        market: MarketState,
        account_rows: Sequence[int],
        valuation: InstrumentValuation | None = None,
    ) -> Breakdown:
        valuation = valuation if valuation is not None else revalue(book.instruments, market)
        rows = np.asarray(account_rows, dtype=np.int64)
        book = scheduled(book, self.params.tier_preset)
        return cross_breakdown(book, market, valuation, self.params.option_margin, rows)

    def revalue_collateral(
        self,
        book: Book,
        market: MarketState,
        valuation: InstrumentValuation,
        rows: npt.NDArray[np.int64],
        prior: MarginResult,
    ) -> MarginResult:
        """The accounts `rows` after a change of collateral prices alone (`CollateralRevaluation`):
        IM, MM and position value are the prior result's (none of them reads a collateral price),
        collateral value and gross value are summed afresh exactly as `book_totals` sums them,
        and equity, available, ratio and bankrupt follow by `MarginResult.pooled`."""
        collateral, gross = collateral_totals(book, valuation, market.asset_prices(book.assets), rows)
        return MarginResult.pooled(
            model=self.name,
            collateral_value_usd=collateral,
            position_value_usd=prior.position_value_usd[rows],
            initial_margin_usd=prior.initial_margin_usd[rows],
            maintenance_margin_usd=prior.maintenance_margin_usd[rows],
            gross_value_usd=gross,
        )


@runtime_checkable
class CollateralRevaluation(Protocol):
    """A model whose requirement and position value never read a collateral price, and whose
    result is pooled (`MarginResult.pooled`) from them, the collateral value and the gross value.
    Only then may an account whose collateral alone was repriced keep its IM, MM and position
    value: cross margin. Not isolated margin (its ratio and bankruptcy are per position, from
    collateral assigned to each) nor the risk-based models (their scenarios move collateral).
    A model opts in by defining the method; any other model is re-evaluated in full."""

    def revalue_collateral(
        self,
        book: Book,
        market: MarketState,
        valuation: InstrumentValuation,
        rows: npt.NDArray[np.int64],
        prior: MarginResult,
    ) -> MarginResult: ...


@runtime_checkable
class RowEvaluation(Protocol):
    """A model that margins some accounts of a book where they lie, without gathering them into a
    sub-book first (cross margin: one fused kernel over the rows). The engine re-margins the
    holders of a moved price this way; any other model is evaluated on the gathered sub-book."""

    def evaluate_rows(
        self, book: Book, market: MarketState, valuation: InstrumentValuation, rows: npt.NDArray[np.int64]
    ) -> MarginResult: ...


def collateral_totals(
    book: Book, valuation: InstrumentValuation, asset_price_usd: npt.NDArray[np.float64], rows: np.ndarray
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(collateral value, gross value) of the accounts `rows`, USD, the same bits as
    `requirements.book_totals` (`requirements.value_totals`, which also sums the position value)."""
    totals = value_totals(book, valuation, asset_price_usd, rows)
    return totals.collateral_value_usd, totals.gross_value_usd


def cross_breakdown(
    book: Book,
    market: MarketState,
    valuation: InstrumentValuation,
    option_params: OptionMarginParams,
    rows: np.ndarray,
) -> Breakdown:
    """Each position's and each collateral asset's contribution, for the given account rows."""
    counts = np.diff(book.positions.indptr)[rows]
    if rows.size == book.n_accounts and np.array_equal(rows, np.arange(book.n_accounts)):
        # The whole book in order (a file run's report): the stored arrays as they are, no gather.
        instrument_index = book.positions.indices.astype(np.int64)
        quantity = book.positions.data
        entry = book.entry_price
    else:
        stored = book.stored_positions(rows)
        instrument_index = book.positions.indices[stored].astype(np.int64)
        quantity = book.positions.data[stored]
        entry = book.entry_price[stored]
    option_margin = option_unit_margin(book.instruments, valuation, option_params)
    req = fused_position_requirements(
        book,
        valuation,
        option_margin,
        instrument_index=instrument_index,
        quantity=quantity,
        entry_price=entry,
    )
    collateral = value_collateral(book.balances[rows], book.assets, market.asset_prices(book.assets))
    return Breakdown(
        account_rows=rows,
        position_account=np.repeat(rows, counts),
        position_instrument=instrument_index,
        quantity=quantity,
        entry_price=entry,
        value_usd=req.value_usd,
        unrealised_pnl_usd=req.unrealised_pnl_usd,
        initial_margin_usd=req.initial_margin_usd,
        maintenance_margin_usd=req.maintenance_margin_usd,
        isolated_equity_usd=np.full(quantity.size, np.nan),
        balance=book.balances[rows],
        collateral_value_usd=collateral.value_usd,
        haircut=collateral.haircut,
    )
