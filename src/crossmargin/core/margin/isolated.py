"""Isolated margin: every position is margined alone, from the collateral assigned to it.

Each position p has its own equity, iso_equity_p = assigned collateral value_p + value_p, and is
liquidated when iso_equity_p < MM_p whatever the rest of the account holds: no netting between
positions, no rescue from the free pool. Collateral comes from the book's per-position
`isolated_collateral` (valued at the account's effective haircut for that asset); a book that
assigns none splits each account's haircut collateral across its positions pro rata to their
initial margin, so isolated and cross see the same money and differ only in netting.

Per account: equity = Σ collateral + Σ values (as cross), IM = Σ IM_p, MM = Σ MM_p,
available = free (unassigned) collateral + Σ_p max(iso_equity_p - IM_p, 0) (excess margin can be
withdrawn from an isolated position, a deficit cannot be covered by another), and
margin_ratio = max_p MM_p / iso_equity_p, the worst position; null if any position has
iso_equity_p <= 0 (that position is bankrupt, and the account is flagged).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from crossmargin.core.book import Book
from crossmargin.core.checks import check_instance
from crossmargin.core.collateral import value_collateral
from crossmargin.core.margin.cross import CrossParams, cross_breakdown
from crossmargin.core.margin.options_rule import option_unit_margin
from crossmargin.core.margin.requirements import position_requirements
from crossmargin.core.margin.result import Breakdown, MarginResult, bankrupt_accounts
from crossmargin.core.margin.tier_presets import scheduled
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import InstrumentValuation, revalue

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class _IsolatedPositions:
    value_usd: FloatArray
    initial_margin_usd: FloatArray
    maintenance_margin_usd: FloatArray
    assigned_usd: FloatArray
    isolated_equity_usd: FloatArray
    free_collateral_usd: FloatArray
    collateral_value_usd: FloatArray


def _isolated_positions(
    book: Book, market: MarketState, valuation: InstrumentValuation, params: CrossParams
) -> _IsolatedPositions:
    rows = book.position_account
    option_margin = option_unit_margin(book.instruments, valuation, params.option_margin)
    req = position_requirements(
        book,
        valuation,
        option_margin,
        instrument_index=book.positions.indices.astype(np.int64),
        quantity=book.positions.data,
        entry_price=book.entry_price,
    )
    price_usd = market.asset_prices(book.assets)
    collateral = value_collateral(book.balances, book.assets, price_usd)
    pool_usd = collateral.total_usd
    if book.isolated_collateral is not None:
        unit_value = (1.0 - collateral.haircut) * price_usd  # (A, K) USD per unit
        assigned = (book.isolated_collateral * unit_value[rows]).sum(axis=1)
    else:
        im_total = np.bincount(rows, weights=req.initial_margin_usd, minlength=book.n_accounts)
        share = req.initial_margin_usd / np.where(im_total > 0.0, im_total, 1.0)[rows]
        assigned = share * pool_usd[rows]
    assigned_total = np.bincount(rows, weights=assigned, minlength=book.n_accounts)
    return _IsolatedPositions(
        value_usd=req.value_usd,
        initial_margin_usd=req.initial_margin_usd,
        maintenance_margin_usd=req.maintenance_margin_usd,
        assigned_usd=assigned,
        isolated_equity_usd=assigned + req.value_usd,
        free_collateral_usd=pool_usd - assigned_total,
        collateral_value_usd=pool_usd,
    )


@dataclass(frozen=True, slots=True)
class IsolatedMargin:
    params: CrossParams = field(default_factory=CrossParams)
    name: str = "isolated"

    def __post_init__(self) -> None:
        check_instance(self.params, CrossParams, "params")

    def evaluate(
        self, book: Book, market: MarketState, valuation: InstrumentValuation | None = None
    ) -> MarginResult:
        valuation = valuation if valuation is not None else revalue(book.instruments, market)
        book = scheduled(book, self.params.tier_preset)
        iso = _isolated_positions(book, market, valuation, self.params)
        rows = book.position_account
        n = book.n_accounts

        def per_account(values: FloatArray) -> FloatArray:
            return np.bincount(rows, weights=values, minlength=n).astype(np.float64)

        position_value = per_account(iso.value_usd)
        equity = iso.collateral_value_usd + position_value
        # A position under water on its own; one opened at the mark with no requirement and no
        # collateral (zero equity, zero MM) is flat, not bankrupt.
        position_bankrupt = (iso.isolated_equity_usd < 0.0) | (
            (iso.isolated_equity_usd <= 0.0) & (iso.maintenance_margin_usd > 0.0)
        )
        maintenance = per_account(iso.maintenance_margin_usd)
        bankrupt = bankrupt_accounts(equity, iso.collateral_value_usd, maintenance, 0.0) | (
            np.bincount(rows, weights=position_bankrupt.astype(np.float64), minlength=n) > 0
        )
        positive = iso.isolated_equity_usd > 0.0
        ratio_p = np.where(
            positive, iso.maintenance_margin_usd / np.where(positive, iso.isolated_equity_usd, 1.0), 0.0
        )
        ratio = np.zeros(n)
        np.maximum.at(ratio, rows, np.where(position_bankrupt, 0.0, ratio_p))
        excess = per_account(np.maximum(iso.isolated_equity_usd - iso.initial_margin_usd, 0.0))
        return MarginResult(
            model=self.name,
            equity_usd=equity,
            collateral_value_usd=iso.collateral_value_usd,
            position_value_usd=position_value,
            initial_margin_usd=per_account(iso.initial_margin_usd),
            maintenance_margin_usd=maintenance,
            available_usd=iso.free_collateral_usd + excess,
            margin_ratio=np.where(bankrupt, np.nan, ratio),
            bankrupt=bankrupt,
        )

    def breakdown(
        self,
        book: Book,
        market: MarketState,
        account_rows: Sequence[int],
        valuation: InstrumentValuation | None = None,
    ) -> Breakdown:
        valuation = valuation if valuation is not None else revalue(book.instruments, market)
        book = scheduled(book, self.params.tier_preset)
        rows = np.asarray(account_rows, dtype=np.int64)
        base = cross_breakdown(book, market, valuation, self.params.option_margin, rows)
        iso = _isolated_positions(book, market, valuation, self.params)
        stored = book.stored_positions(rows)
        return Breakdown(
            account_rows=base.account_rows,
            position_account=base.position_account,
            position_instrument=base.position_instrument,
            quantity=base.quantity,
            entry_price=base.entry_price,
            value_usd=base.value_usd,
            unrealised_pnl_usd=base.unrealised_pnl_usd,
            initial_margin_usd=base.initial_margin_usd,
            maintenance_margin_usd=base.maintenance_margin_usd,
            isolated_equity_usd=iso.isolated_equity_usd[stored],
            balance=base.balance,
            collateral_value_usd=base.collateral_value_usd,
            haircut=base.haircut,
        )
