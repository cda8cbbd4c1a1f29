"""core.stress.waterfall.ceil_mul_div: the ADL haircut ceil(lots · deficit / bankrupt lots) in int64
equals Python's exact integers, including where lots · deficit overflows int64 (a venue-wide
deficit in cash units times a large ADL fill)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from crossmargin.core.stress.waterfall import ceil_mul_div


@settings(max_examples=500)
@given(
    lots=st.lists(st.integers(min_value=1, max_value=2**40), min_size=1, max_size=50),
    numerator=st.integers(min_value=1, max_value=2**62),
    denominator=st.integers(min_value=1, max_value=2**59),
)
def test_equals_exact_integer_ceiling(lots: list[int], numerator: int, denominator: int) -> None:
    expected = [-(-x * numerator // denominator) for x in lots]
    if max(expected) >= 2**63:  # the result itself does not fit: not a case the waterfall meets
        return
    got = ceil_mul_div(np.array(lots, dtype=np.int64), numerator, denominator)
    assert got.dtype == np.int64
    assert got.tolist() == expected


def test_a_million_account_deficit_overflows_the_product_not_the_result() -> None:
    """Deficit 3e9 USD in 1e-8 USD units (3e17) over 1e6 bankrupt lots: lots · deficit reaches
    3e23, far past int64; the haircuts themselves (<= 3e17) fit."""
    deficit, bankrupt = 300_000_000_000_000_000, 1_000_000
    lots = np.array([1, 7, 999_999, 1_000_000], dtype=np.int64)
    assert ceil_mul_div(lots, deficit, bankrupt).tolist() == [
        -(-x * deficit // bankrupt) for x in lots.tolist()
    ]
    assert ceil_mul_div(np.zeros(0, dtype=np.int64), deficit, bankrupt).size == 0
