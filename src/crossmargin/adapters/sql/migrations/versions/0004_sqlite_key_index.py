"""SQLite: no UNIQUE index on events.idempotency_key; the keys are indexed beside the log
(`adapters.sql.key_index`, a side file of sorted runs, rebuilt from the log when the store
connects). PostgreSQL keeps its unique index: nothing changes there.

On SQLite a B-tree over random keys dirtied a page per key in every group commit, each written
whole to the WAL (the side index's docstring has the figures). SQLite cannot drop a constraint's
index, so the table is copied into one declared without it (https://www.sqlite.org/lang_altertable.html,
"Making Other Kinds Of Table Schema Changes"), in this migration's transaction.

Revision ID: 0004_sqlite_key_index
Revises: 0003_snapshot_chunks
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0004_sqlite_key_index"
down_revision = "0003_snapshot_chunks"
branch_labels = None
depends_on = None

COLUMNS = "sequence, idempotency_key, kind, as_of_ns, body_sha256, payload, previous_hash, record_hash, actor"


def _events_table(name: str, *, unique_key: bool) -> str:
    unique = ",\n    UNIQUE (idempotency_key)" if unique_key else ""
    return f"""CREATE TABLE {name} (
    sequence BIGINT NOT NULL,
    idempotency_key VARCHAR(128),
    kind VARCHAR(32) NOT NULL,
    as_of_ns BIGINT NOT NULL,
    body_sha256 VARCHAR(64) NOT NULL,
    payload BLOB NOT NULL,
    previous_hash VARCHAR(64) NOT NULL,
    record_hash VARCHAR(64) NOT NULL,
    actor VARCHAR(128),
    PRIMARY KEY (sequence){unique}
)"""


def _copy_events(*, unique_key: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(_events_table("events_copy", unique_key=unique_key))
    op.execute(f"INSERT INTO events_copy ({COLUMNS}) SELECT {COLUMNS} FROM events")
    op.execute("DROP TABLE events")
    op.execute("ALTER TABLE events_copy RENAME TO events")


def upgrade() -> None:
    _copy_events(unique_key=False)


def downgrade() -> None:
    _copy_events(unique_key=True)
