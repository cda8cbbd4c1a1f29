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
