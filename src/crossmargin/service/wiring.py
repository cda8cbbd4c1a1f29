"""Adapters wired into the engine: the SQL event store, the system clock, the opening book -> the
venue. The one place that knows which adapter implements which port."""

from __future__ import annotations

from typing import Any

from crossmargin.service.settings import ServiceSettings


def open_venue(settings: ServiceSettings) -> Any:
    """The venue over `settings.database_url`, recovered from its log; an empty log starts from
    the opening book (`settings.book`)."""
    from crossmargin.adapters.clock import SystemClock
    from crossmargin.adapters.files import load_book
    from crossmargin.adapters.sql import SqlEventStore
    from crossmargin.engine.venue import Venue, VenueSettings, genesis_from_book

    store = SqlEventStore.connect(settings.database_url)
    try:
        genesis = genesis_from_book(load_book(settings.book))
        return Venue.open(store, genesis, clock=SystemClock(), settings=VenueSettings())
    except BaseException:
        store.close()
        raise
