"""Start-up refuses a database that would not keep a commit across a crash, and a second writer."""

from __future__ import annotations

import pytest

from crossmargin.adapters.sql import SqlEventStore
from crossmargin.errors import DurabilityError, StoreError
from tests.adapters.sql.support import PG_URL, connect


def test_durability_sqlite_in_memory_refused() -> None:
    with pytest.raises(DurabilityError) as refused:
        SqlEventStore.connect("sqlite://")
    assert refused.value.setting == "sqlite journal_mode"


def test_durability_sqlite_file_is_wal_full(tmp_path: object) -> None:
    store = SqlEventStore.connect(f"sqlite:///{tmp_path}/v.db")
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
    finally:
        store.close()


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_durability_postgresql_synchronous_commit_off_refused(db: tuple[str, str | None]) -> None:
    url = f"{PG_URL}?options=-csearch_path%3D{db[1]}%20-csynchronous_commit%3Doff"
    with pytest.raises(DurabilityError) as refused:
        SqlEventStore.connect(url)
    assert refused.value.setting == "synchronous_commit"


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_durability_second_writer_refused(db: tuple[str, str | None]) -> None:
    first = connect(db)
    try:
        with pytest.raises(StoreError, match="another venue"):
            connect(db)
    finally:
        first.close()
    connect(db).close()  # released with the first


def test_head_revision_is_the_scripts_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from crossmargin.adapters.sql.store import HEAD_REVISION, MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION


def test_migrations_create_the_schema_once(db: tuple[str, str | None]) -> None:
    import sqlalchemy as sa

    connect(db).close()
    store = connect(db)  # second open: already at head
    try:
        with store.engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            assert {"events", "postings", "counter", "snapshots", "alembic_version"} <= tables
            assert conn.execute(sa.text("SELECT value FROM counter WHERE name = 'events'")).scalar_one() == 0
    finally:
        store.close()


def test_both_stores_implement_the_event_store_port(tmp_path: object) -> None:
    from crossmargin.engine.memory import MemoryEventStore
    from crossmargin.engine.ports import EventStore

    store = SqlEventStore.connect(f"sqlite:///{tmp_path}/port.db")
    try:
        assert isinstance(store, EventStore)
        assert isinstance(MemoryEventStore(), EventStore)
    finally:
        store.close()
