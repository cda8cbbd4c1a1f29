"""The collector policy of a long-lived service process (what `crossmargin serve` sets once the venue
is open, before it takes its first request).

CPython's cyclic collector walks every tracked object of a generation when it runs. A venue opens
with a few hundred thousand long-lived objects (numpy, SQLAlchemy, pydantic, FastAPI, the fold) and
then allocates ~50 short-lived ones per command; with the default thresholds (700, 10, 10) the full
collections that follow walk that whole start-up heap again and again. `gc.freeze()` moves everything
alive after start-up into a permanent generation the collector never scans
(https://docs.python.org/3/library/gc.html#gc.freeze, the practice Instagram described in "Dismissing
Python Garbage Collection at Instagram", 2017), and a larger first threshold lets a group commit's
garbage die young between collections. Cycles are still collected: this only changes when.

Measured with bench/bench_service.py's durable run (SQLite, 512 deposits in flight, AMD EPYC Zen 4,
default thresholds and this policy interleaved): 16.0-16.5k -> 20.3-22.8k events/s, ack p99 83-94
-> 26-28 ms, CPU 59-61 -> 43-48 us per deposit (`bench_service.py --default-gc` is the A/B).

Process-wide by nature, so only a process's owner calls it (the serve command, a bench standing in
for it); the library never does.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class HeapPolicy:
    """Collector thresholds for a serving process: `young` allocations (net of deallocations)
    between generation-0 collections; `middle` and `old` as gc.set_threshold's second and third."""

    young: int = 50_000
    middle: int = 20
    old: int = 100


def settle_heap(policy: HeapPolicy | None = None) -> int:
    """Collect once, freeze what survives (the start-up heap) and set the serving thresholds;
    returns how many objects were frozen."""
    policy = policy or HeapPolicy()
    gc.collect()
    gc.freeze()
    gc.set_threshold(policy.young, policy.middle, policy.old)
    return gc.get_freeze_count()
