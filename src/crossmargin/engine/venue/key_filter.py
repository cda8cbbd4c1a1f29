"""Which idempotency keys the event log may hold: a scalable Bloom filter over every key written.

The writer keeps the newest keys in memory (`VenueSettings.recent_keys`); a key it does not
hold may still be in the log, and without this filter every group asked the store for all its
keys (one indexed query per group, ~3 us of the writer's time per event on SQLite, a round
trip on PostgreSQL) although a fresh key, the usual case, is never there. The filter answers
"certainly not written" for almost every fresh key, so the store is asked only about the few it
cannot rule out. A false positive costs one lookup; there are no false negatives, so no retry
is ever taken for a new command.

Each stage is a classic Bloom filter (Bloom, "Space/time trade-offs in hash coding with
allowable errors", CACM 1970) of m bits and k probes at positions

    g_i(x) = (h1(x) + i * h2(x)) mod m,   i = 0..k-1   (double hashing: Kirsch & Mitzenmacher,
                                                        "Less hashing, same performance", 2006)

from the two 32-bit halves of the key's 64-bit XXH3 hash (of its UTF-8 bytes; Collet,
https://github.com/Cyan4973/xxHash, through python-xxhash). Stable across processes, unlike
`hash()`, whose SipHash is seeded per process: a snapshot carries the filter (`image`,
`restore`), so a restart reads the keys written since it, not the whole log's. 30-45 ns a key
more than `hash()`, whose value a str caches (bench/bench_restart.py measures both). With
`BITS_PER_KEY` = 20 and k = 14 a full stage answers wrongly for ~1e-4 of fresh keys. When a
stage holds its capacity a new one of twice the capacity is started (Almeida et al., "Scalable
Bloom Filters", Information Processing Letters 101(6), 2007): memory grows with the log at
2.5 bytes per key, and the false-positive rate stays below (number of stages) x 1e-4.
Keys are added and tested a group at a time with numpy, no Python loop per probe.

The venue's writer hands the filter the keys its memory lets go a hundred thousand at a time;
hashing them in at once stalled the writer 81-106 ms (Intel Xeon, family 6 model 167), every
command in flight waiting behind it. `add_later` holds them exactly, as handed over (the dict of
the dropped half: no copy), and `absorb` hashes them in a slice at a time, which the writer does
while it is idle; the collection is let go only after its last key's bits are set, so every key
is held throughout.

`through`: every keyed record at or before this sequence has its key in the bits (not merely
held waiting). The writer's memory hands keys over in the order they were written, so once a
handed-over collection is wholly hashed in, `through` is its newest record's sequence; a
snapshot's image is exact up to it and a restart adds the keys of the records after it.
"""

from __future__ import annotations

import base64
import zlib
from collections import deque
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np
import numpy.typing as npt
import xxhash

BITS_PER_KEY = 20
PROBES = 14
FIRST_CAPACITY = 1 << 20
HASH = "xxh3_64"  # named in a snapshot's image: an image of another hash is not restored


@dataclass(slots=True)
class _Stage:
    bits: npt.NDArray[np.uint8]  # m bits, packed 8 to a byte
    capacity: int
    count: int = 0

    @property
    def m(self) -> int:
        return self.bits.size * 8


@dataclass(slots=True)
class _Waiting:
    keys: Collection[str]  # held exactly until the last is hashed in
    cursor: Iterator[str]  # at the first key not hashed in
    left: int  # keys not hashed in
    through: int  # the sequence of the newest record whose key it holds (0: not known)


@dataclass(frozen=True, slots=True)
class StageImage:
    """One stage's bits as they stood when a `KeyFilter.image` was taken."""

    capacity: int
    count: int
    bits: npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class KeyFilterImage:
    """A filter's bits and `through` at one moment: what a snapshot carries (`KeyFilter.image`,
    `KeyFilter.restore`). Full stages are never written again, so they are shared, not copied."""

    through: int
    count: int
    next_capacity: int
    stages: tuple[StageImage, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: each stage's bits zlib-compressed and base64-encoded (a stage of 2^20
        keys is 2.6 MB of bits, mostly zeros while it fills)."""
        return {
            "hash": HASH,
            "bits_per_key": BITS_PER_KEY,
            "probes": PROBES,
            "through": self.through,
            "count": self.count,
            "next_capacity": self.next_capacity,
            "stages": [
                {
                    "capacity": stage.capacity,
                    "count": stage.count,
                    "bits": base64.b64encode(zlib.compress(stage.bits.tobytes(), 1)).decode("ascii"),
                }
                for stage in self.stages
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KeyFilterImage:
        """The image `to_dict` wrote; ValueError naming what does not fit this build's filter
        (another hash or geometry, a stage of the wrong size)."""
        layout = (data.get("hash"), data.get("bits_per_key"), data.get("probes"))
        if layout != (HASH, BITS_PER_KEY, PROBES):
            expected = (HASH, BITS_PER_KEY, PROBES)
            raise ValueError(f"key filter of another layout {layout}, expected {expected}")
        stages = []
        for n, stage in enumerate(data["stages"]):
            capacity, count = int(stage["capacity"]), int(stage["count"])
            bits = np.frombuffer(zlib.decompress(base64.b64decode(stage["bits"])), dtype=np.uint8)
            if bits.size != _stage_bytes(capacity) or not 0 <= count <= capacity:
                raise ValueError(f"key filter stage {n}: {bits.size} bytes, {count} keys of {capacity}")
            stages.append(StageImage(capacity, count, bits))
        return cls(int(data["through"]), int(data["count"]), int(data["next_capacity"]), tuple(stages))


def _stage_bytes(capacity: int) -> int:
    return -(-capacity * BITS_PER_KEY // 8)


def _probes(hashes: npt.NDArray[np.uint64], m: int) -> npt.NDArray[np.uint64]:
    """(n, PROBES) bit positions of n keys in a stage of m bits."""
    h1 = hashes & np.uint64(0xFFFFFFFF)
    h2 = (hashes >> np.uint64(32)) | np.uint64(1)  # odd: the probes do not collapse onto one bit
    i = np.arange(PROBES, dtype=np.uint64)
    return (h1[:, None] + i[None, :] * h2[:, None]) % np.uint64(m)


def _in_stage(stage: _Stage, hashes: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]:
    """Whether every probe of each hash finds its bit set in `stage`."""
    positions = _probes(hashes, stage.m)
    byte = (positions >> np.uint64(3)).astype(np.intp)
    bit = (positions & np.uint64(7)).astype(np.uint8)
    set_bits = stage.bits[byte] >> bit
    found: npt.NDArray[np.bool_] = np.all(set_bits & np.uint8(1), axis=1)
    return found


def key_hashes(keys: Sequence[str]) -> npt.NDArray[np.uint64]:
    """Each key's 64-bit XXH3 of its UTF-8 bytes: the same in every process."""
    # surrogatepass: a JSON "\ud800" escape makes a str UTF-8 cannot encode; it still hashes.
    digest = xxhash.xxh3_64_intdigest
    hashes = (digest(k.encode("utf-8", "surrogatepass")) for k in keys)
    return np.fromiter(hashes, dtype=np.uint64, count=len(keys))


class KeyFilter:
    """Every idempotency key written to the log, approximately (module docstring)."""

    def __init__(self, first_capacity: int = FIRST_CAPACITY) -> None:
        self._stages: list[_Stage] = []
        self._next_capacity = first_capacity
        self.count = 0
        # Key collections recorded by `add_later` and not wholly hashed in, oldest first; held
        # exactly (membership) until then.
        self._waiting: deque[_Waiting] = deque()
        self.waiting = 0  # keys recorded by `add_later` not hashed in yet
        self.through = 0  # every keyed record up to this sequence is in the bits (module docstring)

    def add(self, keys: Sequence[str], *, through: int = 0) -> None:
        """Record keys written to the log, hashed in now; `through`: with them, every keyed
        record up to that sequence is in the filter (0: says nothing)."""
        self._hash_in(keys)
        self.count += len(keys)
        self.through = max(self.through, through)

    def add_later(self, keys: Collection[str], *, through: int = 0) -> None:
        """Record keys written to the log, held exactly (`keys` is kept as it is and must not
        change: a dict's keys are its own) until `absorb` hashes them in; `through`: the
        sequence of the newest record among them, `through` once they are hashed in."""
        if keys:
            self._waiting.append(_Waiting(keys, iter(keys), len(keys), through))
            self.waiting += len(keys)
            self.count += len(keys)

    def absorb(self, limit: int | None = None) -> int:
        """Hash up to `limit` (None: all) waiting keys into the filter, oldest first; returns how
        many still wait. A collection is let go once its last key is hashed in."""
        budget = self.waiting if limit is None else min(limit, self.waiting)
        while budget > 0:
            oldest = self._waiting[0]
            taken = min(budget, oldest.left)
            self._hash_in(list(islice(oldest.cursor, taken)))
            oldest.left -= taken
            self.waiting -= taken
            budget -= taken
            if oldest.left == 0:
                self._waiting.popleft()
                self.through = max(self.through, oldest.through)
        return self.waiting

    def image(self) -> KeyFilterImage:
        """The bits and `through` now (waiting keys excluded: `through` does not cover them).
        The open stage's bits are copied (the writer goes on setting them); full ones are shared."""
        stages = tuple(
            StageImage(
                stage.capacity,
                stage.count,
                stage.bits if stage.count >= stage.capacity else stage.bits.copy(),
            )
            for stage in self._stages
        )
        hashed_in = sum(stage.count for stage in stages)
        return KeyFilterImage(self.through, hashed_in, self._next_capacity, stages)

    def pending(self) -> list[str]:
        """The keys recorded but not hashed in yet, in the order `absorb` takes them."""
        return [key for w in self._waiting for key in islice(w.keys, len(w.keys) - w.left, None)]

    def image_with(self, keys: Sequence[str], through: int) -> KeyFilterImage:
        """The image once every waiting key and `keys` are hashed in: exact through `through`
        when those are every key not in the bits yet (the writer's memory at a snapshot). It
        changes this filter: for a copy of it, a forked snapshot child's (copy-on-write), where
        hashing in the memory's 100,000-200,000 keys costs the writer nothing."""
        self.absorb()
        self.add(keys, through=through)
        return self.image()

    def restore(self, image: KeyFilterImage) -> None:
        """Start from `image` (an empty filter only: what it holds would be lost)."""
        if self.count or self._stages:
            raise ValueError("restore into a filter that already holds keys")
        self._stages = [_Stage(stage.bits.copy(), stage.capacity, stage.count) for stage in image.stages]
        self._next_capacity = image.next_capacity
        self.count = image.count
        self.through = image.through

    def missing(self, keys: Sequence[str]) -> int | None:
        """The index of the first of `keys` the bits certainly do not hold (None: all may be
        there). The bits only: safe beside the writer (it only sets bits and appends stages),
        for the start-up audit's check of a restored image against the log."""
        stages = list(self._stages)
        if not keys:
            return None
        hashes = key_hashes(keys)
        found = np.zeros(hashes.size, dtype=bool)
        for stage in stages:
            found |= _in_stage(stage, hashes)
        absent = np.flatnonzero(~found)
        return int(absent[0]) if absent.size else None

    def _hash_in(self, keys: Sequence[str]) -> None:
        hashes = key_hashes(keys)
        start = 0
        while start < hashes.size:
            stage = self._open_stage()
            take = min(stage.capacity - stage.count, hashes.size - start)
            positions = _probes(hashes[start : start + take], stage.m).ravel()
            np.bitwise_or.at(
                stage.bits,
                (positions >> np.uint64(3)).astype(np.intp),
                (np.uint8(1) << (positions & np.uint64(7)).astype(np.uint8)),
            )
            stage.count += take
            start += take

    def may_hold(self, keys: Sequence[str]) -> list[bool]:
        """False for a key certainly never added; True for one added (and, rarely, for one not)."""
        if not keys:
            return []
        held = [False] * len(keys)
        if self._stages:
            hashes = key_hashes(keys)
            found = np.zeros(hashes.size, dtype=bool)
            for stage in self._stages:
                found |= _in_stage(stage, hashes)
            held = found.tolist()
        for waiting in self._waiting:
            kept = waiting.keys
            held = [hit or key in kept for hit, key in zip(held, keys, strict=True)]
        return held

    def _open_stage(self) -> _Stage:
        if not self._stages or self._stages[-1].count >= self._stages[-1].capacity:
            capacity = self._next_capacity
            self._next_capacity *= 2
            self._stages.append(_Stage(np.zeros(_stage_bytes(capacity), dtype=np.uint8), capacity))
        return self._stages[-1]

    @property
    def nbytes(self) -> int:
        return sum(stage.bits.nbytes for stage in self._stages)
