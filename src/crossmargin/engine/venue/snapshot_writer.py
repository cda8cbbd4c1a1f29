"""A venue's snapshots, paced and written off the writer's path (`SnapshotWriter`).

The writer asks (`due`, then `start` on the committed state, the log drained); the snapshot is
encoded in a forked child holding a copy-on-write image of the state (`engine.venue.forked_encoding`)
or, from a detached copy, on this writer's own thread; that thread collects the bytes, stores
them (`EventStore.save_snapshot`), keeping the newest `VenueSettings.snapshots_kept` in the
same transaction.

Pacing (`VenueSettings.snapshot_busy_limit`): after a snapshot that took T seconds (the venue
writer's part, the encoding, the write) the next waits at least T / limit, one at a time, so
snapshots take at most that share of the time however large the state grows. A snapshot of a
20,000-account venue (2 MB) takes 50-90 ms; one every 10,000 deposits ran them at 79 % of the
rate without snapshots, ack p99 40 against 6.4 ms; paced at 2 %, 91 % and 6.6 ms (Intel Xeon,
family 6 model 167, bench/bench_snapshots.py; their cost to the commands is ~2.5x their own
share with the thread encoder, the writer and the committer waiting for the GIL meanwhile).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from crossmargin.engine.journal import Snapshot, canonical_json_pieces
from crossmargin.engine.ports import EventStore
from crossmargin.engine.venue.forked_encoding import ChildEncoding, fork_encoding
from crossmargin.engine.venue.key_filter import KeyFilter, KeyFilterImage
from crossmargin.engine.venue.settings import VenueSettings
from crossmargin.engine.venue.state import VenueState

# Items of a large list encoded per piece of a snapshot (~1 ms), the GIL offered between pieces.
SNAPSHOT_PIECE_ITEMS = 4096
# Keys hashed into a snapshot's key filter per step on the snapshot thread (~3 ms).
KEY_SLICE = 8192
# A forked snapshot child not done in this long is killed (a hung child must not block close);
# a 1,000,000-trader venue encodes in seconds.
SNAPSHOT_CHILD_TIMEOUT_S = 600.0

_log = logging.getLogger(__name__)


class SnapshotWriter:
    """Snapshots of one venue (module docstring). `stats`: the venue's counters, updated here
    (snapshots, snapshot_failures, snapshot_fork_failures, snapshot_seconds,
    snapshot_writer_seconds); `last_sequence`: the sequence of the snapshot the venue started
    from (0: none)."""

    def __init__(
        self, store: EventStore, settings: VenueSettings, stats: dict[str, Any], *, last_sequence: int
    ) -> None:
        self._store = store
        self._settings = settings
        self._stats = stats
        self._last_sequence = last_sequence
        # time.monotonic() before which no snapshot is asked for (`due`): +inf while one is
        # being written, its cost / snapshot_busy_limit after it once written.
        self._not_before = 0.0
        self._jobs: queue.Queue[_SnapshotJob | None] = queue.Queue()
        self._thread = threading.Thread(target=self._write_all, name="venue-snapshots", daemon=True)
        self._thread.start()

    def due(self, sequence: int) -> bool:
        """`snapshot_every` records since the last snapshot asked for, and (paced) the last
        one's pause over."""
        if sequence - self._last_sequence < self._settings.snapshot_every:
            return False
        return self._settings.snapshot_busy_limit is None or time.monotonic() >= self._not_before

    def start(
        self,
        state: VenueState,
        key_filter: KeyFilter | None = None,
        recent_keys: Callable[[], list[str]] | None = None,
    ) -> None:
        """On the venue's writer, with `state` committed: fork a child that encodes it (the
        writer pays the fork, O(pages mapped), not the encoding) or detach a copy for this
        writer's thread (the venue's writer copies containers; the sorting and encoding,
        O(state), happen there). A fork that fails (no process or descriptor to spare) falls
        back to the thread for this snapshot, counted and logged. `key_filter`: the venue's filter
        of the log's keys, whose image the snapshot carries (a restart then reads only the keys
        written after its `through`, `engine.venue.recovery`). In the child, from its copy-on-write
        image, with every key of `recent_keys()` (the writer's memory) and those waiting hashed
        in: exact through the snapshot's record, so a restart reads no key before it. For the
        thread, its image as it stands (the open stage copied) and the keys not in it yet are
        taken here (O(filter + memory) on the writer), and hashed in there: the same bytes."""
        started = time.monotonic()
        if self._settings.snapshot_busy_limit is not None:
            self._not_before = math.inf  # one at a time: until this one is written
        child: ChildEncoding | None = None
        if self._settings.snapshot_encoder == "fork":
            try:
                child = fork_encoding(
                    lambda: _snapshot_pieces(state, _child_image(state, key_filter, recent_keys))
                )
            except OSError as error:
                self._stats["snapshot_fork_failures"] += 1
                _log.warning(
                    "snapshot at %d: fork failed (%s), encoded on the snapshot thread", state.sequence, error
                )
        detached = state.detached() if child is None else None
        keys = _keys_at_snapshot(key_filter, recent_keys) if child is None else None
        took = time.monotonic() - started
        self._jobs.put(_SnapshotJob(state.sequence, state.head_hash, detached, keys, child, took))
        self._last_sequence = state.sequence

    def close(self) -> None:
        """Write the snapshots asked for, then stop the thread."""
        self._jobs.put(None)
        self._thread.join()

    def _write_all(self) -> None:
        """Write each snapshot asked for, in order. A failed one is counted, not fatal: the log
        is the truth, a snapshot only shortens the next start-up. Each one's cost (the venue
        writer's part and this thread's, a forked child's included: it holds a CPU) sets when
        the next may be asked for (`due`)."""
        limit = self._settings.snapshot_busy_limit
        while (job := self._jobs.get()) is not None:
            started = time.monotonic()
            try:
                self._store.save_snapshot(
                    Snapshot.of_payload(
                        sequence=job.sequence, record_hash=job.record_hash, payload=_payload(job)
                    ),
                    keep=self._settings.snapshots_kept,  # listed and the oldest unlisted at once
                )
                self._stats["snapshots"] += 1
            except Exception:
                self._stats["snapshot_failures"] += 1
                _log.exception("snapshot at %d not written", job.sequence)
            done = time.monotonic()
            took = job.writer_seconds + (done - started)
            self._stats["snapshot_seconds"] = took
            self._stats["snapshot_writer_seconds"] = job.writer_seconds
            if limit is not None:
                self._not_before = done + took / limit


class _SnapshotJob(NamedTuple):
    """A snapshot asked for: of the state after `sequence`, encoded by a forked `child` or from a
    detached `state` on the snapshot thread; `writer_seconds`: what starting it cost the writer."""

    sequence: int
    record_hash: str
    state: VenueState | None
    keys: _KeysAtSnapshot | None
    child: ChildEncoding | None
    writer_seconds: float


def _payload(job: _SnapshotJob) -> bytes:
    """The job's canonical JSON bytes: collected from its child, or encoded here."""
    if job.child is not None:
        return job.child.collect(timeout_s=SNAPSHOT_CHILD_TIMEOUT_S)
    assert job.state is not None
    image = None if job.keys is None else _completed(job.keys, through=job.sequence)
    return b"".join(_offering_the_gil(_snapshot_pieces(job.state, image)))


class _KeysAtSnapshot(NamedTuple):
    """For the snapshot thread: the key filter's image as it stood, and the keys not in its bits
    yet (waiting, then the writer's memory) in the order a forked child hashes them in; None
    for `pending` when the memory was not given (the image then stays exact through less)."""

    image: KeyFilterImage
    pending: list[str] | None


def _keys_at_snapshot(
    key_filter: KeyFilter | None, recent_keys: Callable[[], list[str]] | None
) -> _KeysAtSnapshot | None:
    if key_filter is None:
        return None
    pending = None if recent_keys is None else key_filter.pending() + recent_keys()
    return _KeysAtSnapshot(key_filter.image(), pending)


def _completed(keys: _KeysAtSnapshot, *, through: int) -> KeyFilterImage:
    """On the snapshot thread: the image with the pending keys hashed in (`KeyFilter.image_with`
    in a child), a slice at a time with the GIL offered between: 200,000 keys in one go held the
    GIL 70-100 ms, a slice of 8,192 ~3 ms (AMD EPYC family 25 model 17)."""
    if keys.pending is None:
        return keys.image
    whole = KeyFilter()
    whole.restore(keys.image)
    for start in range(0, len(keys.pending), KEY_SLICE):
        whole.add(keys.pending[start : start + KEY_SLICE])
        time.sleep(0)
    return whole.image_with([], through=through)


def _child_image(
    state: VenueState, key_filter: KeyFilter | None, recent_keys: Callable[[], list[str]] | None
) -> KeyFilterImage | None:
    """In a forked child: the filter's image with the memory's keys hashed in (its own copy)."""
    if key_filter is None:
        return None
    if recent_keys is None:
        return key_filter.image()
    return key_filter.image_with(recent_keys(), through=state.sequence)


def _snapshot_pieces(state: VenueState, key_filter: KeyFilterImage | None) -> Iterator[bytes]:
    """The snapshot payload of `state` (and the key filter's image) in pieces (their
    concatenation is its canonical JSON)."""
    image = None if key_filter is None else key_filter.to_dict()
    document = Snapshot.document(state.sequence, state.head_hash, state.to_dict(), image)
    return canonical_json_pieces(document, SNAPSHOT_PIECE_ITEMS)


def _offering_the_gil(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """Each piece, then the GIL offered to the writer and the committer (a snapshot's encoding
    in one C call held it 20 ms at 20,000 traders, O(state))."""
    for piece in pieces:
        yield piece
        time.sleep(0)
