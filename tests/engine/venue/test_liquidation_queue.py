"""LiquidationQueue: through a round of liquidations, each pick is the account
`Monitor.in_liquidation` would give first (lowest coverage, ties by row) among those still
eligible, while liquidations move the coverage and status of a few accounts at a time."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from crossmargin.core.margin import CrossMargin
from crossmargin.core.synthetic import SynthSpec, synth_book, synth_market
from crossmargin.engine.venue.liquidation_queue import LiquidationQueue
from crossmargin.engine.venue.monitor import BANKRUPT, HEALTHY, LIQUIDATION, Monitor

BOOK = synth_book(SynthSpec(n_accounts=60, seed=11))
MARKET = synth_market(BOOK.instruments)


def _first_eligible(monitor: Monitor, attempts: dict[int, int], rounds: int) -> int | None:
    return next((r for r in monitor.in_liquidation().tolist() if attempts.get(r, 0) < rounds), None)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    rounds=st.integers(1, 3),
    moves=st.integers(1, 4),
)
def test_each_pick_is_the_riskiest_eligible_account_in_liquidation(
    seed: int, rounds: int, moves: int
) -> None:
    rng = np.random.default_rng(seed)
    monitor = Monitor(BOOK, MARKET, model=CrossMargin())
    n = BOOK.n_accounts
    result = monitor.engine.result
    monitor.statuses[:] = rng.choice([HEALTHY, LIQUIDATION, BANKRUPT], size=n, p=[0.4, 0.4, 0.2])
    # Ties in coverage on purpose: equal equity and MM on some rows.
    result.equity_usd[: n // 4] = 1_000.0
    result.maintenance_margin_usd[: n // 4] = 2_000.0
    queue = LiquidationQueue(monitor)
    attempts: dict[int, int] = {}
    picks = 0
    while True:
        row = queue.pick(lambda r: attempts.get(r, 0) < rounds)
        assert row == _first_eligible(monitor, attempts, rounds)
        if row is None:
            break
        attempts[row] = attempts.get(row, 0) + 1
        picks += 1
        # A liquidation: the picked account and a few others move (coverage, status).
        moved = {row, *rng.integers(0, n, size=moves).tolist()}
        for r in moved:
            if rng.random() < 0.5:
                result.equity_usd[r] = float(rng.choice([-500.0, 0.0, 900.0, 1_000.0, 5_000.0]))
            monitor.statuses[r] = rng.choice([HEALTHY, LIQUIDATION, BANKRUPT])
        queue.moved(sorted(moved))
    assert picks > 0
