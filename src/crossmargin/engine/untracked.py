"""The writer's memory of recent idempotency keys, kept where CPython's cyclic collector never walks.

A venue answers a repeated key from memory (`VenueSettings.recent_keys` of them, 200,000 by
default). Kept as a dict of (body hash, `Ack`) tuples, that was two container objects a command
that the collector tracks and had to walk at least once, reading every field they point to (a
cache miss each, the fields scattered over the heap): measured with bench_service's durable run
(SQLite, 300,000 deposits at 128 in flight, AMD EPYC Zen 5), generation-0 collections
(23 in the run, the longest 26-44 ms, growing with the heap), ack p99.9 27-36 ms; with this
structure 11, the longest 6-10 ms (the log records the venue keeps for its readers), ack p99.9
8-16 ms (docs/service.md, eighteenth round).

Here the answers live in preallocated lists, one per field (str and int: objects the collector
never tracks), filled in place; the index from key to slot is a dict of str to int, which CPython
leaves untracked ("Optimization: delay tracking containers",
https://devguide.python.org/internals/garbage-collector/). Remembering a command allocates nothing
the collector watches. Two halves of slots: when the newer half is full the older one is dropped
at once (its keys handed back, for the venue's filter of the log's keys, `engine.key_filter`, in
one batch rather than one at a time) and refilled.
"""

from __future__ import annotations

from collections.abc import Mapping

from crossmargin.engine.journal import LogRecord

# (body_sha256, sequence, kind, as_of_ns, record_hash): what answers a repeat of a committed
# command, from its first record.
KeptAnswer = tuple[str, int, str, int, str]


def kept_answer(body_sha256: str, record: LogRecord) -> KeptAnswer:
    """What answers a repeat of the command whose body hashes to `body_sha256` and whose first
    record is `record`."""
    return (body_sha256, record.sequence, record.kind, record.as_of_ns, record.record_hash)


class RecentKeys:
    """The last 2·⌊capacity/2⌋ to ⌊capacity/2⌋ committed keys (capacity >= 2) and their answers."""

    def __init__(self, capacity: int) -> None:
        half = max(capacity // 2, 1)
        slots = 2 * half
        self._half = half
        self._slot_of: dict[str, int] = {}
        self._key: list[str] = [""] * slots
        self._body_sha256: list[str] = [""] * slots
        self._sequence: list[int] = [0] * slots
        self._kind: list[str] = [""] * slots
        self._as_of_ns: list[int] = [0] * slots
        self._record_hash: list[str] = [""] * slots
        self._next = 0  # the slot the next key takes

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, key: object) -> bool:
        return key in self._slot_of

    def get(self, key: str) -> KeptAnswer | None:
        slot = self._slot_of.get(key)
        if slot is None:
            return None
        return (
            self._body_sha256[slot],
            self._sequence[slot],
            self._kind[slot],
            self._as_of_ns[slot],
            self._record_hash[slot],
        )

    def update(self, answers: Mapping[str, KeptAnswer]) -> list[str]:
        """Remember `answers` (keys not held yet); returns the keys dropped to make room (the
        older half, whole, each time the newer one fills), oldest first."""
        dropped: list[str] = []
        slot_of, key_at = self._slot_of, self._key
        for key, (body_sha256, sequence, kind, as_of_ns, record_hash) in answers.items():
            slot = self._next
            if slot % self._half == 0:  # a half to (re)fill: its keys go first
                dropped.extend(self._drop_half(slot))
            slot_of[key] = slot
            key_at[slot] = key
            self._body_sha256[slot] = body_sha256
            self._sequence[slot] = sequence
            self._kind[slot] = kind
            self._as_of_ns[slot] = as_of_ns
            self._record_hash[slot] = record_hash
            self._next = (slot + 1) % len(key_at)
        return dropped

    def _drop_half(self, first: int) -> list[str]:
        """Forget the keys held in slots [first, first + half), the half about to be refilled
        (not a slot never filled, nor one whose key was given again since and holds another);
        returns them."""
        gone = []
        slot_of = self._slot_of
        for slot in range(first, first + self._half):
            key = self._key[slot]
            if slot_of.get(key) == slot:
                del slot_of[key]
                gone.append(key)
        return gone
