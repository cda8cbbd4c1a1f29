"""SQLite's idempotency keys beside the log (adapters.sql.key_index): a lookup finds exactly the
logged records of the keys asked, whatever runs, merges, lag, truncation or a lost or foreign
side file left; the index's write amplification stays O(levels) rows a key."""

from __future__ import annotations

import shutil
import sqlite3
import struct
import uuid
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossmargin.adapters.sql import key_index as key_index_module
from crossmargin.adapters.sql.key_index import IndexPosition, SqliteKeyIndex, remove_side_files, side_path
from crossmargin.adapters.sql.store import SqlEventStore
from crossmargin.engine.journal import LogRecord, record_hash
from crossmargin.engine.venue.key_filter import key_hashes

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


def _sequences(store: SqlEventStore, keys: list[str | None] | list[str]) -> dict[str, int]:
    """The logged sequence of each of `keys` the store finds."""
    return {k: s for k, (s, _) in store.find_keys([str(k) for k in keys]).items()}


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


def _closed_log(tmp_path: Path, keys: list[str | None]) -> str:
    """A log of `keys` in groups of 5, its store closed (the side file checkpointed)."""
    url = f"sqlite:///{tmp_path / 'log.db'}"
    store = SqlEventStore.connect(url)
    try:
        for i in range(0, len(keys), 5):
            _append(store, keys[i : i + 5])
    finally:
        store.close()
    assert not Path(f"{side_path(str(tmp_path / 'log.db'))}-wal").exists()
    return url


def test_key_index_corruption_a_flipped_bit_in_a_stored_hash_is_found_and_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """One bit of one key's stored hash flipped in the file's bytes: SQLite reads the page
    without a word and the key would be hidden (a retry applied twice). The index's thread
    finds the run's sums off before the first lookup is answered, and rebuilds the file."""
    _small_runs(monkeypatch)
    keys: list[str | None] = [f"k-{i}" for i in range(40)]
    url = _closed_log(tmp_path, keys)
    side = side_path(str(tmp_path / "log.db"))
    hidden = next(str(k) for k in keys if abs(int(key_hashes([str(k)]).view(np.int64)[0])) >= 2**47)
    stored = struct.pack(">q", int(key_hashes([hidden]).view(np.int64)[0]))  # 8 bytes, big-endian
    data = bytearray(side.read_bytes())
    at = data.find(stored)
    assert at > 0
    data[at + 7] ^= 0x01
    side.write_bytes(bytes(data))
    with sqlite3.connect(side) as flipped:  # the file as SQLite now reads it: the key is gone
        assert flipped.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert flipped.execute("SELECT count(*) FROM key_entries").fetchone() == (40,)
        bad = flipped.execute(
            "SELECT count(*) FROM key_entries WHERE key_hash = ?", (struct.unpack(">q", stored)[0],)
        )
        assert bad.fetchone() == (0,)

    with caplog.at_level("ERROR", logger="crossmargin.adapters.sql.key_index"):
        store = SqlEventStore.connect(url)
        try:
            found = store.find_keys([hidden])
            assert found[hidden][0] == keys.index(hidden) + 1
            index = _index_of(store)
            assert index.rebuilds == 1 and index.verify() is None
            assert _sequences(store, keys) == {str(k): i + 1 for i, k in enumerate(keys)}
        finally:
            store.close()
    assert "disagree" not in caplog.text and "rebuilt from the log" in caplog.text

    store = SqlEventStore.connect(url)  # the rebuilt file verifies: nothing more to do
    try:
        store.find_keys(["k-1"])
        assert _index_of(store).rebuilds == 0
    finally:
        store.close()


CORRUPTIONS = {
    "an_entry_s_sequence": "UPDATE key_entries SET sequence = sequence + 1000 WHERE sequence = 17",
    "a_run_s_count": "UPDATE key_runs SET keys = keys - 1 WHERE run = (SELECT min(run) FROM key_runs)",
    "a_gap_between_runs": "UPDATE key_runs SET first_sequence = first_sequence + 1"
    " WHERE run = (SELECT run FROM key_runs ORDER BY first_sequence LIMIT 1 OFFSET 1)",
    "an_entry_moved_to_another_run": "UPDATE key_entries SET run = run + 1000"
    " WHERE sequence = (SELECT min(sequence) FROM key_entries)",
    "a_run_s_sum": "UPDATE key_runs SET hash_low_sum = hash_low_sum + 1 WHERE run = (SELECT max(run) FROM key_runs)",
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_key_index_corruption_of_runs_and_entries_is_found_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, corruption: str
) -> None:
    _small_runs(monkeypatch)
    keys: list[str | None] = [f"k-{i}" for i in range(40)]
    url = _closed_log(tmp_path, keys)
    with sqlite3.connect(side_path(str(tmp_path / "log.db"))) as side:
        assert side.execute(CORRUPTIONS[corruption]).rowcount == 1
    store = SqlEventStore.connect(url)
    try:
        assert _sequences(store, keys) == {str(k): i + 1 for i, k in enumerate(keys)}
        assert _index_of(store).rebuilds == 1
        assert _index_of(store).verify() is None
    finally:
        store.close()


def test_key_index_corruption_in_a_merge_s_input_is_not_merged_but_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run spoilt while the venue runs: the merge that would carry it into a run with fresh
    sums checks its inputs first, and the file is rebuilt from the log instead."""
    _small_runs(monkeypatch)
    store = SqlEventStore.connect(f"sqlite:///{tmp_path / 'log.db'}")
    try:
        _append(store, [f"a-{i}" for i in range(8)])
        index = _index_of(store)
        index.stop()  # the first run written
        index.start()
        assert index.position().through == 8 and index.rebuilds == 0
        with sqlite3.connect(index.path) as side:
            side.execute("UPDATE key_entries SET key_hash = key_hash + 1 WHERE sequence = 3")
        _append(store, [f"b-{i}" for i in range(8)])  # two more runs at level 0: a merge of three
        _append(store, [f"b-{i}" for i in range(8, 16)])
        index.stop()
        assert index.rebuilds == 1 and index.failure is None
        assert index.verify() is None and index.position().through == 24
        asked = [f"a-{i}" for i in range(8)] + [f"b-{i}" for i in range(16)]
        assert {k: s for k, (s, _) in store.find_keys(asked).items()} == {
            k: i + 1 for i, k in enumerate(asked)
        }
    finally:
        store.close()


def test_key_index_of_the_earlier_format_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A side file written before the runs carried sums (user_version 0): dropped and rebuilt."""
    _small_runs(monkeypatch)
    keys: list[str | None] = [f"k-{i}" for i in range(20)]
    url = _closed_log(tmp_path, keys)
    side = side_path(str(tmp_path / "log.db"))
    remove_side_files(side)
    with sqlite3.connect(side) as old:
        old.execute(
            "CREATE TABLE key_runs (run INTEGER PRIMARY KEY, level INTEGER NOT NULL, first_sequence INTEGER"
            " NOT NULL, last_sequence INTEGER NOT NULL, keys INTEGER NOT NULL, last_record_hash TEXT NOT NULL)"
        )
        old.execute(
            "CREATE TABLE key_entries (run INTEGER NOT NULL, key_hash INTEGER NOT NULL, sequence INTEGER"
            " NOT NULL, PRIMARY KEY (run, key_hash, sequence)) WITHOUT ROWID"
        )
    store = SqlEventStore.connect(url)
    try:
        assert _sequences(store, keys) == {f"k-{i}": i + 1 for i in range(20)}
        assert _index_of(store).position().through == 20
    finally:
        store.close()
    with sqlite3.connect(side) as rebuilt:
        assert rebuilt.execute("PRAGMA user_version").fetchone() == (key_index_module.FORMAT,)


def test_key_index_corruption_found_when_trimming_rebuilds_up_to_the_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _small_runs(monkeypatch)
    store = SqlEventStore.connect(f"sqlite:///{tmp_path / 'log.db'}")
    try:
        _append(store, [f"k-{i}" for i in range(40)])
        index = _index_of(store)
        index.stop()
        with sqlite3.connect(index.path) as side:
            side.execute("UPDATE key_entries SET key_hash = key_hash - 1 WHERE sequence = 5")
        index.start()
        store.truncate_after(25)
        assert index.rebuilds == 1 and index.verify() is None
        assert index.position() == IndexPosition(25, store.read(25, 1)[0].record_hash)
        assert _sequences(store, [f"k-{i}" for i in range(40)]) == {f"k-{i}": i + 1 for i in range(25)}
    finally:
        store.close()
