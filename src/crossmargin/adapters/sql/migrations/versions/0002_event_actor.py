"""The submitter of each record: events.actor (the API key id that sent the command).

Nullable: records written before this revision, and records the venue derives itself (a
liquidation), have none. Old rows stay readable and verify unchanged: the record hash covers the
actor only when there is one (engine.journal).

Revision ID: 0002_event_actor
Revises: 0001_event_log
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_event_actor"
down_revision = "0001_event_log"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite alters a table by copying it (ADD COLUMN alone would do, but batch keeps
    # the downgrade's DROP COLUMN working on SQLite too)
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("actor", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("actor")
