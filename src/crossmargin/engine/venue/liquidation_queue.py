"""The accounts in liquidation through a venue's round of liquidations, riskiest first.

`Monitor.in_liquidation` sorts every account in liquidation by coverage (equity / MM, lowest
first, ties by monitor row). Asked again before each liquidation, as the venue did, a round that
liquidates k accounts sorts k lists of up to k: at 100,000 liquidations after a crash on a 1M
book, ~10 ms a pick, ~17 minutes a round. `LiquidationQueue` sorts once and keeps a heap of
(coverage, row): a liquidation changes the coverage of the accounts it moves only (prices do not
move within a round), which are pushed again with their new coverage; an entry whose coverage or
status is no longer the account's is dropped when it comes up. Each pick is the one
`in_liquidation` would give (tests/engine/venue/test_liquidation_queue.py).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable

from crossmargin.core.liquidation.params import coverage
from crossmargin.engine.venue.monitor import LIQUIDATION, Monitor, coverages


class LiquidationQueue:
    """Over `monitor` (which must stay the same object through the round): `pick(eligible)`
    the riskiest account in liquidation whose row `eligible` accepts; `moved(rows)` after the
    monitor re-margined those rows or changed their status."""

    def __init__(self, monitor: Monitor) -> None:
        self._monitor = monitor
        rows = monitor.in_liquidation()
        result = monitor.engine.result
        # `coverages` is `coverage` over arrays (the same division): the bits `_cover` gives.
        covers = coverages(result.equity_usd[rows], result.maintenance_margin_usd[rows])
        # Sorted by (coverage, row): already a heap.
        self._heap: list[tuple[float, int]] = list(zip(covers.tolist(), rows.tolist(), strict=True))

    def _cover(self, row: int) -> float:
        result = self._monitor.engine.result
        return coverage(float(result.equity_usd[row]), float(result.maintenance_margin_usd[row]))

    def moved(self, rows: Iterable[int]) -> None:
        statuses = self._monitor.statuses
        for row in rows:
            if statuses[row] >= LIQUIDATION:
                heapq.heappush(self._heap, (self._cover(row), row))

    def pick(self, eligible: Callable[[int], bool]) -> int | None:
        """The lowest (coverage, row) in liquidation and eligible; None when none is left. A row
        `eligible` refuses is dropped (the venue's bound on rounds per account only tightens)."""
        statuses = self._monitor.statuses
        while self._heap:
            cover, row = self._heap[0]
            if statuses[row] < LIQUIDATION or cover != self._cover(row) or not eligible(row):
                heapq.heappop(self._heap)
                continue
            return row
        return None
