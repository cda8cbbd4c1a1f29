"""Revision 0002 (events.actor): a log written at revision 0001 is migrated in place, stays readable
and verifies; records written after carry their actor, inside the hash chain."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from crossmargin.adapters.sql.schema import events
from crossmargin.engine.memory import MemoryEventStore
from crossmargin.engine.venue import Deposit
from crossmargin.errors import CorruptLogError
from tests.adapters.sql.support import connect, log_at_revision, open_venue, raw_engine

OLD_COLUMNS = (
    "sequence",
    "idempotency_key",
    "kind",
    "as_of_ns",
    "body_sha256",
    "payload",
    "previous_hash",
    "record_hash",
)


def _old_log(db: tuple[str, str | None]) -> str:
    """A log at revision 0001 written as the code of then wrote it (no actor); its state digest."""
    memory = MemoryEventStore()
    with open_venue(memory) as venue:
        for n in range(3):
            venue.execute(
                Deposit(
                    idempotency_key=f"old-{n}", account="vol-seller", asset="USDC", amount_units=1_000_000
                )
            )
        digest = venue.state_digest()
        records = memory.read(1, 100)
    engine = log_at_revision(db, "0001_event_log", records, OLD_COLUMNS)
    with engine.connect() as conn:
        assert "actor" not in {c["name"] for c in sa.inspect(conn).get_columns("events")}
    engine.dispose()
    return digest


def test_actor_migration_keeps_an_old_log_readable(db: tuple[str, str | None]) -> None:
    digest = _old_log(db)
    store = connect(db)  # migrates 0001 -> 0002
    with open_venue(store) as venue:
        assert venue.recovery.problems == ()
        assert venue.state_digest() == digest
        assert all(e.actor is None for e in venue.log(1, 100))
        ack = venue.execute(
            Deposit(idempotency_key="new", account="vol-seller", asset="USDC", amount_units=5),
            actor="c7fea3f03b90",
        )
    with open_venue(connect(db)) as again:  # old and new records verify together
        assert again.recovery.problems == ()
        entries = {e.sequence: e.actor for e in again.log(1, 100)}
        assert entries[ack.sequence] == "c7fea3f03b90"
        assert {a for s, a in entries.items() if s != ack.sequence} == {None}
    engine = raw_engine(db)
    with engine.begin() as conn:
        conn.execute(events.update().where(events.c.sequence == ack.sequence).values(actor="mallory"))
    engine.dispose()
    tampered = connect(db)
    try:
        with pytest.raises(CorruptLogError, match="hash"):  # the actor is inside the chain
            open_venue(tampered)
    finally:
        tampered.close()
