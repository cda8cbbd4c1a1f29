"""Snapshots written in chunks (revision 0003): a large payload round-trips through its chunks;
a save that died midway is never listed and its chunks go with the next save; the venue keeps
only the newest `snapshots_kept`; a log written at revision 0002 with an inline snapshot is
migrated in place and restarts from that snapshot. SQLite and PostgreSQL alike."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa

from crossmargin.adapters.sql import SqlEventStore
from crossmargin.adapters.sql.schema import events, snapshot_chunks
from crossmargin.adapters.sql.store import SNAPSHOT_CHUNK_BYTES
from crossmargin.engine.journal import Snapshot, canonical_json
from crossmargin.engine.memory import MemoryEventStore
from crossmargin.engine.venue import Deposit
from tests.adapters.sql.support import connect, log_at_revision, open_venue, raw_engine, replay


def _snapshot(sequence: int, size: int) -> Snapshot:
    """A snapshot whose payload is `size` bytes and more (a document naming its sequence and hash)."""
    record_hash = f"{sequence:064x}"
    payload = canonical_json(Snapshot.document(sequence, record_hash, {"pad": "x" * size}))
    return Snapshot.of_payload(sequence=sequence, record_hash=record_hash, payload=payload)


def _chunk_counts(db: tuple[str, str | None]) -> dict[int, int]:
    engine = raw_engine(db)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(snapshot_chunks.c.sequence, sa.func.count()).group_by(snapshot_chunks.c.sequence)
        ).all()
    engine.dispose()
    return {int(s): int(n) for s, n in rows}


def test_a_large_snapshot_round_trips_through_its_chunks(db: tuple[str, str | None]) -> None:
    store = connect(db)
    large = _snapshot(7, 3 * SNAPSHOT_CHUNK_BYTES + 123)
    store.save_snapshot(large)
    store.save_snapshot(_snapshot(9, 10))
    assert [(s.sequence, s.payload, s.verifies()) for s in store.snapshots()] == [
        (9, _snapshot(9, 10).payload, True),
        (7, large.payload, True),
    ]
    assert _chunk_counts(db) == {7: 4, 9: 1}
    store.close()


def test_a_save_that_died_midway_is_not_listed_and_its_chunks_go_with_the_next(
    db: tuple[str, str | None],
) -> None:
    store = connect(db)
    store.save_snapshot(_snapshot(5, 10))
    with store.engine.begin() as conn:  # what a writer killed between its chunks leaves behind
        conn.execute(snapshot_chunks.insert().values(sequence=8, ordinal=0, data=b'{"sequence": 8'))
    assert [s.sequence for s in store.snapshots()] == [5]
    store.save_snapshot(_snapshot(9, 10))
    assert _chunk_counts(db) == {5: 1, 9: 1}
    store.close()


def test_keeping_the_newest_snapshots_removes_the_others_rows_and_chunks(db: tuple[str, str | None]) -> None:
    store = connect(db)
    for sequence in (6, 3, 9):
        store.save_snapshot(_snapshot(sequence, SNAPSHOT_CHUNK_BYTES))
    store.keep_newest_snapshots(2)
    assert [s.sequence for s in store.snapshots()] == [9, 6]
    assert _chunk_counts(db) == {6: 2, 9: 2}
    store.keep_newest_snapshots(5)
    assert [s.sequence for s in store.snapshots()] == [9, 6]
    store.close()


def test_a_snapshot_saved_keeping_the_newest_unlists_the_others_in_its_own_transaction(
    db: tuple[str, str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`save_snapshot(..., keep=2)`: the new row in and the rows beyond the newest two out in one
    transaction, so a writer that dies before collecting their chunks (here: the collection
    fails) never leaves more than two listed; the next save collects what is left."""
    store = connect(db)
    for sequence in (3, 6):
        store.save_snapshot(_snapshot(sequence, 10))

    collect = type(store)._drop_unlisted_chunks
    calls = []

    def dies_after_listing(self: SqlEventStore) -> None:  # the first collection runs (before the chunks)
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("killed before collecting the chunks")
        collect(self)

    monkeypatch.setattr(type(store), "_drop_unlisted_chunks", dies_after_listing)
    with pytest.raises(RuntimeError, match="killed"):
        store.save_snapshot(_snapshot(9, 10), keep=2)
    assert [s.sequence for s in store.snapshots()] == [9, 6]
    assert _chunk_counts(db) == {3: 1, 6: 1, 9: 1}  # 3's chunk left behind, unlisted
    monkeypatch.undo()
    store.save_snapshot(_snapshot(12, 10), keep=2)
    assert [s.sequence for s in store.snapshots()] == [12, 9]
    assert _chunk_counts(db) == {9: 1, 12: 1}
    store.close()
    memory = MemoryEventStore()
    for sequence in (3, 6, 9):
        memory.save_snapshot(_snapshot(sequence, 10), keep=2)
    assert [s.sequence for s in memory.snapshots()] == [9, 6]


def test_the_venue_keeps_the_newest_snapshots_only(db: tuple[str, str | None]) -> None:
    """Unpaced, one every 5 records over 30 deposits (6 written), 2 kept: those at 30 and 25,
    and a restart from the newest equals a replay of the log; a restart that writes one more
    keeps the newest 2 of all, the earlier run's included."""
    store = connect(db)
    with open_venue(store, snapshot_every=5, snapshot_busy_limit=None, snapshots_kept=2) as venue:
        for n in range(30):
            venue.execute(
                Deposit(idempotency_key=f"k{n}", account="vol-seller", asset="USDC", amount_units=n + 1)
            )
    assert venue.stats()["snapshots"] == 6
    assert [s.sequence for s in store.snapshots()] == [30, 25]
    assert set(_chunk_counts(db)) == {30, 25}
    store.close()
    store = connect(db)
    with open_venue(store, snapshot_every=5, snapshot_busy_limit=None, snapshots_kept=2) as restarted:
        assert restarted.recovery.snapshot_sequence == 30
        assert restarted.state_digest() == replay(store).digest()
        for n in range(5):
            restarted.execute(
                Deposit(idempotency_key=f"r{n}", account="vol-seller", asset="USDC", amount_units=1)
            )
    assert [s.sequence for s in store.snapshots()] == [35, 30]
    assert set(_chunk_counts(db)) == {35, 30}
    store.close()


def test_a_log_at_revision_0002_with_an_inline_snapshot_migrates_and_restarts_from_it(
    db: tuple[str, str | None],
) -> None:
    memory = MemoryEventStore()
    with open_venue(memory, snapshot_every=4, snapshot_busy_limit=None, snapshot_encoder="thread") as venue:
        for n in range(6):
            venue.execute(
                Deposit(idempotency_key=f"o{n}", account="vol-seller", asset="USDC", amount_units=10 + n)
            )
        digest = venue.state_digest()
    (old,) = memory.stored_snapshots
    records = memory.read(1, 100)
    engine = log_at_revision(db, "0002_event_actor", records, [c.name for c in events.columns])
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO snapshots (sequence, record_hash, payload, payload_sha256) VALUES (:s, :h, :p, :d)"
            ),
            {"s": old.sequence, "h": old.record_hash, "p": old.payload, "d": old.payload_sha256},
        )
    engine.dispose()
    store = connect(db)  # migrates 0002 -> 0003
    (stored,) = store.snapshots()
    assert stored.payload == old.payload and hashlib.sha256(stored.payload).hexdigest() == old.payload_sha256
    with open_venue(store) as venue:
        assert venue.recovery.snapshot_sequence == old.sequence == 4
        assert venue.recovery.problems == () and venue.state_digest() == digest
    store.close()


def test_a_start_after_a_kill_between_save_and_prune_keeps_the_newest_only(
    db: tuple[str, str | None],
) -> None:
    """A server killed after writing its snapshot and before pruning leaves `snapshots_kept + 1`;
    the next start prunes back to the newest 2, the one it recovered from included; a start
    whose newest snapshots fail their checksum prunes nothing (the one used is older)."""
    store = connect(db)
    with open_venue(store, snapshot_every=5, snapshot_busy_limit=None, snapshots_kept=3) as venue:
        for n in range(20):
            venue.execute(
                Deposit(idempotency_key=f"k{n}", account="vol-seller", asset="USDC", amount_units=1)
            )
    assert [s.sequence for s in store.snapshots()] == [20, 15, 10]
    store.close()
    store = connect(db)
    with open_venue(store, snapshot_every=5, snapshot_busy_limit=None, snapshots_kept=2) as restarted:
        assert restarted.recovery.snapshot_sequence == 20
    assert [s.sequence for s in store.snapshots()] == [20, 15]
    assert set(_chunk_counts(db)) == {20, 15}
    with store.engine.begin() as conn:  # both newest fail their checksum
        conn.execute(snapshot_chunks.update().values(data=b"{}"))
    store.save_snapshot(_snapshot(21, 10))  # not the log's record 21: does not match, not used
    with open_venue(store, snapshot_busy_limit=None, snapshots_kept=1) as third:
        assert third.recovery.snapshot_sequence is None
        assert len(third.recovery.problems) == 3
    assert [s.sequence for s in store.snapshots()] == [21, 20, 15]
    store.close()
