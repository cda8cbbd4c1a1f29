"""The idempotency keys of a SQLite log, indexed beside it: sorted runs in a side database file
(`<log>.keys`), written by a thread of their own, off the commit path.

Why not a UNIQUE index on `events.idempotency_key`, as PostgreSQL keeps: SQLite's WAL appends
every page a transaction dirtied, whole (https://www.sqlite.org/wal.html). A B-tree over random
keys (UUIDs, what clients send) dirties one leaf per key, so a group commit of 128 deposits
wrote ~128 index pages (512 KB) to the WAL and the committer's CPU went from 14 to 38 us an
event: 29k -> 14k events/s and ack p99 11 -> 22 ms (`bench_service.py`'s UUID-keyed run, AMD
EPYC family 25 model 17). PostgreSQL logs a tuple-sized WAL record per index entry and keeps
its pace (26k against 24k events/s in the same run), so it keeps its unique index.

Layout: a log-structured merge (O'Neil et al., "The log-structured merge-tree", Acta
Informatica 33, 1996), size-tiered. A run is the (64-bit XXH3 key hash, sequence) pairs of a
contiguous range of records, sorted and written once, under a run id larger than any before:
inserts land on the B-tree's right edge, each page written once. When `fanout` runs share a
level they are merged into one run of the next level, so a key is rewritten O(log_fanout n)
times, sequentially, instead of dirtying a random page each time.

    through   every keyed record with sequence <= through has its pair in a listed run
    find      probe every run for the keys' hashes (one query: <= fanout x levels runs), then
              read the candidate records from the log and compare the key itself (hashes may
              collide), plus a scan of the log's records after `through` (not handed over yet,
              or waiting to fill a run: at most `run_keys` + what the committer holds)

Derived data: the log holds every key. The file may be deleted and is rebuilt when the store
connects; it names the record hash of its `through`, so a file of another log is rebuilt and
one ahead of a truncated log is trimmed. Synchronous=NORMAL in WAL mode: a crash may lose its
newest runs (the log's scan covers them until they are written again), never a run's entries
without their listing or a listing without its entries (one transaction each).

Checked, because a key the index hides is a retry applied twice: SQLite checks its pages'
structure, not the values in them, so a flipped bit in a stored hash or sequence would go
unseen. Each run lists its entries' count and three sums (the hashes' high and low 32-bit
halves and the sequences: any one changed value changes a sum; a merged run's sums are its
inputs' added, so a merge never launders a bad input). Verified by the index's thread before
any lookup is answered (runs contiguous from sequence 1, each run's sums and bounds equal to its
entries'; one pass inside SQLite: 0.2-0.3 s a million keys, AMD EPYC family 25 model 17), once
the venue serves: on the first committed records or the first lookup, which waits for it (not
during the venue's recovery, which it slowed by as much); and on a merge's inputs before they
are merged. A mismatch is logged and the file rebuilt from the log: a lookup waits for the
start's; during a merge's, lookups scan the log past what is rebuilt so far (exact, slower).
"""

from __future__ import annotations

import logging
import operator
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from crossmargin.engine.journal import LogRecord
from crossmargin.engine.venue.key_filter import key_hashes

RUN_KEYS = 4096  # a run is written once this many keys wait (or the queue is idle)
FANOUT = 8  # runs of one level merged into one of the next
IDLE_FLUSH_S = 0.5  # a partial run is written after the committer is quiet this long
_ROWS_PER_INSERT = 300  # x 3 columns, under the 999 bound variables of older SQLite builds
_HASHES_PER_QUERY = 500  # with the runs' ids (tens), under the same bound
_LOG = logging.getLogger(__name__)
_KEYED_FIELDS = operator.itemgetter(0, 1, 7)  # a LogRecord's sequence, idempotency_key, record_hash

FORMAT = 2  # the file's PRAGMA user_version: 2 added the runs' sums; a file of another is rebuilt
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS key_runs (run INTEGER PRIMARY KEY, level INTEGER NOT NULL,"
    " first_sequence INTEGER NOT NULL, last_sequence INTEGER NOT NULL, keys INTEGER NOT NULL,"
    " last_record_hash TEXT NOT NULL, hash_high_sum INTEGER NOT NULL, hash_low_sum INTEGER NOT NULL,"
    " sequence_sum INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS key_entries (run INTEGER NOT NULL, key_hash INTEGER NOT NULL,"
    " sequence INTEGER NOT NULL, PRIMARY KEY (run, key_hash, sequence)) WITHOUT ROWID",
)

# A run's listing as verified: (run, first and last sequence, keys, the three sums), and what its
# entries add up to: count, the sums, the least and largest sequence. `>>` is arithmetic in SQLite
# as in numpy (`_sums`): a rebuilt file reopens without a rebuild (tests/adapters/sql/test_key_index.py).
_RUN_LISTING = (
    "SELECT run, first_sequence, last_sequence, keys, hash_high_sum, hash_low_sum, sequence_sum FROM key_runs"
)
_ENTRY_SUMS = (
    "SELECT run, count(*), sum(key_hash >> 32), sum(key_hash & 4294967295), sum(sequence),"
    " min(sequence), max(sequence) FROM key_entries"
)


class KeyIndexCorruptError(Exception):
    """The side file's entries disagree with their runs' listing: rebuilt from the log."""


# (sequence, idempotency key, record hash) of the log's records after a sequence, up to another,
# keyed or not (the last one's hash is what `through` names): the store's read of the log.
ReadKeyed = Callable[[int, int], list[tuple[int, str | None, str]]]


@dataclass(frozen=True, slots=True)
class IndexPosition:
    """How far the index is exact: `through` and the record hash it names (0, "" when empty)."""

    through: int
    record_hash: str


class SqliteKeyIndex:
    """The side file's runs: `handed` (records just committed), `candidates` (sequences whose key
    may be one of these), `trim`, `close`. Lookups and the indexer use their own connections."""

    def __init__(
        self,
        path: Path,
        read_keyed: ReadKeyed,
        *,
        run_keys: int | None = None,
        fanout: int | None = None,
        idle_flush_s: float | None = None,
    ) -> None:
        """Defaults: the module's RUN_KEYS, FANOUT and IDLE_FLUSH_S, read when constructed."""
        self.path = path
        self._read_keyed = read_keyed
        self._run_keys = RUN_KEYS if run_keys is None else run_keys
        self._fanout = FANOUT if fanout is None else fanout
        self._idle_flush_s = IDLE_FLUSH_S if idle_flush_s is None else idle_flush_s
        self._writer = _connect(path)
        try:
            self._reader = _connect(path)
        except BaseException:
            self._writer.close()
            raise
        self._reading = threading.Lock()  # one read transaction at a time on `_reader`
        self._queue: queue.SimpleQueue[Sequence[LogRecord] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        # Set once the thread has verified the runs (or given up on them: `_distrusted`); lookups
        # wait for it, so no answer rests on an unverified run.
        self._verified = threading.Event()
        self._distrusted = False  # the runs could be neither verified nor rebuilt: lookups scan the log
        self.failure: BaseException | None = None  # the indexer's error: lookups stay exact, slower
        self.rebuilds = 0  # runs found to disagree with their entries, and rebuilt from the log
        self.runs_written = 0
        self.merges = 0
        self.entries_written = 0  # pairs written, by runs and merges: the write amplification

    # -- set-up, on the connecting thread ------------------------------------------------------

    def position(self) -> IndexPosition:
        row = self._writer.execute(
            "SELECT last_sequence, last_record_hash FROM key_runs ORDER BY last_sequence DESC LIMIT 1"
        ).fetchone()
        return IndexPosition(0, "") if row is None else IndexPosition(int(row[0]), str(row[1]))

    def reset(self) -> None:
        """Forget every run (a file of another log: rebuilt from the log by `catch_up`)."""
        with self._writer:
            self._writer.execute("DELETE FROM key_entries")
            self._writer.execute("DELETE FROM key_runs")

    def trim(self, sequence: int, record_hash: str) -> None:
        """Drop the pairs after `sequence` (the log is being truncated there; `record_hash` is
        its record's), the thread stopped: it could write what it holds after `sequence`.
        O(index): truncation is a recovery's step, not a hot path. Verified first: the cut run's
        sums are recounted from its entries, which must not launder a bad one."""
        assert self._thread is None, "stop the index's thread before trimming"
        problem = self.verify()
        self._verified.set()  # checked here, on the trimming thread (or rebuilt, next)
        if problem is not None:
            self._rebuild(problem, sequence)
            return
        with self._writer:
            self._writer.execute("DELETE FROM key_entries WHERE sequence > ?", (sequence,))
            self._writer.execute("DELETE FROM key_runs WHERE first_sequence > ?", (sequence,))
            self._writer.execute(
                "UPDATE key_runs SET last_sequence = ?, last_record_hash = ?,"
                " (keys, hash_high_sum, hash_low_sum, sequence_sum) = (SELECT count(*),"
                "  coalesce(sum(key_hash >> 32), 0), coalesce(sum(key_hash & 4294967295), 0),"
                "  coalesce(sum(sequence), 0) FROM key_entries e WHERE e.run = key_runs.run)"
                " WHERE last_sequence > ?",
                (sequence, record_hash, sequence),
            )

    def catch_up(self, last_sequence: int, *, page: int = 65_536) -> int:
        """Index the log's records after `through` up to `last_sequence`, a run at a time; the
        number of records read."""
        start = self.position().through
        read = 0
        while start < last_sequence:
            upto = min(start + page, last_sequence)
            rows = self._read_keyed(start, upto)
            self._write_run(rows, start)
            read += len(rows)
            start = upto
        self._merge_full_levels()
        return read

    def start(self) -> None:
        """The index's thread: it verifies the runs once (on the first records handed over or the
        first lookup), then writes runs as records come."""
        self._thread = threading.Thread(target=self._index_loop, name="venue-key-index", daemon=True)
        self._thread.start()

    def verify(self) -> str | None:
        """What is wrong with the runs (a gap between them, or entries that disagree with a run's
        count, sums or bounds), None when nothing is."""
        runs = self._writer.execute(_RUN_LISTING + " ORDER BY first_sequence").fetchall()
        entries = {int(r[0]): r[1:] for r in self._writer.execute(_ENTRY_SUMS + " GROUP BY run")}
        expected_first = 1
        for run in runs:
            if run[1] != expected_first:
                return f"run {run[0]} starts at sequence {run[1]}, not {expected_first}"
            expected_first = run[2] + 1
        unlisted = set(entries) - {int(r[0]) for r in runs}
        if unlisted:
            return f"entries of runs {sorted(unlisted)[:5]} that no run lists"
        return _disagreement(runs, entries)

    # -- the store's calls ---------------------------------------------------------------------

    def handed(self, records: Sequence[LogRecord]) -> None:
        """Records just committed, in log order (the committer's thread: a queue put, no more)."""
        self._queue.put(records)

    def candidates(self, keys: Sequence[str]) -> tuple[list[int], int]:
        """The sequences of indexed records whose key hash is one of `keys`', and the `through`
        they are exact to: both read in one transaction of the side file."""
        if not self._verified.is_set() and self._thread is not None:
            self._queue.put(())  # wakes the thread for its check of the runs, if it still waits
            self._verified.wait()
        if self._distrusted or not self._verified.is_set():
            return [], 0  # every record "after 0": the log's scan answers alone, exact
        hashes = key_hashes(keys).view(np.int64).tolist()
        with self._reading, self._reader:  # a read transaction: runs and entries of the same moment
            self._reader.execute("BEGIN")
            runs = self._reader.execute("SELECT run, last_sequence FROM key_runs").fetchall()
            through = max((int(r[1]) for r in runs), default=0)
            found: list[int] = []
            if runs:
                run_marks = ",".join("?" * len(runs))
                for i in range(0, len(hashes), _HASHES_PER_QUERY):
                    chunk = hashes[i : i + _HASHES_PER_QUERY]
                    rows = self._reader.execute(
                        f"SELECT sequence FROM key_entries WHERE run IN ({run_marks})"
                        f" AND key_hash IN ({','.join('?' * len(chunk))})",
                        [r[0] for r in runs] + chunk,
                    ).fetchall()
                    found.extend(int(r[0]) for r in rows)
        return found, through

    def stop(self) -> None:
        """Write what waits (a partial run) and stop the thread (`start` starts another)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def close(self) -> None:
        self.stop()
        self._writer.close()
        self._reader.close()

    # -- the indexer's thread ------------------------------------------------------------------

    def _index_loop(self) -> None:
        # The runs are checked once the venue serves: on the first records committed or the first
        # lookup (which waits for it), not while the venue's recovery runs beside it (on two
        # CPUs the check, ~0.3 s a million keys, lengthened a since-snapshot open by as much).
        first = self._queue.get() if not self._verified.is_set() else ()
        if first is not None and not self._verified.is_set():
            self._verify_at_start()
        waiting: list[tuple[int, str | None, str]] = []
        after = self.position().through
        stopping = False
        while not stopping:
            if first != ():
                item, first = first, ()
            else:
                try:
                    item = self._queue.get(timeout=self._idle_flush_s)
                except queue.Empty:
                    item = ()  # quiet that long: what waits is written, a partial run
            if item is None:
                stopping = True
            elif item:
                waiting.extend(map(_KEYED_FIELDS, item))
                if len(waiting) < self._run_keys:
                    continue
            if self.failure is not None:  # stopped: nothing more is written, nothing kept
                waiting = []
            if not waiting:
                continue
            try:
                try:
                    after = self._write_run(waiting, after)
                    self._merge_full_levels()
                except KeyIndexCorruptError as corrupt:  # a merge's input: the file rebuilt
                    after = self._rebuild(str(corrupt), waiting[-1][0])
            except Exception as error:  # the thread's edge: said, and the log's scan keeps lookups exact
                self.failure = error
                _LOG.error("idempotency key index stopped at %d: %r", after, error)
            waiting = []

    def _verify_at_start(self) -> None:
        """Verify the runs (rebuilding them on a mismatch) before any lookup trusts them."""
        try:
            problem = self.verify()
            if problem is not None:
                self._rebuild(problem, self.position().through)
        except Exception as error:  # neither verified nor rebuilt: the log's scan answers
            self.failure = error
            self._distrusted = True
            _LOG.error("idempotency key index %s unverified, lookups scan the log: %r", self.path, error)
        finally:
            self._verified.set()

    def _rebuild(self, problem: str, through: int) -> int:
        """The runs dropped and written again from the log up to `through`; the new `through`."""
        _LOG.error("idempotency key index %s: %s; rebuilt from the log", self.path, problem)
        self.rebuilds += 1
        self.reset()
        self.catch_up(through)
        return self.position().through

    def _write_run(self, rows: list[tuple[int, str | None, str]], after: int) -> int:
        """One run of `rows` (consecutive records after `after`), if the file is still at
        `after` (another store on the same log may have written it); the new `through`."""
        if not rows:
            return after
        with self._writer:
            self._writer.execute("BEGIN IMMEDIATE")
            now = self.position().through
            if now != after or rows[0][0] != after + 1:
                # Written meanwhile by another store on the same log, or trimmed: the run is
                # what the log holds after where the file is, so that no record is skipped.
                _LOG.info("idempotency key index at %d, not %d: reading the log after it", now, after)
                rows = self._read_keyed(now, rows[-1][0]) if now < rows[-1][0] else []
                if not rows:
                    return now
            first_sequence, (last_sequence, _, last_hash) = rows[0][0], rows[-1]
            keyed = [(s, k) for s, k, _ in rows if k is not None]
            hashes, sequences, order = _sorted_pairs(keyed)
            run = self._next_run()
            self._writer.execute(
                "INSERT INTO key_runs VALUES (?, 0, ?, ?, ?, ?, ?, ?, ?)",
                (run, first_sequence, last_sequence, len(keyed), last_hash, *_sums(hashes, sequences)),
            )
            self._insert_entries(run, hashes[order], sequences[order])
        self.runs_written += 1
        self.entries_written += len(keyed)
        return int(last_sequence)

    def _merge_full_levels(self) -> None:
        """While a level holds `fanout` runs, merge its oldest `fanout` into one of the next."""
        while True:
            full = self._writer.execute(
                "SELECT level FROM key_runs GROUP BY level HAVING count(*) >= ? ORDER BY level LIMIT 1",
                (self._fanout,),
            ).fetchone()
            if full is None:
                return
            with self._writer:
                self._writer.execute("BEGIN IMMEDIATE")
                merged = self._writer.execute(
                    "SELECT run FROM key_runs WHERE level = ? ORDER BY run LIMIT ?", (full[0], self._fanout)
                ).fetchall()
                if len(merged) == self._fanout:  # (another store may have merged them meanwhile)
                    self.entries_written += self._merge([r[0] for r in merged], full[0] + 1)
                    self.merges += 1

    def _merge(self, merged: list[int], level: int) -> int:
        """`merged` runs into one new run at `level`, in the open transaction; the pairs moved.
        The inputs are verified first; the new run's sums are theirs added."""
        run, marks = self._next_run(), ",".join("?" * len(merged))
        listed = self._writer.execute(_RUN_LISTING + f" WHERE run IN ({marks})", merged).fetchall()
        summed = self._writer.execute(_ENTRY_SUMS + f" WHERE run IN ({marks}) GROUP BY run", merged)
        problem = _disagreement(listed, {int(r[0]): r[1:] for r in summed})
        if problem is not None:
            raise KeyIndexCorruptError(problem)
        self._writer.execute(
            "INSERT INTO key_runs SELECT ?, ?, min(first_sequence), max(last_sequence), sum(keys),"
            f" (SELECT last_record_hash FROM key_runs WHERE run IN ({marks})"
            "  ORDER BY last_sequence DESC LIMIT 1), sum(hash_high_sum), sum(hash_low_sum), sum(sequence_sum)"
            f" FROM key_runs WHERE run IN ({marks})",
            [run, level, *merged, *merged],
        )
        # In (key_hash, sequence) order under the largest run id: appended, not scattered.
        self._writer.execute(
            "INSERT INTO key_entries SELECT ?, key_hash, sequence FROM key_entries"
            f" WHERE run IN ({marks}) ORDER BY key_hash, sequence",
            [run, *merged],
        )
        moved = self._writer.execute(f"DELETE FROM key_entries WHERE run IN ({marks})", merged).rowcount
        self._writer.execute(f"DELETE FROM key_runs WHERE run IN ({marks})", merged)
        return int(moved)

    def _next_run(self) -> int:
        return int(self._writer.execute("SELECT coalesce(max(run), 0) + 1 FROM key_runs").fetchone()[0])

    def _insert_entries(
        self, run: int, hashes: npt.NDArray[np.int64], sequences: npt.NDArray[np.int64]
    ) -> None:
        rows = np.column_stack((np.full(hashes.size, run, np.int64), hashes, sequences))
        for i in range(0, hashes.size, _ROWS_PER_INSERT):
            chunk = rows[i : i + _ROWS_PER_INSERT]
            self._writer.execute(
                "INSERT INTO key_entries VALUES " + ",".join(["(?,?,?)"] * len(chunk)),
                chunk.ravel().tolist(),
            )


def _sorted_pairs(
    keyed: list[tuple[int, str]],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.intp]]:
    """(key hashes as signed 64-bit, sequences, the order sorting them by hash then sequence)."""
    hashes = key_hashes([k for _, k in keyed]).view(np.int64) if keyed else np.zeros(0, np.int64)
    sequences = np.fromiter((s for s, _ in keyed), np.int64, len(keyed))
    return hashes, sequences, np.lexsort((sequences, hashes))


def _sums(hashes: npt.NDArray[np.int64], sequences: npt.NDArray[np.int64]) -> tuple[int, int, int]:
    """A run's sums: its hashes' high 32 bits (signed), their low 32 bits, its sequences. Exact in
    int64 for runs under 2**31 keys (a merged run's, summed by SQLite, raises on overflow)."""
    return int((hashes >> 32).sum()), int((hashes & 0xFFFFFFFF).sum()), int(sequences.sum())


def _disagreement(runs: Sequence[tuple[int, ...]], entries: dict[int, tuple[int, ...]]) -> str | None:
    """The first run (a `_RUN_LISTING` row) whose entries (`_ENTRY_SUMS` by run) disagree with
    its count, sums or sequence bounds; None when none does."""
    for run, first, last, keys, *sums in runs:
        count, *entry_sums, least, largest = entries.get(run, (0, 0, 0, 0, first, last))
        if count != keys or entry_sums != sums:
            return f"run {run} lists {keys} keys and sums {sums}, its entries {count} and {entry_sums}"
        if least < first or largest > last:
            return f"run {run} of sequences {first}..{last} holds {least}..{largest}"
    return None


def _connect(path: Path) -> sqlite3.Connection:
    # Autocommit mode (isolation_level=None): transactions are the explicit BEGINs above.
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # derived data (module docstring)
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version != FORMAT:  # another format's tables (or none yet): dropped, rebuilt from the log
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'key_runs'").fetchone():
                _LOG.info("idempotency key index %s of format %d, not %d: rebuilt", path, version, FORMAT)
            conn.execute("DROP TABLE IF EXISTS key_entries")
            conn.execute("DROP TABLE IF EXISTS key_runs")
            conn.execute(f"PRAGMA user_version = {FORMAT}")
        for statement in _SCHEMA:
            conn.execute(statement)
    return conn


def remove_side_files(path: Path) -> None:
    """The index file and its WAL and shared-memory files, gone (a file SQLite cannot read)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def side_path(database: str) -> Path:
    """The index file of the SQLite log at `database`: beside it, `.keys` appended."""
    return Path(f"{database}.keys")
