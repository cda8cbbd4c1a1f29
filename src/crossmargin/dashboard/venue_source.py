"""The margin service's venue (`engine.venue.Venue`) as a dashboard source.

One public read, `Venue.whole_book()`, taken under the venue's lock and so between two commits,
gives everything a page shows: the committed sequence and time, each account's status, the system
balances, the index prices with their quote ages, and the venue's own long-lived risk engine (the
monitor's, which every price tick re-margins) frozen as an `EngineSnapshot`. The dashboard never
re-margins the venue itself and reads none of its private state.

Live: `wait_for_change` follows the venue's own subscription (the one the service's WebSocket
stream reads) in a worker thread and returns when a later record is committed.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread

from crossmargin.core.ledger.money import to_float
from crossmargin.core.ledger.postings import BAD_DEBT, INSURANCE
from crossmargin.dashboard.source import EngineSnapshot, VenueView
from crossmargin.engine.inputs import LoadedBook
from crossmargin.engine.ports import PriceHistorySource
from crossmargin.engine.venue import PriceState, Venue, WholeBook

# How long one wait on the subscription blocks its worker thread before it looks again.
SUBSCRIPTION_POLL_S = 1.0


class VenueSource:
    """`DashboardSource` over a live `Venue`; `loaded`: the opening book (the model parameters
    compare and explain read: portfolio methodology, tier preset)."""

    def __init__(
        self, venue: Venue, loaded: LoadedBook, *, history: PriceHistorySource | None = None
    ) -> None:
        self._venue = venue
        self._loaded = loaded
        self._history = history
        self._cached: VenueView | None = None

    def view(self) -> VenueView:
        # One read per committed sequence number, shared by every page and live socket: a view is
        # a consistent snapshot at its sequence, so handing out the last one is exact.
        cached = self._cached
        if cached is not None and cached.sequence == self._venue.last_sequence:
            return cached
        self._cached = self._read_view()
        return self._cached

    def _read_view(self) -> VenueView:
        read = self._venue.whole_book()
        fund = _usd(read, INSURANCE)
        bad_debt = -_usd(read, BAD_DEBT) + 0.0  # + 0.0: no "-0.00" on the page
        return VenueView(
            sequence=read.sequence,
            as_of_ns=read.time_ns,
            engine=EngineSnapshot(
                book=read.book,
                market=read.market,
                model=read.model,
                result=read.result,
                valuation=read.valuation,
            ),
            loaded=self._loaded,
            status_code=read.status_code,
            insurance_fund_usd=fund,
            bad_debt_usd=bad_debt,
            prices=self._prices,
            withdrawals_gated_reason=(
                f"unresolved bad debt of {bad_debt:,.2f} USD: every withdrawal waits until it is covered"
                if bad_debt > 0.0
                else None
            ),
            history=self._history,
        )

    def _prices(self) -> tuple[PriceState, ...]:
        states = self._venue.price_states()
        return tuple(states[k] for k in sorted(states))

    async def wait_for_change(self, after: int) -> int:
        venue = self._venue
        subscription = venue.subscribe(from_sequence=after)
        while venue.last_sequence <= after:
            await anyio.to_thread.run_sync(_next, subscription, abandon_on_cancel=True)
        return int(venue.last_sequence)


def _next(subscription: Any) -> None:
    subscription.next(timeout_s=SUBSCRIPTION_POLL_S)


def _usd(read: WholeBook, account: str) -> float:
    """A system account's balances at the ledger's prices, USD (display: exact units converted)."""
    return sum(
        to_float(units, read.config.decimals[k]) * read.prices[k].price_usd
        for (holder, k), units in read.system_units.items()
        if holder == account
    )
