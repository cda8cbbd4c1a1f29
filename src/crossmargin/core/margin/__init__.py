"""Margin models. Each takes a whole book and a market state and returns a MarginResult.

model.evaluate(book, market) -> MarginResult           per-account totals, one pass
model.breakdown(book, market, account_rows) -> Breakdown   contributions, on demand
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from crossmargin.core.book import Book
from crossmargin.core.margin.cross import CrossMargin, CrossParams
from crossmargin.core.margin.isolated import IsolatedMargin
from crossmargin.core.margin.options_rule import OptionMarginParams
from crossmargin.core.margin.result import Breakdown, MarginResult
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import InstrumentValuation


class MarginModel(Protocol):
    @property
    def name(self) -> str: ...

    def evaluate(
        self, book: Book, market: MarketState, valuation: InstrumentValuation | None = None
    ) -> MarginResult: ...

    def breakdown(
        self,
        book: Book,
        market: MarketState,
        account_rows: Sequence[int],
        valuation: InstrumentValuation | None = None,
    ) -> Breakdown: ...


__all__ = [
    "Breakdown",
    "CrossMargin",
    "CrossParams",
    "IsolatedMargin",
    "MarginModel",
    "MarginResult",
    "OptionMarginParams",
]
