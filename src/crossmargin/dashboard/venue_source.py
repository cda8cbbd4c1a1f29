"""The margin service's venue (`engine.venue.Venue`) as a dashboard source.

One read (`_read_venue`) takes, under the venue's lock and so between two commits, everything a
page shows: the committed ledger state, the risk parameters in force and the venue's own
long-lived risk engine (the monitor's, which every price tick re-margins), frozen as an
`EngineSnapshot`. The dashboard never re-margins the venue itself.

Live: `wait_for_change` follows the venue's own subscription (the one the service's WebSocket
stream reads) in a worker thread and returns when a later record is committed.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread

from crossmargin.core.ledger.money import to_float
from crossmargin.core.ledger.postings import BAD_DEBT, INSURANCE
from crossmargin.core.ledger.state import AccountStatus, LedgerConfig, LedgerState
from crossmargin.dashboard.source import EngineSnapshot, VenueView
from crossmargin.engine.inputs import LoadedBook
from crossmargin.engine.ports import PriceHistorySource
from crossmargin.engine.venue import Venue

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

    def view(self) -> VenueView:
        sequence, state, config, engine = _read_venue(self._venue)
        fund = _usd(state, config, INSURANCE)
        bad_debt = -_usd(state, config, BAD_DEBT) + 0.0  # + 0.0: no "-0.00" on the page
        return VenueView(
            sequence=sequence,
            as_of_ns=state.time_ns,
            engine=engine,
            loaded=self._loaded,
            status={t: AccountStatus(int(state.status[t])).name.lower() for t in state.traders},
            insurance_fund_usd=fund,
            bad_debt_usd=bad_debt,
            withdrawals_gated_reason=(
                f"unresolved bad debt of {bad_debt:,.2f} USD: every withdrawal waits until it is covered"
                if bad_debt > 0.0
                else None
            ),
            history=self._history,
            ledger_state=state,
            ledger_config=config,
        )

    async def wait_for_change(self, after: int) -> int:
        venue = self._venue
        subscription = venue.subscribe(from_sequence=after)
        while venue.last_sequence <= after:
            await anyio.to_thread.run_sync(_next, subscription, abandon_on_cancel=True)
        return int(venue.last_sequence)


def _next(subscription: Any) -> None:
    subscription.next(timeout_s=SUBSCRIPTION_POLL_S)


def _read_venue(venue: Venue) -> tuple[int, LedgerState, LedgerConfig, EngineSnapshot]:
    """The venue's committed state and its risk engine, frozen, in one critical section.

    Reads the venue's private state (its lock, state and monitor): the one place that does, until
    the venue offers a public whole-book read (/work/notes/dashboard-requests.md)."""
    with venue._lock:
        state = venue._state
        config = venue.config
        engine = venue._ensure_monitor().engine
        ledger = state.sub_state(state.traders, config.assets.symbols)
        return int(venue.last_sequence), ledger, config, EngineSnapshot.of(engine)


def _usd(state: LedgerState, config: LedgerConfig, account: str) -> float:
    """A system account's balances at the ledger's prices, USD (display: exact units converted)."""
    return sum(
        to_float(state.balances.get((account, k), 0), config.decimals[k]) * state.prices[k]
        for k in config.assets.symbols
    )
