"""What the dashboard reads, as one small protocol (the dashboard's port), and who is looking.

The dashboard computes nothing of its own: every number on a page comes from the engine objects a
`DashboardSource` hands over (the venue's long-lived `RiskEngine` and the ledger's figures), run
through the engine's own report, compare, explain and liquidation-price functions
(`dashboard.figures`). A source is whatever keeps the venue: the margin service's venue, or
`dashboard.standalone.BookVenue` (the bundled book through the exact ledger, in memory).

    view()                  the venue now, at one sequence number (read it without awaiting)
    wait_for_change(after)  resolves with the first sequence number > after (the live push)

Not thread-safe, like the engine: a source and the pages that read it share one event loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from crossmargin.core.book import Book
from crossmargin.core.ledger.state import AccountStatus
from crossmargin.core.margin import Breakdown, MarginModel, MarginResult
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import InstrumentValuation
from crossmargin.engine.inputs import LoadedBook
from crossmargin.engine.ports import PriceHistorySource
from crossmargin.engine.venue import PriceState

# Margin-call states (core.liquidation.params.AccountStatus codes, in order of severity) by the
# name pages show; accounts at MARGIN_CALL or worse make the queue.
STATUS_NAMES = tuple(s.name.lower() for s in AccountStatus)
QUEUE_FROM = int(AccountStatus.MARGIN_CALL)
QUEUE_STATUSES = STATUS_NAMES[QUEUE_FROM:]


class Viewer(Protocol):
    """An authenticated caller: role "holder" (sees `account` only), "risk" or "admin" (see all).
    The service's `Principal` is one (role is a str enum)."""

    @property
    def role(self) -> str: ...

    @property
    def account(self) -> str | None: ...


class EngineView(Protocol):
    """What the dashboard reads of a risk engine (`engine.risk_engine.RiskEngine` is one)."""

    @property
    def book(self) -> Book: ...

    @property
    def market(self) -> MarketState: ...

    @property
    def model(self) -> MarginModel: ...

    @property
    def result(self) -> MarginResult: ...

    @property
    def valuation(self) -> InstrumentValuation: ...

    def account_row(self, account_id: str) -> int: ...

    def breakdown(self, account_ids: Sequence[str] | None = None) -> Breakdown: ...


@dataclass(frozen=True, slots=True)
class EngineSnapshot:
    """A risk engine's state at one moment: its (immutable) book, market, model and valuation and a
    copy of its result arrays. Heavy figures run on one in a worker thread while the event loop
    goes on updating the live engine."""

    book: Book
    market: MarketState
    model: MarginModel
    result: MarginResult
    valuation: InstrumentValuation

    @classmethod
    def of(cls, engine: EngineView) -> EngineSnapshot:
        result = engine.result
        copied = {
            f.name: np.array(getattr(result, f.name)) for f in dataclasses.fields(result) if f.name != "model"
        }
        return cls(
            book=engine.book,
            market=engine.market,
            model=engine.model,
            result=dataclasses.replace(result, **copied),  # type: ignore[arg-type]
            valuation=engine.valuation,
        )

    def account_row(self, account_id: str) -> int:
        return self.book.account_row(account_id)

    def breakdown(self, account_ids: Sequence[str] | None = None) -> Breakdown:
        rows = (
            range(self.book.n_accounts)
            if account_ids is None
            else [self.book.account_row(a) for a in account_ids]
        )
        return self.model.breakdown(self.book, self.market, list(rows), self.valuation)


@dataclass(frozen=True, slots=True, kw_only=True)
class VenueView:
    """The venue at sequence number `sequence` (the last event in its log), as of `as_of_ns`.

    `engine`: the venue's risk engine (book, market, model, result), read, never written, by the
    dashboard. `loaded`: the book file's parameters (cross params, portfolio methodology, tier
    preset) with the engine's current book and market, for the engine's compare/explain reports.
    `status_code`: each account's margin-call state (AccountStatus codes, int8), aligned with
    `engine.book.account_ids`, from the ledger's state machine. Insurance fund and bad debt: USD
    at today's prices (the ledger's exact units converted for display). `prices()`: the venue's
    own index prices with their quote age and status (`engine.venue.PriceState`: valid, or stale
    past the venue's limit) read when called, so an age is never that of a cached view; empty when
    the source keeps none.
    `withdrawals_gated_reason`: venue-wide, None when open. `history`: daily closes for the VaR
    rows of compare, the historical stress windows and back-tests, None when the venue has none."""

    sequence: int
    as_of_ns: int
    engine: EngineView
    loaded: LoadedBook
    status_code: npt.NDArray[np.int8]
    insurance_fund_usd: float
    bad_debt_usd: float
    prices: Callable[[], tuple[PriceState, ...]] = field(default=lambda: (), repr=False)
    withdrawals_gated_reason: str | None = None
    history: PriceHistorySource | None = field(default=None, repr=False)

    def status_of(self, account_id: str) -> str:
        return STATUS_NAMES[int(self.status_code[self.engine.account_row(account_id)])]


def snapshot(view: VenueView) -> VenueView:
    """The view with its engine frozen (`EngineSnapshot`): safe to hand to a worker thread."""
    return dataclasses.replace(view, engine=EngineSnapshot.of(view.engine))


class DashboardSource(Protocol):
    def view(self) -> VenueView: ...

    async def wait_for_change(self, after: int) -> int: ...
