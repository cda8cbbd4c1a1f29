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

The allocator's policy (`keep_freed_memory`): glibc serves every allocation above 32 MB (its largest
mmap threshold) with a fresh mmap and unmaps it when freed, so each large numpy array a long-lived
engine makes again (the book spliced by a fold of pending account events: ~400 MB at 1M accounts)
takes its pages from the kernel again, one fault per page, and with numpy's transparent-huge-page
advice a fault may wait for the kernel to compact memory. The fold (its splice then by masks)
measured 65-90 ms most times and 360-590 ms one time in three or four (1M accounts, AMD Zen 5);
with mmap off and no trimming, freed arrays stay in the heap and the next fold reuses their
pages: 65-85 ms every time
(https://man7.org/linux/man-pages/man3/mallopt.3.html: M_MMAP_MAX, M_TRIM_THRESHOLD). The cost:
the process keeps its high-water memory instead of returning it, as a server usually does.

Process-wide by nature, so only a process's owner calls these (the serve command, a bench standing
in for it); the library never does.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from dataclasses import dataclass

# mallopt(3) parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_NEVER_TRIM = 2**31 - 1  # mallopt takes an int: the largest top of heap kept rather than returned


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


def keep_freed_memory() -> bool:
    """Serve large allocations from the heap and keep freed memory for reuse (module docstring):
    glibc's mallopt(M_MMAP_MAX, 0) and mallopt(M_TRIM_THRESHOLD, 2**31 - 1). Returns whether
    both took effect; False where the C library is not glibc (nothing changes there)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name)
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None or not hasattr(libc, "gnu_get_libc_version"):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM))
