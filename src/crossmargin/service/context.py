"""Everything one app instance holds, in one value stored on `app.state` (no module globals)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import anyio
from anyio import CapacityLimiter
from fastapi import FastAPI

from crossmargin.engine.ports import PriceHistorySource
from crossmargin.engine.venue import AccountView, Venue
from crossmargin.service.keys import Verifier
from crossmargin.service.keystore import KeyStore
from crossmargin.service.limits import Admission, RateLimiter, RequestClass
from crossmargin.service.metrics import ServiceMetrics
from crossmargin.service.settings import ServiceSettings

VIEW_CACHE_ACCOUNTS = 100_000


@dataclass(slots=True)
class ServiceContext:
    """The venue behind the API and the service's own parts (keys, limits, metrics).
    `price_history`: the daily closes historical stresses read (None: not configured)."""

    settings: ServiceSettings
    venue: Venue
    keys: KeyStore
    limiter: RateLimiter
    admission: Admission
    metrics: ServiceMetrics = field(default_factory=ServiceMetrics)
    verifier: Verifier = field(default_factory=Verifier)
    clock_ns: Callable[[], int] = time.time_ns
    price_history: PriceHistorySource | None = None
    draining: bool = False  # set at shutdown: /readyz says 503, new commands are refused
    thread_limiters: dict[RequestClass, CapacityLimiter] = field(default_factory=dict)
    views: dict[str, AccountView] = field(default_factory=dict)  # account -> its latest view
    verifications: dict[str, anyio.Lock] = field(default_factory=dict)  # key id -> its scrypt in flight

    def verification_lock(self, key_id: str) -> anyio.Lock:
        """One first-time verification per key at a time (made in the event loop)."""
        lock = self.verifications.get(key_id)
        if lock is None:
            lock = self.verifications[key_id] = anyio.Lock()
        return lock

    def thread_limiter(self, request_class: RequestClass) -> CapacityLimiter:
        """Worker threads for one request class, as many as it admits (made in the event loop)."""
        limiter = self.thread_limiters.get(request_class)
        if limiter is None:
            limiter = CapacityLimiter(self.settings.admission.of(request_class))
            self.thread_limiters[request_class] = limiter
        return limiter

    # -- what the routes ask of the venue, in one place ------------------------------------------

    def readiness(self) -> str | None:
        """None when ready; else why not (draining, or the venue stopped after a failed commit)."""
        if self.draining:
            return "draining: the service is shutting down"
        return self.liveness()

    def liveness(self) -> str | None:
        """None while the venue can serve; else why it cannot until a restart (it stopped after a
        failed commit: its memory may be ahead of the log, and only recovery rebuilds it)."""
        failed = self.venue.failure
        return None if failed is None else f"the venue stopped after a failed commit: {failed}; restart it"

    def account_view(self, account: str) -> AccountView:
        """The account as of the last commit, computed once per commit: a view is a function of
        the committed log, so a repeated read at the same sequence is served from memory (the
        venue's view costs ~10-40 ms of Python: withdrawable amounts are bisections over its
        rules). At most `VIEW_CACHE_ACCOUNTS` accounts are kept."""
        sequence = self.venue.last_sequence
        cached = self.views.get(account)
        if cached is not None and cached.sequence == sequence:
            return cached
        view = self.venue.account(account)
        if len(self.views) >= VIEW_CACHE_ACCOUNTS:
            self.views.clear()
        self.views[account] = view
        return view

    def venue_sequence(self) -> int:
        return int(self.venue.last_sequence)

    def has_account(self, account: str) -> bool:
        return account in self.venue.accounts()

    def decimals(self) -> dict[str, int]:
        """Minor-unit decimals per asset (BTC 8, USDC 6): the API's decimal <-> units boundary."""
        return dict(self.venue.config.decimals)

    def close(self) -> None:
        """Finish the venue's commits in flight and stop it; then write the queued audit rows."""
        try:
            self.venue.close()
        finally:
            self.keys.close()


def context_of(app: FastAPI) -> ServiceContext:
    return cast(ServiceContext, app.state.context)
