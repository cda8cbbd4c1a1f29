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

from the two 32-bit halves of the key's 64-bit `hash()` (SipHash of the string; per process,
which is enough: the filter is built at start-up from the log and lives in memory only). With
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
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice

import numpy as np
import numpy.typing as npt

BITS_PER_KEY = 20
PROBES = 14
FIRST_CAPACITY = 1 << 20


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


def _probes(hashes: npt.NDArray[np.uint64], m: int) -> npt.NDArray[np.uint64]:
    """(n, PROBES) bit positions of n keys in a stage of m bits."""
    h1 = hashes & np.uint64(0xFFFFFFFF)
    h2 = (hashes >> np.uint64(32)) | np.uint64(1)  # odd: the probes do not collapse onto one bit
    i = np.arange(PROBES, dtype=np.uint64)
    return (h1[:, None] + i[None, :] * h2[:, None]) % np.uint64(m)


def _hashes(keys: Sequence[str]) -> npt.NDArray[np.uint64]:
    return np.fromiter((hash(k) for k in keys), dtype=np.int64, count=len(keys)).view(np.uint64)


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

    def add(self, keys: Sequence[str]) -> None:
        """Record keys written to the log, hashed in now."""
        self._hash_in(keys)
        self.count += len(keys)

    def add_later(self, keys: Collection[str]) -> None:
        """Record keys written to the log, held exactly (`keys` is kept as it is and must not
        change: a dict's keys are its own) until `absorb` hashes them in."""
        if keys:
            self._waiting.append(_Waiting(keys, iter(keys), len(keys)))
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
        return self.waiting

    def _hash_in(self, keys: Sequence[str]) -> None:
        hashes = _hashes(keys)
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
            hashes = _hashes(keys)
            found = np.zeros(hashes.size, dtype=bool)
            for stage in self._stages:
                positions = _probes(hashes, stage.m)
                set_bits = stage.bits[(positions >> np.uint64(3)).astype(np.intp)] >> (
                    positions & np.uint64(7)
                ).astype(np.uint8)
                found |= np.all(set_bits & np.uint8(1), axis=1)
            held = found.tolist()
        for waiting in self._waiting:
            kept = waiting.keys
            held = [hit or key in kept for hit, key in zip(held, keys, strict=True)]
        return held

    def _open_stage(self) -> _Stage:
        if not self._stages or self._stages[-1].count >= self._stages[-1].capacity:
            capacity = self._next_capacity
            self._next_capacity *= 2
            self._stages.append(_Stage(np.zeros(-(-capacity * BITS_PER_KEY // 8), dtype=np.uint8), capacity))
        return self._stages[-1]

    @property
    def nbytes(self) -> int:
        return sum(stage.bits.nbytes for stage in self._stages)
