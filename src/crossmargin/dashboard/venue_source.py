"""The margin service's venue (`engine.venue.Venue`) as a dashboard source.

One read (`_read_venue`) takes, under the venue's lock and so between two commits, everything a
page shows: the committed ledger state, the risk parameters in force and the venue's own
long-lived risk engine (the monitor's, which every price tick re-margins), frozen as an
`EngineSnapshot`. The dashboard never re-margins the venue itself.

Live: `wait_for_change` follows the venue's own subscription (the one the service's WebSocket
stream reads) in a worker thread and returns when a later record is committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import numpy as np
import numpy.typing as npt

from crossmargin.core.ledger.money import to_float
from crossmargin.core.ledger.postings import BAD_DEBT, INSURANCE
from crossmargin.core.ledger.state import LedgerConfig, LedgerState
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
        read = _read_venue(self._venue)
        fund = _usd(read, INSURANCE)
        bad_debt = -_usd(read, BAD_DEBT) + 0.0  # + 0.0: no "-0.00" on the page
        return VenueView(
            sequence=read.sequence,
            as_of_ns=read.time_ns,
            engine=read.engine,
            loaded=self._loaded,
            status_code=read.status_code,
            insurance_fund_usd=fund,
            bad_debt_usd=bad_debt,
            withdrawals_gated_reason=(
                f"unresolved bad debt of {bad_debt:,.2f} USD: every withdrawal waits until it is covered"
                if bad_debt > 0.0
                else None
            ),
            history=self._history,
            ledger=lambda: _read_ledger(self._venue),
        )

    async def wait_for_change(self, after: int) -> int:
        venue = self._venue
        subscription = venue.subscribe(from_sequence=after)
        while venue.last_sequence <= after:
            await anyio.to_thread.run_sync(_next, subscription, abandon_on_cancel=True)
        return int(venue.last_sequence)


def _next(subscription: Any) -> None:
    subscription.next(timeout_s=SUBSCRIPTION_POLL_S)


@dataclass(frozen=True, slots=True)
class _VenueRead:
    sequence: int
    time_ns: int
    engine: EngineSnapshot
    status_code: npt.NDArray[np.int8]
    system_units: dict[tuple[str, str], int]  # (system account, asset) -> units
    prices: dict[str, float]
    decimals: dict[str, int]


def _read_venue(venue: Venue) -> _VenueRead:
    """The venue's committed state and its risk engine, frozen, in one critical section: the
    engine's arrays, each account's status and the few system balances.

    Reads the venue's private state (its lock, state and monitor): the one place that does, until
    the venue offers a public whole-book read (/work/notes/dashboard-requests.md)."""
    with venue._lock:
        state = venue._state
        config = venue.config
        monitor = venue._ensure_monitor()
        engine = EngineSnapshot.of(monitor.engine)
        ids = engine.book.account_ids
        # The committed statuses (the venue's state, not the monitor's copy), in the engine's row
        # order: one pass over the accounts, in the critical section.
        status_code = np.fromiter((int(state.status[a]) for a in ids), dtype=np.int8, count=len(ids))
        return _VenueRead(
            sequence=int(venue.last_sequence),
            time_ns=int(state.time_ns),
            engine=engine,
            status_code=status_code,
            system_units={
                (a, k): int(state.balances.get((a, k), 0))
                for a in (INSURANCE, BAD_DEBT)
                for k in config.assets.symbols
            },
            prices={k: float(state.prices[k]) for k in config.assets.symbols},
            decimals=dict(config.decimals),
        )


def _read_ledger(venue: Venue) -> tuple[LedgerState, LedgerConfig]:
    """The whole ledger as a core LedgerState (for a cascade on a copy): O(accounts), on demand."""
    with venue._lock:
        state = venue._state
        config = venue.config
        return state.sub_state(state.traders, config.assets.symbols), config


def _usd(read: _VenueRead, account: str) -> float:
    """A system account's balances at the ledger's prices, USD (display: exact units converted)."""
    return sum(
        to_float(units, read.decimals[k]) * read.prices[k]
        for (holder, k), units in read.system_units.items()
        if holder == account
    )
