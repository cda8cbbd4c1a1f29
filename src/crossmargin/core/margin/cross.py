"""Cross margin: one collateral pool per account backs every position.

equity_usd = Σ_k haircut value of balance k + Σ_p value_p
IM = Σ_p IM_p, MM = Σ_p MM_p, each position on its risk-limit schedule (Deribit linear growth or
notional tiers) and options on Deribit's standard rule (`options_rule`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from crossmargin.core.book import Book
from crossmargin.core.checks import check_instance
from crossmargin.core.collateral import value_collateral
from crossmargin.core.margin.options_rule import OptionMarginParams, option_unit_margin
from crossmargin.core.margin.requirements import book_totals, fused_position_requirements
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
        book = scheduled(book, self.params.tier_preset)
        totals = book_totals(book, valuation, self.params.option_margin, market.asset_prices(book.assets))
        return MarginResult.pooled(
            model=self.name,
            collateral_value_usd=totals.collateral_value_usd,
            position_value_usd=totals.position_value_usd,
            initial_margin_usd=totals.initial_margin_usd,
            maintenance_margin_usd=totals.maintenance_margin_usd,
            gross_value_usd=totals.gross_value_usd,
        )

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
