"""Helpers of the venue store tests: the desk book's genesis, a store per backend, a pure replay."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from crossmargin.adapters.sql import SqlEventStore
from crossmargin.adapters.sql.runner import genesis_of_book
from crossmargin.adapters.sql.schema import counter, postings
from crossmargin.adapters.sql.store import MIGRATIONS
from crossmargin.engine.journal import LogRecord
from crossmargin.engine.memory import SteppingClock
from crossmargin.engine.ports import EventStore
from crossmargin.engine.venue import Genesis, Venue, VenueSettings
from crossmargin.engine.venue.state import VenueState

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
            state.apply_effects(
                record.decoded()["effects"], sequence=record.sequence, record_hash=record.record_hash
            )
        sequence = page[-1].sequence + 1


def raw_engine(db: tuple[str, str | None]) -> sa.Engine:
    """A plain engine on the same database and schema (no writer lock): another client."""
    url, schema = db
    if schema is None:
        return sa.create_engine(url)
    return sa.create_engine(url, connect_args={"options": f"-csearch_path={schema}"})


def log_at_revision(
    db: tuple[str, str | None], revision: str, records: Sequence[LogRecord], columns: Sequence[str]
) -> sa.Engine:
    """A log as the code at migration `revision` wrote it: the schema migrated to `revision`
    only, the records' event `columns`, their postings and the counter. Returns the raw engine
    (the caller adds what else that revision held, then disposes of it)."""
    url, schema = db
    if schema is not None:
        admin = sa.create_engine(url)
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        admin.dispose()
    engine = raw_engine(db)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        insert = sa.text(
            f"INSERT INTO events ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"
        )
        conn.execute(insert, [{c: getattr(r, c) for c in columns} for r in records])
        rows = [
            {
                "sequence": p.sequence,
                "idx": p.ordinal,
                "debit_account": p.debit_account,
                "credit_account": p.credit_account,
                "asset": p.asset,
                "amount_units": p.amount_units,
                "kind": p.kind,
            }
            for r in records
            for p in r.postings
        ]
        conn.execute(postings.insert(), rows)
        conn.execute(counter.update().where(counter.c.name == "events").values(value=records[-1].sequence))
    return engine
