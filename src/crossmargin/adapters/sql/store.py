"""`engine.ports.EventStore` over SQLAlchemy 2 Core: SQLite (WAL, synchronous=FULL) by default,
PostgreSQL (psycopg 3) by URL.

    store = SqlEventStore.connect("sqlite:///crossmargin.db")
    store = SqlEventStore.connect("postgresql+psycopg://postgres@127.0.0.1:5432/test", schema="venue")

At connect: Alembic migrations to head, then the durability settings are read back and asserted
(refusing to start otherwise, `DurabilityError`):
    SQLite      journal_mode = wal, synchronous = FULL (2): a commit is fsync'd before it returns
                (https://www.sqlite.org/pragma.html#pragma_synchronous)
    PostgreSQL  fsync = on, full_page_writes = on, synchronous_commit not off
                (https://www.postgresql.org/docs/current/runtime-config-wal.html)
and, on PostgreSQL, a session advisory lock per schema is taken: a second writer is refused.

`append` is one transaction: the counter row moves from first-1 to last (a conditional UPDATE, so
a second writer or a gap fails it), the event rows and posting rows are inserted; nothing is
written when any part fails. Group commit is the venue's: it hands a whole group to one `append`.

On PostgreSQL every append goes through the session that holds the writer lock (a connection of
its own, outside the pool): the log is only ever written while the lock is held, and if that
session dies (a server restart, a dropped connection) the next append fails and the venue stops,
rather than writing on through a fresh pooled connection without the lock. It also spares each
group the pool's checkout ping. An append there is one simple query carrying the counter's UPDATE
and the two binary COPY streams, one implicit transaction in 3 round trips (`pg_copy`; 8 with
BEGIN, COPY by cursor and COMMIT each their own, 6 with BEGIN beside the UPDATE).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import logging
import re
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

from crossmargin.adapters.sql.key_index import (
    KeyIndexCorruptError,
    SqliteKeyIndex,
    remove_side_files,
    side_path,
)
from crossmargin.adapters.sql.schema import counter, events, postings, snapshot_chunks, snapshots
from crossmargin.engine.journal import LogRecord, PostingRow, Snapshot, new_tuple
from crossmargin.errors import DurabilityError, InputError, StoreError

DEFAULT_URL = "sqlite:///crossmargin.db"
MIGRATIONS = Path(__file__).parent / "migrations"
HEAD_REVISION = "0004_sqlite_key_index"  # the newest script in migrations/versions
# A snapshot's payload is written in pieces of this size, each its own transaction: on SQLite a
# writer waiting for the lock retries after 1, 3, 8, 18 ms (its default busy handler), and a
# 256 KB transaction takes ~1.8 ms here (1 MB ~5 ms, one 20 MB row 120-180 ms), so a group
# commit of the log waits ~3 ms at most behind one; the whole payload takes ~1.3x as long as
# one row (AMD EPYC family 25 model 1, docs/service.md, twentieth round).
SNAPSHOT_CHUNK_BYTES = 1 << 18
_LOG = logging.getLogger(__name__)
_IN_LIST = 500  # values in one SQLite IN list, under the 999 bound variables of older builds
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class SqlEventStore:
    """The event log in a SQL database (module docstring)."""

    def __init__(self, engine: Engine, *, schema: str | None, writer: Any | None) -> None:
        """`writer`: on PostgreSQL the psycopg connection holding the writer lock (autocommit,
        `_writer_session`), through which every append goes; None on SQLite."""
        self.engine = engine
        self.schema = schema
        self._writer = writer
        mark = placeholder(engine.dialect.paramstyle)
        # The counter moves from first - 1 to last or not at all: a second writer is refused.
        self._advance = f"UPDATE counter SET value = {mark} WHERE name = 'events' AND value = {mark}"
        between = f"WHERE sequence >= {mark} AND sequence <= {mark} ORDER BY sequence"
        self._read_events = f"SELECT {', '.join(EVENT_COLUMNS)} FROM events {between}"
        self._read_postings = f"SELECT {', '.join(POSTING_COLUMNS)} FROM postings {between}, idx"
        self._postgresql = engine.dialect.name == "postgresql"
        self._closed = False
        self._binary_rows: dict[str, Any] | None = None  # pg_copy.BinaryRows per table, on first append
        # Errors of the driver itself (the COPY path talks to it directly) are commit failures too.
        self._driver_error: type[Exception] = engine.dialect.loaded_dbapi.Error
        self._key_index: SqliteKeyIndex | None = None  # SQLite's keys, beside the log (key_index)

    @classmethod
    def connect(cls, url: str = DEFAULT_URL, *, schema: str | None = None) -> SqlEventStore:
        """Open (creating and migrating when needed) the log at `url`; `schema` (PostgreSQL
        only) keeps it in its own schema, e.g. one per test run."""
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise InputError("schema", f"must match {_SCHEMA_NAME.pattern}, got {schema!r}")
        engine = _engine(url, schema)
        if schema is not None and engine.dialect.name != "postgresql":
            engine.dispose()  # a schema for SQLite was silently ignored: one file is one log
            raise InputError(
                "schema", "applies to PostgreSQL only; a SQLite log is its file (another --db path)"
            )
        try:
            if schema is not None and engine.dialect.name == "postgresql":
                with engine.begin() as conn:
                    conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            assert_durable(engine)
            writer = _writer_session(engine, schema)
        except (
            sa.exc.OperationalError,
            sa.exc.InterfaceError,
            engine.dialect.loaded_dbapi.OperationalError,
        ) as error:
            engine.dispose()
            raise StoreError(
                f"cannot open the database at {_shown(engine.url)}: {_first_line(error)}"
            ) from None
        try:
            migrate(engine)
        except BaseException:
            if writer is not None:
                writer.close()
            raise
        store = cls(engine, schema=schema, writer=writer)
        if engine.dialect.name == "sqlite":
            store._open_key_index()
        return store

    def _open_key_index(self) -> None:
        """SQLite: the idempotency keys' side index (`key_index`), checked against the log (a
        file of another log, or ahead of this one, is rebuilt; one SQLite cannot read is
        removed and rebuilt, saying so), brought up to its last record, its thread started."""
        database = self.engine.url.database
        assert database  # a file: WAL, asserted at connect, needs one
        path = side_path(database)
        try:
            index = self._caught_up_index(path)
        except (sqlite3.DatabaseError, KeyIndexCorruptError) as error:  # derived data: rebuilt
            _LOG.warning(
                "idempotency key index %s unreadable or inconsistent (%s): rebuilt from the log", path, error
            )
            remove_side_files(path)
            index = self._caught_up_index(path)
        index.start()
        self._key_index = index

    def _caught_up_index(self, path: Path) -> SqliteKeyIndex:
        index = SqliteKeyIndex(path, self._read_keyed)
        try:
            position, last = index.position(), self.last_sequence()
            if position.through > last or (
                position.through and self._record_hash_at(position.through) != position.record_hash
            ):
                index.reset()
            index.catch_up(last)
        except BaseException:
            index.close()
            raise
        return index

    # -- EventStore ------------------------------------------------------------------------------

    def append(self, records: Sequence[LogRecord]) -> None:
        if not records:
            return
        if self._closed:
            raise StoreError("the store is closed: nothing more is appended")
        first, last = records[0].sequence, records[-1].sequence
        if last - first + 1 != len(records):
            raise StoreError("records are not consecutive")
        event_rows = [_event_tuple(r) for r in records]
        posting_rows: list[tuple[Any, ...]] = [p for r in records for p in r.postings]  # column order
        try:
            if self._postgresql:
                self._append_in_writer_session(first, last, event_rows, posting_rows)
                return
            with self.engine.begin() as conn:
                # Driver SQL: the expression's build and compile-cache lookup cost ~1 us per
                # event at ~300 events a group (issue 16).
                moved = conn.exec_driver_sql(self._advance, (last, first - 1))
                if moved.rowcount != 1:
                    raise StoreError(f"records from {first} do not continue the log (another writer?)")
                driver = conn.connection.driver_connection
                assert driver is not None
                sqlite_values(driver, "events", EVENT_COLUMNS, event_rows)
                if posting_rows:
                    sqlite_values(driver, "postings", POSTING_COLUMNS, posting_rows)
        except (sa.exc.SQLAlchemyError, self._driver_error) as error:
            raise StoreError(
                f"commit failed: {type(error).__name__}: {error.args[0] if error.args else ''}"
            ) from error
        if self._key_index is not None:  # committed: its keys go to the side index's thread
            self._key_index.handed(records)

    def _append_in_writer_session(
        self, first: int, last: int, event_rows: list[tuple[Any, ...]], posting_rows: list[tuple[Any, ...]]
    ) -> None:
        """PostgreSQL: one simple query on the writer lock's session, one implicit transaction:
        the counter's UPDATE, then the event rows and the posting rows by binary COPY
        (`pg_copy.run_with_copies`: 3 round trips a group; the UPDATE refused, nothing is
        written). Binary COPY, the column types given: the text format escaped every payload's
        bytes as hex for the server to parse back (a group of 128 deposits: CPU 7.3-10.4 ->
        5.4-5.6 us an event, AMD Zen 5; https://www.postgresql.org/docs/current/sql-copy.html,
        Binary Format). The two integers are formatted by `int`, nothing else goes into the SQL."""
        from crossmargin.adapters.sql import pg_copy  # psycopg's internals: on PostgreSQL only

        writer = self._writer
        assert writer is not None  # open on PostgreSQL: `close` clears it
        if self._binary_rows is None:
            self._binary_rows = {t: pg_copy.BinaryRows(writer, COPY_TYPES[t]) for t in COPY_TYPES}
        move = f"UPDATE counter SET value = {int(last)} WHERE name = 'events' AND value = {int(first) - 1}"
        rows = {"events": (EVENT_COLUMNS, event_rows), "postings": (POSTING_COLUMNS, posting_rows)}
        copies = [
            (_copy_sql(table, columns), self._binary_rows[table].payload(table_rows))
            for table, (columns, table_rows) in rows.items()
            if table_rows  # a group of records without postings has no postings COPY
        ]
        refusal = f"records from {first} do not continue the log (another writer?)"
        try:
            pg_copy.run_with_copies(
                writer, move, copies, lambda moved: None if moved.command_tuples == 1 else refusal
            )
        except pg_copy.CopyRefusedError as refused:
            raise StoreError(str(refused)) from None

    def read(self, from_sequence: int, limit: int) -> list[LogRecord]:
        if limit <= 0:
            return []
        upto = from_sequence + limit - 1
        # Driver SQL, rows as the driver's tuples: read through SQLAlchemy's Row objects and
        # keyword-built records this took ~2/3 of a start-up's verification (~13 of 20 us a
        # record; docs/service.md, twenty-first round). The columns are in the records' field
        # order (tests/adapters/sql/test_store_columns.py), so a posting row is its tuple.
        with self.engine.connect() as conn:
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]  # checked out
            try:
                cursor.execute(self._read_events, (from_sequence, upto))
                rows = cursor.fetchall()
                cursor.execute(self._read_postings, (from_sequence, upto))
                posting_rows = cursor.fetchall()
            finally:
                cursor.close()
        by_sequence: dict[int, list[PostingRow]] = {}
        for p in posting_rows:
            by_sequence.setdefault(p[0], []).append(new_tuple(PostingRow, tuple(p)))
        empty: tuple[PostingRow, ...] = ()
        return [
            new_tuple(
                LogRecord,
                (*r[:5], bytes(r[5]), r[6], r[7], tuple(by_sequence.get(r[0], empty)), r[8]),
            )
            for r in rows
        ]

    def last_sequence(self) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(counter.c.value).where(counter.c.name == "events")).scalar_one()
        return int(value)

    def idempotency_keys(self, from_sequence: int, limit: int) -> list[str]:
        if limit <= 0:
            return []
        upto = from_sequence + limit - 1
        with self.engine.connect() as conn:
            keys = conn.execute(
                sa.select(events.c.idempotency_key).where(
                    events.c.sequence >= from_sequence,
                    events.c.sequence <= upto,
                    events.c.idempotency_key.is_not(None),
                )
            ).scalars()
            return [str(k) for k in keys]

    def find_keys(self, keys: Sequence[str]) -> dict[str, tuple[int, str]]:
        if not keys:
            return {}
        if self._key_index is not None:
            return self._find_keys_sqlite(keys)
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(events.c.idempotency_key, events.c.sequence, events.c.body_sha256).where(
                    events.c.idempotency_key.in_(list(keys))
                )
            ).all()
        return {str(r.idempotency_key): (int(r.sequence), str(r.body_sha256)) for r in rows}

    def _find_keys_sqlite(self, keys: Sequence[str]) -> dict[str, tuple[int, str]]:
        """The side index's candidates (read with the `through` they are exact to) and the log's
        records after it; each compared on the key itself (a hash may collide)."""
        assert self._key_index is not None
        candidates, through = self._key_index.candidates(keys)
        wanted = list(dict.fromkeys(keys))
        found: list[tuple[Any, ...]] = []
        with self.engine.connect() as conn:
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]  # checked out
            try:
                for i in range(0, len(candidates), _IN_LIST):
                    chunk = candidates[i : i + _IN_LIST]
                    cursor.execute(
                        f"SELECT idempotency_key, sequence, body_sha256 FROM events"
                        f" WHERE sequence IN ({','.join('?' * len(chunk))})",
                        chunk,
                    )
                    found.extend(cursor.fetchall())
                for i in range(0, len(wanted), _IN_LIST):
                    chunk_keys = wanted[i : i + _IN_LIST]
                    cursor.execute(
                        "SELECT idempotency_key, sequence, body_sha256 FROM events WHERE sequence > ?"
                        f" AND idempotency_key IN ({','.join('?' * len(chunk_keys))})",
                        [through, *chunk_keys],
                    )
                    found.extend(cursor.fetchall())
            finally:
                cursor.close()
        asked = set(wanted)
        return {str(k): (int(s), str(b)) for k, s, b in found if k in asked}

    def _read_keyed(self, after: int, upto: int) -> list[tuple[int, str | None, str]]:
        """(sequence, idempotency key, record hash) of the records after `after` up to `upto`."""
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT sequence, idempotency_key, record_hash FROM events"
                " WHERE sequence > ? AND sequence <= ? ORDER BY sequence",
                (after, upto),
            ).all()
        return [(int(r[0]), r[1], str(r[2])) for r in rows]

    def _record_hash_at(self, sequence: int) -> str | None:
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(events.c.record_hash).where(events.c.sequence == sequence)
            ).scalar()
        return None if value is None else str(value)

    def save_snapshot(self, snapshot: Snapshot, *, keep: int | None = None) -> None:
        """The payload in chunks of SNAPSHOT_CHUNK_BYTES, each its own transaction, then the
        snapshots row naming their count: the log's commits go between the chunks (one 20 MB
        row held SQLite's write lock 120-180 ms), and a snapshot is listed only once whole. What
        a writer that died midway left (chunks with no row) is removed first. With `keep`, the
        rows beyond the newest `keep` are deleted in the transaction that inserts this one (a
        writer killed after it never leaves one too many listed), their chunks after it."""
        with self.engine.begin() as conn:
            conn.execute(snapshots.delete().where(snapshots.c.sequence == snapshot.sequence))
        self._drop_unlisted_chunks()
        payload = memoryview(snapshot.payload)
        count = max(1, -(-len(payload) // SNAPSHOT_CHUNK_BYTES))
        for ordinal in range(count):
            piece = payload[ordinal * SNAPSHOT_CHUNK_BYTES : (ordinal + 1) * SNAPSHOT_CHUNK_BYTES]
            with self.engine.begin() as conn:
                conn.execute(
                    snapshot_chunks.insert().values(
                        sequence=snapshot.sequence, ordinal=ordinal, data=bytes(piece)
                    )
                )
        with self.engine.begin() as conn:
            conn.execute(
                snapshots.insert().values(
                    sequence=snapshot.sequence,
                    record_hash=snapshot.record_hash,
                    payload=b"",
                    payload_sha256=snapshot.payload_sha256,
                    chunks=count,
                )
            )
            if keep is not None:
                self._unlist_older(conn, keep)
        if keep is not None:
            self._drop_unlisted_chunks()

    def snapshots(self) -> Iterator[Snapshot]:
        """Newest first; each payload read when reached (inline before migration 0003, else its
        chunks in order: a missing or extra chunk leaves bytes that fail the checksum)."""
        with self.engine.connect() as conn:
            heads = conn.execute(
                sa.select(
                    snapshots.c.sequence,
                    snapshots.c.record_hash,
                    snapshots.c.payload_sha256,
                    snapshots.c.chunks,
                ).order_by(snapshots.c.sequence.desc())
            ).all()
        for head in heads:
            yield Snapshot(
                sequence=int(head.sequence),
                record_hash=head.record_hash,
                payload=self._snapshot_payload(int(head.sequence), head.chunks),
                payload_sha256=head.payload_sha256,
            )

    def _snapshot_payload(self, sequence: int, chunks: int | None) -> bytes:
        with self.engine.connect() as conn:
            if chunks is None:
                inline = sa.select(snapshots.c.payload).where(snapshots.c.sequence == sequence)
                return bytes(conn.execute(inline).scalar_one())
            pieces = conn.execute(
                sa.select(snapshot_chunks.c.data)
                .where(snapshot_chunks.c.sequence == sequence)
                .order_by(snapshot_chunks.c.ordinal)
            ).scalars()
            return b"".join(bytes(piece) for piece in pieces)

    def keep_newest_snapshots(self, count: int) -> None:
        """The older rows first (those snapshots are then no longer listed), then their chunks."""
        with self.engine.begin() as conn:
            self._unlist_older(conn, count)
        self._drop_unlisted_chunks()

    @staticmethod
    def _unlist_older(conn: sa.Connection, count: int) -> None:
        """Delete every snapshots row but the newest `count` (their chunks stay until collected)."""
        kept = sa.select(snapshots.c.sequence).order_by(snapshots.c.sequence.desc()).limit(count).subquery()
        conn.execute(snapshots.delete().where(snapshots.c.sequence.not_in(sa.select(kept.c.sequence))))

    def _drop_unlisted_chunks(self) -> None:
        """Every chunk whose snapshot has no row (dropped, replaced, or a save that died midway),
        one transaction each: freeing a large payload at once would hold SQLite's write lock as
        writing it in one piece did."""
        with self.engine.connect() as conn:
            stale = conn.execute(
                sa.select(snapshot_chunks.c.sequence, snapshot_chunks.c.ordinal).where(
                    snapshot_chunks.c.sequence.not_in(sa.select(snapshots.c.sequence))
                )
            ).all()
        for chunk in stale:
            with self.engine.begin() as conn:
                conn.execute(
                    snapshot_chunks.delete().where(
                        snapshot_chunks.c.sequence == chunk.sequence,
                        snapshot_chunks.c.ordinal == chunk.ordinal,
                    )
                )

    def truncate_after(self, sequence: int) -> None:
        index = self._key_index
        if index is not None:  # trimmed first: an index behind the log is caught up, never ahead
            index.stop()
            index.trim(sequence, self._record_hash_at(sequence) or "")
        with self.engine.begin() as conn:
            conn.execute(postings.delete().where(postings.c.sequence > sequence))
            conn.execute(events.delete().where(events.c.sequence > sequence))
            conn.execute(snapshots.delete().where(snapshots.c.sequence > sequence))
            conn.execute(snapshot_chunks.delete().where(snapshot_chunks.c.sequence > sequence))
            conn.execute(counter.update().where(counter.c.name == "events").values(value=sequence))
        if index is not None:
            index.start()

    def close(self) -> None:
        self._closed = True
        if self._key_index is not None:
            self._key_index.close()
            self._key_index = None
        if self._writer is not None:
            # Released here, not left to the server: closing the connection only ends its session
            # once the server notices, and a store opened at once on the same schema (a restart,
            # a recovery) could find the lock still held and refuse to start.
            with contextlib.suppress(self._driver_error):  # a dead session holds no lock
                self._writer.execute("SELECT pg_advisory_unlock_all()")
            self._writer.close()
            self._writer = None
        self.engine.dispose()


# ---------------------------------------------------------------------------------- set-up


def _engine(url: str, schema: str | None) -> Engine:
    """The SQLAlchemy engine of `url`, refused naming the URL (InputError "url") when it is not a
    URL, names another database than SQLite or PostgreSQL, or a driver that is not installed:
    refused before anything is opened or created."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise InputError(
            "url",
            f"not a database URL: {url!r} (sqlite:///crossmargin.db or postgresql+psycopg://user@host/db)",
        ) from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise InputError("url", f"unsupported database {parsed.get_backend_name()!r}: sqlite or postgresql")
    try:
        return _create_engine(url, schema)
    except (ImportError, sa.exc.NoSuchModuleError) as error:
        driver = parsed.get_driver_name()
        raise InputError(
            "url",
            f"the {parsed.get_backend_name()} driver {driver!r} is not available ({error}); "
            "the drivers crossmargin installs: sqlite (pysqlite) and postgresql+psycopg",
        ) from None


def _shown(url: sa.URL) -> str:
    """`url` as it may be printed: its password hidden."""
    return url.render_as_string(hide_password=True)


def _first_line(error: BaseException) -> str:
    cause = getattr(error, "orig", None) or error
    return str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__


def _create_engine(url: str, schema: str | None) -> Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.close()

        return engine
    connect_args: dict[str, Any] = {}
    if schema is not None:
        connect_args["options"] = f"-csearch_path={schema}"
    return sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)


def assert_durable(engine: Engine) -> None:
    """Read the durability settings back; DurabilityError (refuse to start) unless durable."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            mode = str(conn.exec_driver_sql("PRAGMA journal_mode").scalar())
            if mode.lower() != "wal":
                raise DurabilityError("sqlite journal_mode", mode, "wal (a file database)")
            sync = int(conn.exec_driver_sql("PRAGMA synchronous").scalar() or 0)
            if sync < 2:
                raise DurabilityError("sqlite synchronous", str(sync), "2 (FULL) or 3 (EXTRA)")
            return
        for setting, wanted in (("fsync", {"on"}), ("full_page_writes", {"on"})):
            value = str(conn.exec_driver_sql(f"SHOW {setting}").scalar())
            if value not in wanted:
                raise DurabilityError(setting, value, "on")
        sync_commit = str(conn.exec_driver_sql("SHOW synchronous_commit").scalar())
        if sync_commit == "off":
            raise DurabilityError(
                "synchronous_commit", sync_commit, "on, local, remote_write or remote_apply"
            )


def _writer_session(engine: Engine, schema: str | None) -> Any | None:
    """PostgreSQL: a connection of its own (outside the pool, in autocommit mode) holding a
    session advisory lock for the store's life; a second writer on the same schema is refused,
    and every append goes through this session (module docstring). (SQLite: the counter's
    conditional update refuses a second writer.)"""
    if engine.dialect.name != "postgresql":
        return None
    key = writer_lock_key(schema)
    # Opened as the pool would open one (the URL's arguments, the schema's search path), but not
    # from the pool: it is closed with the store, never handed to another user.
    args, kwargs = engine.dialect.create_connect_args(engine.url)
    if schema is not None:
        kwargs["options"] = f"-csearch_path={schema}"
    writer = engine.dialect.loaded_dbapi.connect(*args, **kwargs)
    writer.autocommit = True
    got = writer.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]
    if not got:
        writer.close()
        raise StoreError(f"another venue is writing to schema {schema or 'public'!r}")
    return writer


def writer_lock_key(schema: str | None) -> int:
    """The advisory lock key of a schema's writer: the first 8 bytes of SHA-256 of
    "crossmargin:<schema>" as a signed 64-bit integer (public: any venue or tool on the same
    schema derives the same key)."""
    return int.from_bytes(
        hashlib.sha256(f"crossmargin:{schema or 'public'}".encode()).digest()[:8], "big", signed=True
    )


def migrate(engine: Engine) -> None:
    """Alembic upgrade to head, on this engine (idempotent). A database already at
    `HEAD_REVISION` is left alone without loading the migration scripts (a restart's fast path;
    a test holds the constant equal to the scripts' head)."""
    with engine.connect() as conn:
        if sa.inspect(conn).has_table("alembic_version"):
            current = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
            if current == [HEAD_REVISION]:
                return
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


EVENT_COLUMNS = (
    "sequence",
    "idempotency_key",
    "kind",
    "as_of_ns",
    "body_sha256",
    "payload",
    "previous_hash",
    "record_hash",
    "actor",
)
POSTING_COLUMNS = ("sequence", "idx", "debit_account", "credit_account", "asset", "amount_units", "kind")
# PostgreSQL's type of each column, in the columns' order, for binary COPY (schema.py's types:
# BigInteger int8, Integer int4, String text, LargeBinary bytea; tests/adapters/sql/test_store_columns.py).
COPY_TYPES = {
    "events": ("int8", "text", "text", "int8", "text", "bytea", "text", "text", "text"),
    "postings": ("int8", "int4", "text", "text", "text", "int8", "text"),
}


def placeholder(paramstyle: str) -> str:
    """The driver's positional placeholder: sqlite3's qmark, psycopg's format."""
    return "?" if paramstyle == "qmark" else "%s"


def insert_sql(table: str, columns: Sequence[str], paramstyle: str) -> str:
    """INSERT of `columns` into `table` with positional placeholders of the driver's style."""
    mark = placeholder(paramstyle)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"


def _copy_sql(table: str, columns: Sequence[str]) -> str:
    """COPY of `columns` into `table` from the client, PostgreSQL's binary format."""
    return f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"


# Rows per SQLite INSERT statement: 64 x 9 columns = 576 bound values, under the 999 of SQLite
# builds before 3.32 (https://www.sqlite.org/limits.html#max_variable_number).
SQLITE_ROWS_PER_STATEMENT = 64


def sqlite_values(driver: Any, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
    """`rows` into `table` on a sqlite3 connection as multi-row `INSERT ... VALUES (...), (...)`
    statements of 64, 32, ..., 1 rows (a dozen distinct statements, all in the connection's
    statement cache). Not `executemany`: it steps SQLite once per row and releases the GIL
    around each step, so a committer thread competing with the venue's writer waits for the
    GIL once per row (the convoy effect, bench/bench_sqlite_insert.py on a Zen 4 EPYC: 7.4 ms
    of wall time an event against one spinning Python thread, 0.24 ms with VALUES; alone, 7.7 ->
    5.2 us of CPU an event). In the venue: the committer's CPU per deposit 11-13 -> 8-10 us."""
    start, n = 0, len(rows)
    while start < n:
        k = min(SQLITE_ROWS_PER_STATEMENT, 1 << ((n - start).bit_length() - 1))
        chunk = rows[start : start + k]
        driver.execute(_values_sql(table, tuple(columns), k), list(itertools.chain.from_iterable(chunk)))
        start += k


@functools.cache
def _values_sql(table: str, columns: tuple[str, ...], rows: int) -> str:
    one = "(" + ",".join("?" * len(columns)) + ")"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES " + ",".join([one] * rows)


def _event_tuple(r: LogRecord) -> tuple[Any, ...]:
    return (*r[:8], r.actor)  # LogRecord's first eight fields are EVENT_COLUMNS' first eight


# A PostingRow is a tuple of POSTING_COLUMNS in this order, and a LogRecord starts with the first
# eight of EVENT_COLUMNS (tests/adapters/sql/test_store_columns.py): rows are inserted as they are.
