"""The vectorised margin-call machine equals the core's `next_status` on every input."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from crossmargin.core.liquidation.margin_call import next_status
from crossmargin.core.liquidation.params import AccountStatus, MarginCallParams
from crossmargin.engine.monitor import NO_DEADLINE, coverages, next_statuses

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
def test_next_statuses_equals_next_status(rows: list[tuple[float, AccountStatus, int | None]], now: int) -> None:
    params = MarginCallParams(grace_ns=10)
    cover = np.array([r[0] for r in rows])
    previous = np.array([int(r[1]) for r in rows], dtype=np.int8)
    deadline = np.array([NO_DEADLINE if r[2] is None else r[2] for r in rows], dtype=np.int64)
    status, new_deadline = next_statuses(previous, coverage=cover, now_ns=now, deadline_ns=deadline, params=params)
    for n, (c, prev, d) in enumerate(rows):
        move = next_status(prev, coverage=c, now_ns=now, deadline_ns=d, params=params)
        assert int(move.status) == int(status[n])
        assert (NO_DEADLINE if move.deadline_ns is None else move.deadline_ns) == int(new_deadline[n])


def test_coverages_match_the_core_rule() -> None:
    from crossmargin.core.liquidation.params import coverage

    equity = np.array([10.0, -1.0, 0.0, 5.0, -3.0])
    mm = np.array([5.0, 0.0, 0.0, 0.0, 2.0])
    assert coverages(equity, mm).tolist() == [coverage(e, m) for e, m in zip(equity, mm, strict=True)]
