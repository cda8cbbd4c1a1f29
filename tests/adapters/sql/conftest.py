"""The venue's store tests run on SQLite (a file per test) and on the real PostgreSQL at
127.0.0.1:5432 (database `test`, one schema per test, dropped afterwards). `.ci/run` makes sure
PostgreSQL is up; outside CI a missing server skips the PostgreSQL half, saying so."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sa = pytest.importorskip("sqlalchemy")

from tests.adapters.sql.support import PG_URL  # noqa: E402


def _pg_available() -> bool:
    try:
        engine = sa.create_engine(PG_URL)
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    """(url, schema) of an empty log."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'venue.db'}", None
        return
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_URL} (.ci/run should have started it)")
        pytest.skip(f"PostgreSQL is not reachable at {PG_URL}")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    yield PG_URL, schema
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()
