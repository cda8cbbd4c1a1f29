"""Groups of every size are stored row for row: SQLite writes them as multi-row VALUES statements
of 64, 32, ..., 1 rows (`store.sqlite_values`), PostgreSQL by binary COPY (`pg_copy`); a chunk
boundary that dropped, repeated or reordered a row would show here as a different read-back."""

from __future__ import annotations

import pytest

from crossmargin.adapters.sql.store import SQLITE_ROWS_PER_STATEMENT
from crossmargin.engine.journal import GENESIS_HASH, LogRecord, make_record, verify_chain
from tests.adapters.sql.support import connect

# Around every boundary of both paths: one row, a chunk less one, a chunk, a chunk plus one, and a
# size whose binary form uses every smaller chunk.
SIZES = [1, 2, SQLITE_ROWS_PER_STATEMENT - 1, SQLITE_ROWS_PER_STATEMENT, SQLITE_ROWS_PER_STATEMENT + 1]
SIZES += [2 * SQLITE_ROWS_PER_STATEMENT + 63, 300]


def _group(first: int, size: int, previous: str) -> list[LogRecord]:
    """`size` chained records from `first`, with 0 to 3 postings each (the postings table gets
    its own chunk boundaries), an actor on every other one and no key on one in seven (NULLs in
    both COPY and INSERT rows)."""
    out: list[LogRecord] = []
    for sequence in range(first, first + size):
        postings = [
            ["@external", f"acct-{sequence}", "USDC", sequence * 10 + n + 1, "deposit"]
            for n in range(sequence % 4)
        ]
        record = make_record(
            previous_hash=previous,
            sequence=sequence,
            idempotency_key=None if sequence % 7 == 3 else f"key-{sequence}",  # a venue's own: no key
            kind="deposit",
            as_of_ns=1_767_115_875_000_000_000 + sequence,
            body_sha256=f"{sequence:064x}",
            payload={"command": {"n": sequence}, "effects": {"postings": postings}},
            actor="k1" if sequence % 2 else None,
        )
        out.append(record)
        previous = record.record_hash
    return out


@pytest.mark.parametrize("size", SIZES)
def test_a_group_of_any_size_reads_back_row_for_row(db: tuple[str, str | None], size: int) -> None:
    store = connect(db)
    try:
        first = _group(1, 5, GENESIS_HASH)
        store.append(first)
        group = _group(6, size, first[-1].record_hash)
        store.append(group)
        assert store.last_sequence() == 5 + size
        stored = store.read(1, 5 + size)
        assert stored == [*first, *group]  # every field, each posting row, in order
        assert sum(len(r.postings) for r in stored) == sum(s % 4 for s in range(1, 6 + size))
        assert verify_chain(stored, previous_hash=GENESIS_HASH, first_sequence=1) is None
        keyed = next(r for r in reversed(group) if r.idempotency_key is not None)
        assert keyed.idempotency_key is not None
        assert store.find_keys([keyed.idempotency_key]) == {
            keyed.idempotency_key: (keyed.sequence, keyed.body_sha256)
        }
    finally:
        store.close()


def test_a_group_of_large_records_reads_back_whole(db: tuple[str, str | None]) -> None:
    """Records of ~300 KB each (a liquidation's payload can be long), 2 MB in one group: PostgreSQL
    sends the COPY data in pieces (`pg_copy.SEND_CHUNK_BYTES`), each record comes back whole."""
    store = connect(db)
    try:
        previous, group = GENESIS_HASH, []
        for sequence in range(1, 8):
            record = make_record(
                previous_hash=previous,
                sequence=sequence,
                idempotency_key=f"big-{sequence}",
                kind="liquidation",
                as_of_ns=1_767_115_875_000_000_000 + sequence,
                body_sha256=f"{sequence:064x}",
                payload={"command": {"n": sequence}, "effects": {"note": "x" * 300_000 + str(sequence)}},
            )
            group.append(record)
            previous = record.record_hash
        store.append(group)
        assert sum(len(r.payload) for r in group) > 2_000_000
        assert store.read(1, 7) == group
    finally:
        store.close()
