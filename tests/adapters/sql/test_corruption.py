"""Corruption of the stored log and snapshots: flipped bytes, a truncated tail, swapped records,
a corrupt or swapped snapshot. The venue refuses to start (CorruptLogError naming the sequence)
or, when told to, recovers to the last verified prefix and says so; it never serves a balance
that a replay of the verified log would not give. With `verify_on_start="since_snapshot"` a
break before the trusted snapshot is found by the venue's audit after start-up instead."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from crossmargin.adapters.sql import SqlEventStore
from crossmargin.adapters.sql.schema import counter, events, postings, snapshot_chunks, snapshots
from crossmargin.engine.journal import LogRecord
from crossmargin.engine.venue import Deposit, LogAudit
from crossmargin.engine.venue.state import VenueState
from crossmargin.errors import CorruptLogError
from tests.adapters.sql.support import connect, open_venue, replay

RECORDS = 30  # deposits after the genesis record
SNAPSHOT_EVERY = 10


@pytest.fixture
def written(db: tuple[str, str | None]) -> Iterator[tuple[str, str | None]]:
    """A log of 31 records (genesis + 30 deposits) with snapshots at 10, 20, 30."""
    # Unpaced (snapshot_busy_limit None): a snapshot at each of 10, 20, 30, whatever they cost.
    with open_venue(connect(db), snapshot_every=SNAPSHOT_EVERY, snapshot_busy_limit=None) as venue:
        for n in range(RECORDS):
            venue.execute(
                Deposit(idempotency_key=f"d{n}", account="vol-seller", asset="USDC", amount_units=n + 1)
            )
    yield db


def _tamper(db: tuple[str, str | None], statement: sa.Executable) -> None:
    store = connect(db)
    with store.engine.begin() as conn:
        conn.execute(statement)
    store.close()


def _payload(db: tuple[str, str | None], table: sa.Table, sequence: int) -> bytes:
    store = connect(db)
    with store.engine.connect() as conn:
        raw = conn.execute(sa.select(table.c.payload).where(table.c.sequence == sequence)).scalar_one()
    store.close()
    return bytes(raw)


def _flip(raw: bytes, at: int) -> bytes:
    return raw[:at] + bytes([raw[at] ^ 0x01]) + raw[at + 1 :]


def _flip_record(db: tuple[str, str | None], sequence: int) -> None:
    """One bit flipped in the middle of record `sequence`'s payload."""
    raw = _payload(db, events, sequence)
    _tamper(
        db, events.update().where(events.c.sequence == sequence).values(payload=_flip(raw, len(raw) // 2))
    )


def _refused_at(db: tuple[str, str | None], **settings: object) -> int:
    """The sequence CorruptLogError names when a venue is opened on the log with `settings`."""
    store = connect(db)
    with pytest.raises(CorruptLogError) as refused:
        open_venue(store, **settings)
    store.close()
    return refused.value.sequence


def _expect_refusal_then_recovery(db: tuple[str, str | None], *, broken_at: int) -> None:
    assert _refused_at(db) == broken_at
    store = connect(db)
    with open_venue(store, recover_to_verified_prefix=True) as venue:
        assert venue.last_sequence == broken_at - 1
        assert any(f"verification at sequence {broken_at}" in p for p in venue.recovery.problems)
        assert venue.state_digest() == replay(store).digest()
        # The balance is the verified prefix's: genesis + deposits 1..(broken_at - 2).
        units = venue.balances("USDC")["vol-seller"]
    with open_venue(connect(db)) as clean:  # after recovery the log verifies again
        assert clean.balances("USDC")["vol-seller"] == units
        assert clean.recovery.problems == ()


def test_corruption_flipped_byte_in_a_record(written: tuple[str, str | None]) -> None:
    _flip_record(written, 12)
    _expect_refusal_then_recovery(written, broken_at=12)


def test_corruption_flipped_posting_amount(written: tuple[str, str | None]) -> None:
    _tamper(
        written,
        postings.update().where(postings.c.sequence == 20).values(amount_units=postings.c.amount_units + 1),
    )
    _expect_refusal_then_recovery(written, broken_at=20)


def test_corruption_truncated_tail(written: tuple[str, str | None]) -> None:
    _tamper(written, postings.delete().where(postings.c.sequence > 28))
    _tamper(written, events.delete().where(events.c.sequence > 28))
    _expect_refusal_then_recovery(written, broken_at=29)


def test_corruption_swapped_records(written: tuple[str, str | None]) -> None:
    a, b = _payload(written, events, 15), _payload(written, events, 16)
    _tamper(written, events.update().where(events.c.sequence == 15).values(payload=b))
    _tamper(written, events.update().where(events.c.sequence == 16).values(payload=a))
    _expect_refusal_then_recovery(written, broken_at=15)


def test_corruption_counter_behind_the_records(written: tuple[str, str | None]) -> None:
    _tamper(written, counter.update().values(value=25))
    _expect_refusal_then_recovery(written, broken_at=26)


def _snapshot_payload(db: tuple[str, str | None], sequence: int) -> bytes:
    """A snapshot's stored payload, its chunks joined (the layout since migration 0003)."""
    store = connect(db)
    with store.engine.connect() as conn:
        pieces = conn.execute(
            sa.select(snapshot_chunks.c.data)
            .where(snapshot_chunks.c.sequence == sequence)
            .order_by(snapshot_chunks.c.ordinal)
        ).scalars()
        payload = b"".join(bytes(p) for p in pieces)
    store.close()
    return payload


def _restore_snapshot(db: tuple[str, str | None], sequence: int, payload: bytes, digest: str) -> None:
    """Store `payload` (one chunk) and `digest` as the snapshot at `sequence`."""
    _tamper(db, snapshot_chunks.delete().where(snapshot_chunks.c.sequence == sequence))
    _tamper(db, snapshot_chunks.insert().values(sequence=sequence, ordinal=0, data=payload))
    _tamper(
        db, snapshots.update().where(snapshots.c.sequence == sequence).values(payload_sha256=digest, chunks=1)
    )


def _digests(db: tuple[str, str | None]) -> dict[int, str]:
    store = connect(db)
    with store.engine.connect() as conn:
        digests = dict(conn.execute(sa.select(snapshots.c.sequence, snapshots.c.payload_sha256)).all())
    store.close()
    return digests


def test_corruption_snapshot_flipped_byte_falls_back(written: tuple[str, str | None]) -> None:
    raw = _snapshot_payload(written, 30)
    _restore_snapshot(written, 30, _flip(raw, len(raw) - 20), _digests(written)[30])
    store = connect(written)
    with open_venue(store) as venue:
        assert venue.recovery.snapshot_sequence == 20
        assert any("snapshot at 30 fails its checksum" in p for p in venue.recovery.problems)
        assert venue.state_digest() == replay(store).digest()


def test_corruption_snapshot_missing_chunk_falls_back(written: tuple[str, str | None]) -> None:
    """A chunk lost (or one more than its row counts): the joined bytes fail the checksum."""
    _tamper(written, snapshot_chunks.delete().where(snapshot_chunks.c.sequence == 30))
    _tamper(written, snapshot_chunks.insert().values(sequence=20, ordinal=1, data=b"{}"))
    store = connect(written)
    with open_venue(store) as venue:
        assert venue.recovery.snapshot_sequence == 10
        assert any("snapshot at 30 fails its checksum" in p for p in venue.recovery.problems)
        assert any("snapshot at 20 fails its checksum" in p for p in venue.recovery.problems)
        assert venue.state_digest() == replay(store).digest()


def test_corruption_swapped_snapshots_not_used(written: tuple[str, str | None]) -> None:
    payloads = {s: _snapshot_payload(written, s) for s in (20, 30)}
    digests = _digests(written)
    for s, other in ((20, 30), (30, 20)):
        _restore_snapshot(written, s, payloads[other], digests[other])
    store = connect(written)
    with open_venue(store) as venue:
        assert venue.recovery.snapshot_sequence == 10
        assert sum("snapshot at" in p for p in venue.recovery.problems) == 2
        assert venue.state_digest() == replay(store).digest()
        assert venue.balances("USDC")["vol-seller"] == replay(store).balances[("vol-seller", "USDC")]


def test_a_snapshot_stored_inline_before_migration_0003_still_loads(written: tuple[str, str | None]) -> None:
    """The layout before chunks: the payload in the snapshots row, `chunks` NULL."""
    payload = _snapshot_payload(written, 30)
    _tamper(written, snapshot_chunks.delete().where(snapshot_chunks.c.sequence == 30))
    _tamper(
        written, snapshots.update().where(snapshots.c.sequence == 30).values(payload=payload, chunks=None)
    )
    store = connect(written)
    with open_venue(store) as venue:
        assert venue.recovery.snapshot_sequence == 30 and venue.recovery.problems == ()
        assert venue.state_digest() == replay(store).digest()


def test_corruption_store_is_sql(written: tuple[str, str | None]) -> None:
    """The tampering above reaches the real tables (not a cache): a fresh connection sees 31."""
    store: SqlEventStore = connect(written)
    try:
        assert store.last_sequence() == RECORDS + 1
    finally:
        store.close()


# -- verify_on_start="since_snapshot": the records after the snapshot at start-up, the rest audited


def _opening_balance(db: tuple[str, str | None]) -> int:
    """vol-seller's USDC units in the genesis record (before the 30 deposits)."""
    store = connect(db)
    try:
        (genesis,) = store.read(1, 1)
    finally:
        store.close()
    state = _replay_of([genesis])
    return state.balances.get(("vol-seller", "USDC"), 0)


def _replay_of(records: list[LogRecord]) -> VenueState:
    """The fold of `records` from an empty state."""
    state = VenueState()
    for r in records:
        state.apply_effects(
            r.decoded()["effects"], sequence=r.sequence, record_hash=r.record_hash, as_of_ns=r.as_of_ns
        )
    return state


def test_corruption_since_snapshot_starts_from_the_snapshot_and_knows_every_key(
    written: tuple[str, str | None],
) -> None:
    """A clean log: one record folded after the snapshot at 30, the same state as a full
    replay, the audit verifies 1..30, and a retried key from before the snapshot is a
    duplicate, not a second deposit."""
    store = connect(written)
    with open_venue(store, verify_on_start="since_snapshot") as venue:
        assert venue.recovery.snapshot_sequence == 30 and venue.recovery.records_replayed == 1
        assert venue.recovery.problems == ()
        assert venue.state_digest() == replay(store).digest()
        assert venue.log_audit(timeout_s=60) == LogAudit(status="verified", through=30)
        again = venue.execute(
            Deposit(idempotency_key="d3", account="vol-seller", asset="USDC", amount_units=4)
        )
        assert again.duplicate and again.sequence == 5
        assert venue.last_sequence == RECORDS + 1
    with open_venue(connect(written)) as full:
        assert full.log_audit() == LogAudit(status="not_needed", through=0)


def test_corruption_since_snapshot_before_it_is_found_by_the_audit(written: tuple[str, str | None]) -> None:
    """A flipped byte in record 12, before the snapshot at 30: the venue starts from the
    snapshot (its balances are the log's as written: genesis + deposits of 1..30 units) and its
    audit reports the break at 12; the full check refuses to start."""
    _flip_record(written, 12)
    opening = _opening_balance(written)
    with open_venue(connect(written), verify_on_start="since_snapshot") as venue:
        assert venue.recovery.snapshot_sequence == 30
        assert venue.balances("USDC")["vol-seller"] == opening + sum(range(1, RECORDS + 1))
        audit = venue.log_audit(timeout_s=60)
        assert audit.status == "failed" and audit.through == 30
        assert audit.problem is not None and "sequence 12" in audit.problem
        assert venue.stats()["log_audit_failed"] == 1  # crossmargin_log_audit_failed, to alert on
    assert _refused_at(written) == 12


def test_corruption_since_snapshot_after_it_refuses_or_recovers(written: tuple[str, str | None]) -> None:
    """A flipped byte in record 31, after the snapshot at 30: refused at start-up as by the
    full check, or cut back to 30 when told to recover."""
    _flip_record(written, 31)
    assert _refused_at(written, verify_on_start="since_snapshot") == 31
    store = connect(written)
    with open_venue(store, verify_on_start="since_snapshot", recover_to_verified_prefix=True) as venue:
        assert venue.last_sequence == 30
        assert venue.state_digest() == replay(store).digest()


def test_corruption_since_snapshot_the_snapshots_own_record_flipped(written: tuple[str, str | None]) -> None:
    """Record 30 flipped: the snapshot at 30 is not trusted (its record does not recompute to its
    hash), the one at 20 is, and verifying from 21 finds the break at 30: refused."""
    _flip_record(written, 30)
    assert _refused_at(written, verify_on_start="since_snapshot") == 30


def test_corruption_since_snapshot_counter_behind_the_records(written: tuple[str, str | None]) -> None:
    """The counter says 25 of the 31 records: the snapshot at 20 is the newest within it, and the
    records after it are folded as they are verified only up to the counter's 25 (26..31 verify
    but were not committed with it): refused, or cut back to 25 in the state a replay of the cut
    log gives."""
    _tamper(written, counter.update().values(value=25))
    assert _refused_at(written, verify_on_start="since_snapshot") == 26
    store = connect(written)
    with open_venue(store, verify_on_start="since_snapshot", recover_to_verified_prefix=True) as venue:
        assert venue.recovery.snapshot_sequence == 20 and venue.recovery.records_replayed == 5
        assert venue.last_sequence == 25
        assert venue.state_digest() == replay(store).digest()
