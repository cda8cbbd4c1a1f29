"""A URL the store cannot open is refused before anything is opened or created: one that is not
a URL, names another database or a driver that is not installed (InputError naming "url"), or a
database that does not answer (StoreError naming where, never its password)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossmargin.adapters.sql import SqlEventStore
from crossmargin.errors import InputError, StoreError


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("not a url", "not a database URL: 'not a url'"),
        ("mysql://root@127.0.0.1/test", "unsupported database 'mysql': sqlite or postgresql"),
        ("postgresql+asyncpg://u@127.0.0.1/test", "the postgresql driver 'asyncpg' is not available"),
        ("sqlite+nosuch:///x.db", "the sqlite driver 'nosuch' is not available"),
    ],
)
def test_store_url_refused_naming_the_url(
    url: str, problem: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError) as refused:
        SqlEventStore.connect(url)
    assert refused.value.field == "url"
    assert problem in refused.value.problem
    assert list(tmp_path.iterdir()) == []  # nothing created


def test_store_url_a_database_that_does_not_answer_is_a_store_error_without_its_password() -> None:
    with pytest.raises(StoreError) as refused:
        SqlEventStore.connect("postgresql+psycopg://postgres:s3cret@127.0.0.1:1/test")
    message = str(refused.value)
    assert message.startswith(
        "cannot open the database at postgresql+psycopg://postgres:***@127.0.0.1:1/test: "
    )
    assert "s3cret" not in message and "Connection refused" in message


def test_store_url_a_sqlite_file_in_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unable to open database file"):
        SqlEventStore.connect(f"sqlite:///{tmp_path / 'missing' / 'venue.db'}")
    assert not (tmp_path / "missing").exists()


def test_store_url_a_schema_for_sqlite_is_refused_not_ignored(tmp_path: Path) -> None:
    """A schema keeps a PostgreSQL log apart; on SQLite it was ignored, the log shared."""
    with pytest.raises(InputError) as refused:
        SqlEventStore.connect(f"sqlite:///{tmp_path / 'venue.db'}", schema="venue")
    assert refused.value.field == "schema" and "PostgreSQL only" in refused.value.problem
    assert list(tmp_path.iterdir()) == []
