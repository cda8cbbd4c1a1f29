"""Start-up refuses a database that would not keep a commit across a crash, and a second writer."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from crossmargin.adapters.sql import SqlEventStore
from crossmargin.adapters.sql.store import writer_lock_key
from crossmargin.engine.journal import LogRecord
from crossmargin.engine.venue import Deposit
from crossmargin.errors import DurabilityError, StoreError, VenueUnavailableError
from tests.adapters.sql.support import PG_URL, connect, open_venue, raw_engine


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


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_durability_appends_only_while_holding_the_writer_lock(db: tuple[str, str | None]) -> None:
    """Every append goes through the session that holds the writer lock: once that session is
    gone (here terminated by the server, as a restart or a dropped connection would end it), the
    next deposit is refused and never acknowledged, the log keeps only what was acknowledged, and
    a new writer can take over at once."""
    store = connect(db)
    venue = open_venue(store)
    acked = venue.execute(Deposit(idempotency_key="held", account="vol-seller", asset="USDC", amount_units=3))
    key = writer_lock_key(db[1])  # a bigint advisory key: its high and low halves, objsubid 1
    engine = raw_engine(db)
    with engine.begin() as conn:
        killed = conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND classid = :high AND objid = :low AND objsubid = 1"
            ),
            {"high": (key >> 32) & 0xFFFFFFFF, "low": key & 0xFFFFFFFF},
        ).all()
    assert killed == [(True,)]  # the one writer session of this schema
    with pytest.raises(VenueUnavailableError):
        venue.execute(Deposit(idempotency_key="lost", account="vol-seller", asset="USDC", amount_units=5))
    venue.close()
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT idempotency_key FROM events WHERE idempotency_key IS NOT NULL")
        ).all()
        head = conn.execute(sa.text("SELECT value FROM counter WHERE name = 'events'")).scalar_one()
    engine.dispose()
    assert stored == [("held",)]
    assert head == acked.sequence
    with open_venue(connect(db)) as again:  # the lock went with the session: a new writer starts
        assert again.last_sequence == acked.sequence
        assert (
            again.execute(
                Deposit(idempotency_key="lost", account="vol-seller", asset="USDC", amount_units=5)
            ).sequence
            == acked.sequence + 1
        )


def _one_deposit_logged(db: tuple[str, str | None], key: str) -> tuple[SqlEventStore, LogRecord]:
    """A venue that logged one deposit under `key`, closed; a store on its log and that record."""
    with open_venue(connect(db)) as venue:
        venue.execute(Deposit(idempotency_key=key, account="vol-seller", asset="USDC", amount_units=1))
        head = venue.last_sequence
    store = connect(db)
    return store, store.read(head, 1)[0]


def _at(record: LogRecord, sequence: int, key: str | None) -> LogRecord:
    """`record` moved to `sequence` (its postings too) under `key`."""
    postings = tuple(p._replace(sequence=sequence) for p in record.postings)
    return record._replace(sequence=sequence, idempotency_key=key, postings=postings)


def test_durability_a_refused_append_leaves_the_store_usable(db: tuple[str, str | None]) -> None:
    """A group that does not continue the log is refused whole (nothing of it written) and the
    store's session stays usable: the next group that does continue it commits."""
    store, record = _one_deposit_logged(db, "one")
    head = record.sequence
    try:
        ahead = record._replace(sequence=head + 2, idempotency_key="gap", postings=())
        with pytest.raises(StoreError, match="do not continue the log"):
            store.append([ahead])
        assert store.last_sequence() == head
        assert store.find_keys(["gap"]) == {}
        store.append([ahead._replace(sequence=head + 1)])
        assert store.last_sequence() == head + 1
        assert store.find_keys(["gap"]) == {"gap": (head + 1, record.body_sha256)}
    finally:
        store.close()
    with pytest.raises(StoreError, match="closed"):
        store.append([ahead._replace(sequence=head + 2, idempotency_key="late")])


def test_durability_a_group_the_database_rejects_is_rolled_back_whole(db: tuple[str, str | None]) -> None:
    """A group whose rows break a constraint (here the second of two records carries one posting
    twice: the postings' primary key, on both backends) is refused whole: the counter does not
    move, neither record is written, and the store's session stays usable (on PostgreSQL the
    error ends the COPY mid-stream: the rest of the exchange is read so the session is idle
    again). A logged key given again is the writer's to refuse (test_idempotence); the database
    backs it on PostgreSQL only (migration 0004)."""
    store, record = _one_deposit_logged(db, "taken")
    head = record.sequence
    try:
        fresh = _at(record, head + 1, "fresh")
        clash = _at(record, head + 2, "clash")
        clash = clash._replace(postings=clash.postings + clash.postings[:1])  # (sequence, idx) twice
        with pytest.raises(StoreError):
            store.append([fresh, clash])
        assert store.last_sequence() == head
        assert store.find_keys(["fresh"]) == {}
        assert store.read(head + 1, 5) == []
        store.append([fresh])
        assert store.last_sequence() == head + 1
        assert store.read(head + 1, 1)[0] == fresh
    finally:
        store.close()


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_durability_a_failure_mid_copy_leaves_the_postgresql_session_usable(
    db: tuple[str, str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: the append fails on the client while its COPY is open (here the sending of
    the rows raises): the rest of the exchange is read and the COPY refused, so nothing of the
    group is written and the writer session's next append commits."""
    from psycopg import generators

    store, record = _one_deposit_logged(db, "before")
    head = record.sequence
    try:
        nxt = _at(record, head + 1, "after")

        def broken(*_: object, **__: object) -> None:
            raise RuntimeError("the client failed while sending rows")

        with monkeypatch.context() as patch:
            patch.setattr(generators, "copy_to", broken)
            with pytest.raises(RuntimeError, match="while sending rows"):
                store.append([nxt])
        assert store.last_sequence() == head
        assert store.find_keys(["after"]) == {}
        store.append([nxt])
        assert store.last_sequence() == head + 1
        assert store.read(head + 1, 1)[0] == nxt
    finally:
        store.close()
