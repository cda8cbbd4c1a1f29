"""SQLite's idempotency keys beside the log (adapters.sql.key_index): a lookup finds exactly the
logged records of the keys asked, whatever runs, merges, lag, truncation or a lost or foreign
side file left; the index's write amplification stays O(levels) rows a key."""

from __future__ import annotations

import shutil
import sqlite3
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossmargin.adapters.sql import key_index as key_index_module
from crossmargin.adapters.sql.key_index import IndexPosition, SqliteKeyIndex, side_path
from crossmargin.adapters.sql.store import SqlEventStore
from crossmargin.engine.journal import LogRecord, record_hash

BODY = "0" * 64


def _records(first: int, keys: list[str | None], previous: str) -> list[LogRecord]:
    """Consecutive records from `first` under `keys` (None: a derived record), hash-chained."""
    out: list[LogRecord] = []
    for offset, key in enumerate(keys):
        sequence = first + offset
        payload = b'{"command":{"kind":"tick"},"effects":{}}'
        digest = record_hash(
            previous_hash=previous,
            sequence=sequence,
            idempotency_key=key,
            kind="tick",
            as_of_ns=0,
            body_sha256=BODY,
            payload=payload,
        )
        out.append(LogRecord(sequence, key, "tick", 0, BODY, payload, previous, digest))
        previous = digest
    return out


def _append(store: SqlEventStore, keys: list[str | None]) -> list[LogRecord]:
    last = store.last_sequence()
    previous = store.read(last, 1)[0].record_hash if last else "0" * 64
    records = _records(last + 1, keys, previous)
    store.append(records)
    return records


def _small_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs of 8 keys, merged 3 at a time, written after 20 ms of quiet: every path in a test."""
    monkeypatch.setattr(key_index_module, "RUN_KEYS", 8)
    monkeypatch.setattr(key_index_module, "FANOUT", 3)
    monkeypatch.setattr(key_index_module, "IDLE_FLUSH_S", 0.02)


def _index_of(store: SqlEventStore) -> SqliteKeyIndex:
    index = store._key_index
    assert index is not None
    return index


def test_key_index_finds_each_logged_key_through_runs_merges_and_the_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _small_runs(monkeypatch)
    url = f"sqlite:///{tmp_path / 'log.db'}"
    store = SqlEventStore.connect(url)
    logged: dict[str, int] = {}
    try:
        for group in range(40):  # 40 groups of 5, every third record derived (no key)
            keys = [None if i % 3 == 2 else f"k-{group}-{i}" for i in range(5)]
            for r in _append(store, keys):
                if r.idempotency_key is not None:
                    logged[r.idempotency_key] = r.sequence
        asked = [*logged, "never-1", "never-2"]
        found = store.find_keys(asked)
        assert {k: s for k, (s, _) in found.items()} == logged  # the tail scan included
    finally:
        store.close()
    store = SqlEventStore.connect(url)  # reopened: every run written, merged levels
    try:
        index = _index_of(store)
        assert index.position().through == 200
        levels = [r[0] for r in sqlite3.connect(index.path).execute("SELECT level FROM key_runs")]
        assert max(levels) >= 2  # merged twice: 8-key runs, 3 to a level
        assert {k: s for k, (s, _) in store.find_keys(list(logged)).items()} == logged
    finally:
        store.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    groups=st.lists(st.lists(st.sampled_from([*"abcdefghij", None]), min_size=1, max_size=9), max_size=12),
    asked=st.lists(st.sampled_from([*"abcdefghijxyz"]), max_size=6),
)
def test_key_index_lookup_equals_a_scan_of_the_log(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    groups: list[list[str | None]],
    asked: list[str],
) -> None:
    """Keys logged in any groups (a key used once: the writer refuses a second use), any keys
    asked: the side index's answer is the log's, scanned."""
    _small_runs(monkeypatch)
    url = f"sqlite:///{tmp_path_factory.mktemp('log') / 'log.db'}"
    store = SqlEventStore.connect(url)
    used: set[str] = set()
    try:
        for group in groups:
            keys: list[str | None] = []
            for k in group:
                keys.append(None if k is None or k in used else k)
                if k is not None:
                    used.add(k)
            _append(store, keys)
        scanned = {
            r.idempotency_key: (r.sequence, r.body_sha256)
            for r in store.read(1, 10_000)
            if r.idempotency_key in asked
        }
        assert store.find_keys(asked) == scanned
    finally:
        store.close()


def test_key_index_is_rebuilt_when_its_file_is_lost_or_belongs_to_another_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _small_runs(monkeypatch)
    url = f"sqlite:///{tmp_path / 'log.db'}"
    store = SqlEventStore.connect(url)
    keys = [f"a-{i}" for i in range(30)]
    _append(store, list(keys))
    store.close()
    side = side_path(str(tmp_path / "log.db"))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{side}{suffix}").unlink(missing_ok=True)
    store = SqlEventStore.connect(url)  # lost: rebuilt from the log at connect
    try:
        assert _index_of(store).position().through == 30
        assert len(store.find_keys(keys)) == 30
    finally:
        store.close()

    other = f"sqlite:///{tmp_path / 'other.db'}"  # another log of the same length, other keys
    store = SqlEventStore.connect(other)
    _append(store, [f"b-{i}" for i in range(30)])
    store.close()
    shutil.copy(side, side_path(str(tmp_path / "other.db")))  # ... given the first log's index
    store = SqlEventStore.connect(other)
    try:
        position = _index_of(store).position()
        assert position.through == 30
        assert position.record_hash == store.read(30, 1)[0].record_hash  # rebuilt: its own
        assert store.find_keys(["a-3"]) == {}
        assert store.find_keys(["b-3"])["b-3"][0] == 4
    finally:
        store.close()


def test_key_index_a_side_file_sqlite_cannot_read_is_rebuilt_saying_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _small_runs(monkeypatch)
    url = f"sqlite:///{tmp_path / 'log.db'}"
    store = SqlEventStore.connect(url)
    keys: list[str | None] = [f"k-{i}" for i in range(20)]
    _append(store, keys)
    store.close()
    side = side_path(str(tmp_path / "log.db"))
    side.write_bytes(bytes(range(256)) * 20)  # not a database
    with caplog.at_level("WARNING", logger="crossmargin.adapters.sql.store"):
        store = SqlEventStore.connect(url)
    try:
        assert "unreadable" in caplog.text and "rebuilt from the log" in caplog.text
        assert _index_of(store).position().through == 20
        assert {k: s for k, (s, _) in store.find_keys([str(k) for k in keys]).items()} == {
            f"k-{i}": i + 1 for i in range(20)
        }
    finally:
        store.close()


def test_key_index_follows_a_truncated_log_and_a_second_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _small_runs(monkeypatch)
    url = f"sqlite:///{tmp_path / 'log.db'}"
    store = SqlEventStore.connect(url)
    try:
        _append(store, [f"k-{i}" for i in range(40)])
        store.truncate_after(25)  # the index's thread may still hold records 26..40: stopped first
        index = _index_of(store)
        assert index.position() == IndexPosition(25, store.read(25, 1)[0].record_hash)
    finally:
        store.close()
    store = SqlEventStore.connect(url)
    reader = SqlEventStore.connect(url)  # a second store on the log (a CLI audit, say)
    try:
        assert set(store.find_keys([f"k-{i}" for i in range(40)])) == {f"k-{i}" for i in range(25)}
        _append(store, [f"k-{i}" for i in range(25, 60)])  # the keys cut off, logged again
        found = reader.find_keys([f"k-{i}" for i in range(60)])
        assert {k: s for k, (s, _) in found.items()} == {f"k-{i}": i + 1 for i in range(60)}
    finally:
        reader.close()
        store.close()
    store = SqlEventStore.connect(url)
    try:
        assert _index_of(store).position().through == 60
        entries = (
            sqlite3.connect(_index_of(store).path).execute("SELECT count(*) FROM key_entries").fetchone()
        )
        assert entries[0] == 60  # each key once: the second store wrote no run twice
    finally:
        store.close()


def test_key_index_stopped_by_an_error_leaves_lookups_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The side file fails (a full disk, say): the error is kept and logged, nothing more is
    indexed, and every key is still found, in the log's records after the index's `through`."""
    _small_runs(monkeypatch)
    store = SqlEventStore.connect(f"sqlite:///{tmp_path / 'log.db'}")
    try:
        _append(store, [f"early-{i}" for i in range(10)])
        index = _index_of(store)
        index.stop()
        index.start()
        through = index.position().through

        def full_disk(*_: object) -> int:
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(index, "_write_run", full_disk)
        _append(store, [f"late-{i}" for i in range(30)])
        index.stop()
        assert isinstance(index.failure, sqlite3.OperationalError)
        assert index.position().through == through == 10
        found = store.find_keys([f"early-{i}" for i in range(10)] + [f"late-{i}" for i in range(30)])
        assert {k: s for k, (s, _) in found.items()} == {
            **{f"early-{i}": i + 1 for i in range(10)},
            **{f"late-{i}": i + 11 for i in range(30)},
        }
    finally:
        store.close()


def test_key_index_rewrites_a_key_o_levels_times(tmp_path: Path) -> None:
    """Write amplification, the reason for the layout: 50,000 random keys in groups of 128 (the
    default run size and fan-out) cost the side file fewer than 3 entry writes a key (runs of
    4,096 merged 8 at a time: levels 0 and 1 written), and the log's own file has no index on
    the keys."""
    url = f"sqlite:///{tmp_path / 'log.db'}"
    store = SqlEventStore.connect(url)
    keys: list[str | None] = [str(uuid.uuid4()) for _ in range(50_000)]
    try:
        for i in range(0, len(keys), 128):
            _append(store, keys[i : i + 128])
        index = _index_of(store)
        index.stop()  # what waits written
        assert index.position().through == 50_000
        assert index.merges >= 1
        assert index.entries_written / 50_000 < 3
        on_events = sqlite3.connect(tmp_path / "log.db").execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'"
        )
        assert [r[0] for r in on_events] == ["sqlite_autoindex_events_1"]  # the sequence's alone
    finally:
        store.close()
