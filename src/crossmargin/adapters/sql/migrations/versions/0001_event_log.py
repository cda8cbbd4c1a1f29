"""The event log: events, postings, the counter row, snapshots.

Revision ID: 0001_event_log
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_event_log"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("sequence", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("idempotency_key", sa.String(128), nullable=True, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("as_of_ns", sa.BigInteger, nullable=False),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("previous_hash", sa.String(64), nullable=False),
        sa.Column("record_hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "postings",
        sa.Column("sequence", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("debit_account", sa.String(128), nullable=False),
        sa.Column("credit_account", sa.String(128), nullable=False),
        sa.Column("asset", sa.String(32), nullable=False),
        sa.Column("amount_units", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
    )
    op.create_table(
        "counter",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "snapshots",
        sa.Column("sequence", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("record_hash", sa.String(64), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("payload_sha256", sa.String(64), nullable=False),
    )
    op.execute("INSERT INTO counter (name, value) VALUES ('events', 0)")


def downgrade() -> None:
    for table in ("snapshots", "counter", "postings", "events"):
        op.drop_table(table)
