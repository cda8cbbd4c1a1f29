"""SQL event store (SQLAlchemy 2 Core + Alembic + psycopg 3): the venue's durable log."""

from crossmargin.adapters.sql.store import DEFAULT_URL, SqlEventStore, assert_durable, migrate

__all__ = ["DEFAULT_URL", "SqlEventStore", "assert_durable", "migrate"]
