"""API keys and the audit trail of requests, in the service's database (SQLAlchemy 2 Core).

Two tables beside the event log, in the same database (SQLite file or PostgreSQL):

    api_keys    key_id PK, role, account, label, created_ns, revoked_ns, salt, secret_hash (scrypt)
    api_audit   id PK, time_ns, key_id, role, method, path, account, status, sequence,
                idempotency_key, body_sha256

Keys are few and read on every request, so the store keeps them all in memory and writes through
(one process serves the venue: a revocation made here is effective at once). Audit rows are written
by one background thread in batches (every `flush_interval_s` or `batch_rows` rows, one
transaction each), so auditing never adds a commit to a request's latency; `close()` writes what is
queued. An accepted command is audited twice: here, and in the event log itself, whose row names
the actor (the key id) when the core records it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import sqlalchemy as sa

from crossmargin.errors import InputError
from crossmargin.service.keys import ApiKey, Role
from crossmargin.service.logs import LOGGER_NAME

METADATA = sa.MetaData()

API_KEYS = sa.Table(
    "api_keys",
    METADATA,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("account", sa.String(200), nullable=True),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("created_ns", sa.BigInteger, nullable=False),
    sa.Column("revoked_ns", sa.BigInteger, nullable=True),
    sa.Column("salt", sa.LargeBinary, nullable=False),
    sa.Column("secret_hash", sa.LargeBinary, nullable=False),
)

API_AUDIT = sa.Table(
    "api_audit",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time_ns", sa.BigInteger, nullable=False),
    sa.Column("key_id", sa.String(32), nullable=True),  # None: the request carried no valid key
    sa.Column("role", sa.String(16), nullable=True),
    sa.Column("method", sa.String(8), nullable=False),
    sa.Column("path", sa.String(500), nullable=False),
    sa.Column("account", sa.String(200), nullable=True),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("sequence", sa.BigInteger, nullable=True),  # the log sequence of an accepted command
    sa.Column("idempotency_key", sa.String(200), nullable=True),
    sa.Column("body_sha256", sa.String(64), nullable=True),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRecord:
    """One mutating request and what became of it (status; sequence when a command was accepted)."""

    time_ns: int
    key_id: str | None
    role: str | None
    method: str
    path: str
    account: str | None
    status: int
    sequence: int | None
    idempotency_key: str | None
    body_sha256: str | None


class KeyStore:
    """The `api_keys` table, mirrored in memory; the `api_audit` table, written in batches."""

    def __init__(self, engine: sa.Engine, *, flush_interval_s: float = 0.02, batch_rows: int = 1000) -> None:
        self._engine = engine
        METADATA.create_all(engine, checkfirst=True)
        with engine.connect() as connection:
            rows = connection.execute(sa.select(API_KEYS)).mappings().all()
        self._keys = {row["key_id"]: _key_of(row) for row in rows}
        self._lock = threading.Lock()
        self._audit: queue.Queue[AuditRecord | None] = queue.Queue()
        self._flush_interval_s = flush_interval_s
        self._batch_rows = batch_rows
        self.failed_rows = 0
        self._writer = threading.Thread(target=self._write_audit, name="api-audit-writer", daemon=True)
        self._writer.start()

    # -- keys --------------------------------------------------------------------------------------

    def get(self, key_id: str) -> ApiKey | None:
        return self._keys.get(key_id)

    def all(self) -> list[ApiKey]:
        return sorted(self._keys.values(), key=lambda k: (k.created_ns, k.key_id))

    def add(self, key: ApiKey) -> None:
        with self._lock, self._engine.begin() as connection:
            connection.execute(sa.insert(API_KEYS).values(**_row_of(key)))
            self._keys[key.key_id] = key

    def revoke(self, key_id: str, *, revoked_ns: int) -> ApiKey:
        """Mark a key revoked (kept for the audit trail); an unknown id is an InputError."""
        with self._lock:
            key = self._keys.get(key_id)
            if key is None:
                raise InputError("key_id", f"no key {key_id!r}")
            if key.revoked_ns is not None:
                return key
            with self._engine.begin() as connection:
                connection.execute(
                    sa.update(API_KEYS).where(API_KEYS.c.key_id == key_id).values(revoked_ns=revoked_ns)
                )
            revoked = ApiKey(**{**asdict(key), "revoked_ns": revoked_ns})
            self._keys[key_id] = revoked
            return revoked

    # -- audit -------------------------------------------------------------------------------------

    def audit(self, record: AuditRecord) -> None:
        """Queue one audit row (written within `flush_interval_s`)."""
        self._audit.put(record)

    def audit_rows(self, *, limit: int = 1000) -> Sequence[AuditRecord]:
        """The latest audit rows written, newest last (for the admin API and tests)."""
        query = sa.select(API_AUDIT).order_by(API_AUDIT.c.id.desc()).limit(limit)
        with self._engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [AuditRecord(**{k: v for k, v in row.items() if k != "id"}) for row in reversed(rows)]

    def flush(self) -> None:
        """Block until every audit row queued so far is written."""
        done = threading.Event()
        self._audit.put(_Marker(done))  # type: ignore[arg-type]
        done.wait()

    def close(self) -> None:
        """Write what is queued and stop the writer."""
        self._audit.put(None)
        self._writer.join()

    def _write_audit(self) -> None:
        stop = False
        while not stop:
            first = self._audit.get()
            batch: list[AuditRecord] = []
            markers: list[_Marker] = []
            item: object = first
            while True:
                if item is None:
                    stop = True
                elif isinstance(item, _Marker):
                    markers.append(item)
                else:
                    batch.append(item)  # type: ignore[arg-type]
                if stop or len(batch) >= self._batch_rows:
                    break
                try:
                    item = self._audit.get(timeout=self._flush_interval_s if batch else 0.0)
                except queue.Empty:
                    break
            if batch:
                self._write_batch(batch)
            for marker in markers:
                marker.done.set()

    def _write_batch(self, batch: list[AuditRecord]) -> None:
        """One transaction; on failure the rows are logged (never silently dropped) and the
        writer carries on, so one bad moment of the database does not end auditing."""
        try:
            with self._engine.begin() as connection:
                connection.execute(sa.insert(API_AUDIT), [asdict(r) for r in batch])
        except sa.exc.SQLAlchemyError as error:
            self.failed_rows += len(batch)
            logging.getLogger(LOGGER_NAME).error(
                "audit rows not written", extra={"rows": [asdict(r) for r in batch], "error": str(error)}
            )


@dataclass(frozen=True, slots=True)
class _Marker:
    done: threading.Event


def _key_of(row: sa.RowMapping) -> ApiKey:
    return ApiKey(
        key_id=row["key_id"],
        role=Role(row["role"]),
        account=row["account"],
        label=row["label"],
        created_ns=int(row["created_ns"]),
        revoked_ns=None if row["revoked_ns"] is None else int(row["revoked_ns"]),
        salt=bytes(row["salt"]),
        secret_hash=bytes(row["secret_hash"]),
    )


def _row_of(key: ApiKey) -> dict[str, object]:
    return {**asdict(key), "role": key.role.value}
