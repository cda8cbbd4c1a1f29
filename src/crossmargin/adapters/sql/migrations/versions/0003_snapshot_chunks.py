"""Snapshots written in chunks: snapshot_chunks holds a payload's pieces, snapshots.chunks counts
them (NULL: the payload inline, as every snapshot before this revision was).

A snapshot is O(state): written as one row, a 20 MB payload (200,000 traders) held SQLite's
single write lock 120-180 ms, and every group commit of the log waited behind it. In chunks
(`store.SNAPSHOT_CHUNK_BYTES`), each its own transaction, the log's commits go between them;
the snapshots row goes last, so a snapshot whose writer died midway is not listed (its chunks
are removed by the next save).

Revision ID: 0003_snapshot_chunks
Revises: 0002_event_actor
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_snapshot_chunks"
down_revision = "0002_event_actor"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "snapshot_chunks",
        sa.Column("sequence", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("ordinal", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    with op.batch_alter_table("snapshots") as batch:
        batch.add_column(sa.Column("chunks", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("snapshots") as batch:
        batch.drop_column("chunks")
    op.drop_table("snapshot_chunks")
