"""Ids unique across processes and restarts without a system call each: a random prefix drawn
once per process (again in a forked child, which would otherwise repeat its parent's ids) and a
counter. uuid4 per id reads os.urandom every time: ~3 % of the event loop's time at one command per
request (py-spy, AMD Zen 5; issue 16). Used for request ids and for the keys of commands sent
without an Idempotency-Key."""

from __future__ import annotations

import itertools
import os


class UniqueIds:
    """`new()` -> f"{label}{random hex}-{counter in hex}", `random_bytes` of randomness a process
    (16 for keys that must never repeat in the log: as many random bits as a uuid4's 122)."""

    def __init__(self, label: str, random_bytes: int) -> None:
        self._label = label
        self._random_bytes = random_bytes
        self._renew()
        os.register_at_fork(after_in_child=self._renew)

    def _renew(self) -> None:
        self._prefix = f"{self._label}{os.urandom(self._random_bytes).hex()}-"
        self._count = itertools.count(1)

    def new(self) -> str:
        return f"{self._prefix}{next(self._count):x}"  # next() of a count is atomic under the GIL
