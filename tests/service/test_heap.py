"""The serving process's collector policy (service/heap.py), run in a child process: it changes
process-wide state that this test process must keep."""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = """
import gc, json
from crossmargin.service.heap import HeapPolicy, settle_heap
kept = [[n] for n in range(10_000)]  # a start-up heap: lists are tracked by the collector
frozen = settle_heap(HeapPolicy(young=12_345, middle=7, old=9))
cycle = []
cycle.append(cycle)  # garbage made after settling is still collected
del cycle
print(json.dumps({"frozen": frozen, "count": gc.get_freeze_count(),
                  "threshold": gc.get_threshold(), "collected": gc.collect()}))
"""


def test_settle_heap_freezes_start_up_heap_and_sets_thresholds() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True)
    seen = json.loads(out.stdout)
    assert seen["frozen"] >= 10_000 and seen["count"] >= 10_000
    assert seen["threshold"] == [12_345, 7, 9]
    assert seen["collected"] >= 1


ALLOCATOR_CHILD = """
import json, resource, sys
import numpy as np
from crossmargin.service.heap import keep_freed_memory

kept = keep_freed_memory() if sys.argv[1] == "policy" else None
faults = []
for _ in range(4):  # a 64 MB array made, written whole and freed, again and again (a fold's)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = np.ones(8 * 2**20)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    del a
print(json.dumps({"kept": kept, "faults": faults}))
"""


def test_keep_freed_memory_reuses_a_freed_large_arrays_pages() -> None:
    # Small pages (no transparent huge pages), so that the page-fault count is the page count.
    env = {"NUMPY_MADVISE_HUGEPAGE": "0", "PATH": "/usr/bin:/bin"}
    seen = {}
    for mode in ("default", "policy"):
        out = subprocess.run(
            [sys.executable, "-c", ALLOCATOR_CHILD, mode], capture_output=True, text=True, check=True, env=env
        )
        seen[mode] = json.loads(out.stdout)
    pages = 64 * 2**20 // 4096
    assert all(f >= pages * 0.9 for f in seen["default"]["faults"])  # a fresh mmap each time
    if seen["policy"]["kept"]:  # glibc (every Linux this project is tested on)
        assert seen["policy"]["faults"][0] >= pages * 0.9  # the first time, fresh pages
        assert all(f < pages * 0.05 for f in seen["policy"]["faults"][1:])  # then the same pages
