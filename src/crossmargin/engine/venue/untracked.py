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
https://devguide.python.org/internals/garbage-collector/). Remembering a command keeps nothing
the collector watches. Two halves of slots: when the newer half is full the older one is dropped
at once (its keys handed back, for the venue's filter of the log's keys, `engine.venue.key_filter`, in
one batch rather than one at a time) and refilled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from crossmargin.engine.journal import LogRecord

# (body_sha256, sequence, kind, as_of_ns, record_hash): what answers a repeat of a committed
# command, from its first record.
KeptAnswer = tuple[str, int, str, int, str]


def kept_answer(body_sha256: str, record: LogRecord) -> KeptAnswer:
    """What answers a repeat of the command whose body hashes to `body_sha256` and whose first
    record is `record`."""
    return (body_sha256, record.sequence, record.kind, record.as_of_ns, record.record_hash)


class DroppedHalf(NamedTuple):
    """A half of `RecentKeys` let go: its index (`keys`: key -> slot, in slot order) and the
    sequence of the newest record among its keys (its last slot's: slots fill in log order)."""

    keys: dict[str, int]
    through: int


class RecentKeys:
    """The last 2·⌊capacity/2⌋ to ⌊capacity/2⌋ committed keys (capacity >= 2) and their answers.

    Each half of the slots has its own index (key -> slot), so dropping a half is replacing its
    dict: the dropped one is handed back whole, keys in slot order, for the log's key filter to
    hold as it is (`KeyFilter.add_later`). Popping its 100,000 keys from one shared index and
    listing them stalled the writer ~15 ms a drop."""

    def __init__(self, capacity: int) -> None:
        half = max(capacity // 2, 1)
        slots = 2 * half
        self._half = half
        # Per half of the slots, its keys' slots (key -> slot).
        self._slot_of: list[dict[str, int]] = [{}, {}]
        self._body_sha256: list[str] = [""] * slots
        self._sequence: list[int] = [0] * slots
        self._kind: list[str] = [""] * slots
        self._as_of_ns: list[int] = [0] * slots
        self._record_hash: list[str] = [""] * slots
        # The answer's fields in KeptAnswer's order.
        self._fields: tuple[list[Any], ...] = (
            self._body_sha256,
            self._sequence,
            self._kind,
            self._as_of_ns,
            self._record_hash,
        )
        self._next = 0  # the slot the next key takes

    def __len__(self) -> int:
        return len(self._slot_of[0]) + len(self._slot_of[1])

    def __contains__(self, key: object) -> bool:
        return key in self._slot_of[0] or key in self._slot_of[1]

    def held(self) -> list[str]:
        """Every key held (both halves), for a snapshot's key filter to take in."""
        return [*self._slot_of[0], *self._slot_of[1]]

    def get(self, key: str) -> KeptAnswer | None:
        newer, older = self._halves()
        slot = newer.get(key)
        if slot is None:
            slot = older.get(key)
        return None if slot is None else self._answer(slot)

    def answers(self, keys: Iterable[str]) -> dict[str, KeptAnswer]:
        """The answers of those of `keys` held: one call for a group's keys (a method call per
        command cost the writer ~0.8 us against a dict's `in` and `get`). A key given again
        holds a slot in each half: the newer answers."""
        newer, older = self._halves()
        return {
            key: self._answer(slot)
            for key in keys
            if (slot := newer.get(key)) is not None or (slot := older.get(key)) is not None
        }

    def _halves(self) -> tuple[dict[str, int], dict[str, int]]:
        """(the index of the half holding the last slot written, the other's)."""
        newer = (self._next - 1) % (2 * self._half) // self._half
        return self._slot_of[newer], self._slot_of[1 - newer]

    def _answer(self, slot: int) -> KeptAnswer:
        return (
            self._body_sha256[slot],
            self._sequence[slot],
            self._kind[slot],
            self._as_of_ns[slot],
            self._record_hash[slot],
        )

    def update(self, answers: Mapping[str, KeptAnswer]) -> list[DroppedHalf]:
        """Remember `answers` (keys not held yet, in log order); returns the halves dropped to
        make room (the older half, whole, each time the newer one fills: its keys, oldest first,
        are the index's), oldest first; empty halves of a first lap are not handed back. A group's
        answers take consecutive slots, written a run at a time (slice assignments and one dict
        update per run: a Python loop over its keys cost the writer ~0.5 us a command)."""
        dropped: list[DroppedHalf] = []
        keys = list(answers)
        columns = list(zip(*answers.values(), strict=True))  # a tuple per field, KeptAnswer order
        done = 0
        while done < len(keys):
            slot = self._next
            half = (slot // self._half) % 2
            if slot % self._half == 0 and self._slot_of[half]:  # a half to refill: dropped first
                # A slot's fields are overwritten only once its key is forgotten, so a key is
                # never answered with another's fields.
                dropped.append(DroppedHalf(self._slot_of[half], self._sequence[slot + self._half - 1]))
                self._slot_of[half] = {}
            take = min(self._half - slot % self._half, len(keys) - done)  # the rest of this half
            for column, values in zip(self._fields, columns, strict=True):
                column[slot : slot + take] = values[done : done + take]
            self._slot_of[half].update(zip(keys[done : done + take], range(slot, slot + take), strict=True))
            done += take
            self._next = (slot + take) % (2 * self._half)
        return dropped
