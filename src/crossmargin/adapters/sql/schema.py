"""The event log's tables (SQLAlchemy Core). Alembic migrations create them
(`migrations/versions`); these objects are what the store queries with.

    events     one row per record: sequence (gap-free, the primary key), idempotency key (unique:
               a unique index on PostgreSQL; on SQLite the writer's check and a side index,
               `key_index`, since migration 0004),
               kind, as_of_ns, body_sha256, payload (the exact bytes hashed), previous and own hash,
               actor (who submitted the command: an API key id; NULL for derived records and
               records written before revision 0002)
    postings   one row per posting: amount_units an exact BIGINT (integer minor units; a posting
               above 2**63 - 1 units is refused by the venue, never rounded)
    counter    one row ("events", last sequence), updated in the same transaction as the rows: the
               gap-free sequence (a database sequence would leave gaps on rollback)
    snapshots  folded state after a sequence: payload bytes and their SHA-256; `chunks`: how
               many rows of snapshot_chunks hold the payload (NULL: inline in `payload`, the
               layout before migration 0003)
    snapshot_chunks  a chunked snapshot's payload in pieces (sequence, ordinal)
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, LargeBinary, MetaData, String, Table

metadata = MetaData()

events = Table(
    "events",
    metadata,
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),
    Column("idempotency_key", String(128), nullable=True),  # unique on PostgreSQL (0001, 0004)
    Column("kind", String(32), nullable=False),
    Column("as_of_ns", BigInteger, nullable=False),
    Column("body_sha256", String(64), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("previous_hash", String(64), nullable=False),
    Column("record_hash", String(64), nullable=False),
    Column("actor", String(128), nullable=True),
)

postings = Table(
    "postings",
    metadata,
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),
    Column("idx", Integer, primary_key=True, autoincrement=False),
    Column("debit_account", String(128), nullable=False),
    Column("credit_account", String(128), nullable=False),
    Column("asset", String(32), nullable=False),
    Column("amount_units", BigInteger, nullable=False),
    Column("kind", String(64), nullable=False),
)

counter = Table(
    "counter",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),
    Column("record_hash", String(64), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("payload_sha256", String(64), nullable=False),
    Column("chunks", Integer, nullable=True),
)

snapshot_chunks = Table(
    "snapshot_chunks",
    metadata,
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),
    Column("ordinal", Integer, primary_key=True, autoincrement=False),
    Column("data", LargeBinary, nullable=False),
)
