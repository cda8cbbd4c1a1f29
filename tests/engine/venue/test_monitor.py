"""The vectorised margin-call machine equals the core's `next_status` on every input."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from crossmargin.core.liquidation.margin_call import next_status
from crossmargin.core.liquidation.params import AccountStatus, MarginCallParams
from crossmargin.engine.venue.monitor import NO_DEADLINE, coverages, may_change, next_statuses

PARAMS = MarginCallParams()
COVERS = st.one_of(
    st.sampled_from([-np.inf, -1.0, 0.0, 0.5, 1.0, 1.1, 1.2, 1.25, 1.3, 1.5, 2.0, np.inf]),
    st.floats(min_value=-2.0, max_value=3.0),
)


@given(
    st.lists(
        st.tuples(COVERS, st.sampled_from(list(AccountStatus)), st.one_of(st.none(), st.integers(0, 20))),
        min_size=1,
        max_size=40,
    ),
    st.integers(0, 20),
)
def test_next_statuses_equals_next_status(
    rows: list[tuple[float, AccountStatus, int | None]], now: int
) -> None:
    params = MarginCallParams(grace_ns=10)
    cover = np.array([r[0] for r in rows])
    previous = np.array([int(r[1]) for r in rows], dtype=np.int8)
    deadline = np.array([NO_DEADLINE if r[2] is None else r[2] for r in rows], dtype=np.int64)
    status, new_deadline = next_statuses(
        previous, coverage=cover, now_ns=now, deadline_ns=deadline, params=params
    )
    for n, (c, prev, d) in enumerate(rows):
        move = next_status(prev, coverage=c, now_ns=now, deadline_ns=d, params=params)
        assert int(move.status) == int(status[n])
        assert (NO_DEADLINE if move.deadline_ns is None else move.deadline_ns) == int(new_deadline[n])


def test_coverages_match_the_core_rule() -> None:
    from crossmargin.core.liquidation.params import coverage

    equity = np.array([10.0, -1.0, 0.0, 5.0, -3.0])
    mm = np.array([5.0, 0.0, 0.0, 0.0, 2.0])
    assert coverages(equity, mm).tolist() == [coverage(e, m) for e, m in zip(equity, mm, strict=True)]


MM = st.sampled_from([0.0, 1e-300, 1.0, 3.0, 7.1e6, 1e12])
RATIOS = st.one_of(
    st.sampled_from([-1.0, 0.0, 0.999999, 1.0, 1.2, 1.25, 1.5, 1.5000000000000002, 1.4999999999999998, 2.0]),
    st.floats(min_value=-2.0, max_value=3.0),
)


@given(
    st.lists(
        st.tuples(MM, RATIOS, st.sampled_from(list(AccountStatus)), st.one_of(st.none(), st.integers(0, 20))),
        min_size=1,
        max_size=40,
    ),
    st.integers(0, 20),
)
def test_may_change_holds_every_account_the_state_machine_moves(
    rows: list[tuple[float, float, AccountStatus, int | None]], now: int
) -> None:
    """The screen before the state machine drops no account whose status or deadline changes,
    at coverages on and one ulp either side of the thresholds."""
    params = MarginCallParams(grace_ns=10)
    mm = np.array([r[0] for r in rows])
    equity = np.array([r[0] * r[1] if r[0] > 0 else r[1] for r in rows])
    previous = np.array([int(r[2]) for r in rows], dtype=np.int8)
    deadline = np.array([NO_DEADLINE if r[3] is None else r[3] for r in rows], dtype=np.int64)
    status, new_deadline = next_statuses(
        previous, coverage=coverages(equity, mm), now_ns=now, deadline_ns=deadline, params=params
    )
    moved = np.flatnonzero((status != previous) | (new_deadline != deadline))
    assert set(moved.tolist()) <= set(may_change(equity, mm, previous, deadline, params).tolist())


def test_may_change_at_the_thresholds_one_ulp_apart() -> None:
    """HEALTHY accounts with coverage one ulp below, at and above each threshold."""
    params = MarginCallParams(grace_ns=10)
    ratios = [
        np.nextafter(t, d)
        for t in (1.0, params.margin_call_coverage, params.warning_coverage)
        for d in (-np.inf, np.inf)
    ]
    mm = np.repeat([1.0, 3.0, 7.1e6, 1e12], len(ratios))
    equity = mm * np.tile(ratios, 4)
    previous = np.zeros(mm.size, dtype=np.int8)
    deadline = np.full(mm.size, NO_DEADLINE, dtype=np.int64)
    status, _ = next_statuses(
        previous, coverage=coverages(equity, mm), now_ns=0, deadline_ns=deadline, params=params
    )
    moved = set(np.flatnonzero(status != previous).tolist())
    assert moved and moved <= set(may_change(equity, mm, previous, deadline, params).tolist())
