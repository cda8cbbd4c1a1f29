"""Helpers of the venue store tests: the desk book's genesis, a store per backend, a pure replay."""

from __future__ import annotations

import functools
import os
from pathlib import Path

from crossmargin.adapters.sql import SqlEventStore
from crossmargin.adapters.sql.runner import genesis_of_book
from crossmargin.engine.memory import SteppingClock
from crossmargin.engine.ports import EventStore
from crossmargin.engine.venue import Genesis, Venue, VenueSettings
from crossmargin.engine.venue_state import VenueState

PG_URL = os.environ.get("CROSSMARGIN_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BOOK = str(Path(__file__).resolve().parents[3] / "examples" / "desk.yaml")
START_NS = 1_767_115_875_000_000_000  # the desk's valuation time


@functools.cache
def desk_genesis() -> Genesis:
    return genesis_of_book(BOOK)


def connect(db: tuple[str, str | None]) -> SqlEventStore:
    return SqlEventStore.connect(db[0], schema=db[1])


def open_venue(store: EventStore, **settings: object) -> Venue:
    return Venue.open(
        store,
        desk_genesis(),
        clock=SteppingClock(start_ns=START_NS, step_ns=1_000_000),
        settings=VenueSettings(**settings),  # type: ignore[arg-type]
    )


def replay(store: EventStore) -> VenueState:
    """The fold of every record from the first, no snapshot: what the venue's state must equal."""
    state = VenueState()
    sequence = 1
    while True:
        page = store.read(sequence, 5_000)
        if not page:
            return state
        for record in page:
            state.apply_effects(record.decoded()["effects"], sequence=record.sequence, record_hash=record.record_hash)
        sequence = page[-1].sequence + 1
