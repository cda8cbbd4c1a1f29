"""The one-pass kernels behind MarginResult give the numpy formulas' numbers bit for bit, and a
result that breaks an invariant is still refused, naming the field (core.margin.result_kernels)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossmargin.core.margin.result import (
    EQUITY_ZERO_TOLERANCE,
    RESULT_ARRAYS,
    MarginResult,
    bankrupt_accounts,
    margin_ratio,
)
from crossmargin.errors import InputError

amounts = st.lists(
    st.one_of(
        st.just(0.0),
        st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=200)
@given(collateral=amounts, position=amounts, data=st.data())
def test_pooled_kernel_equals_the_numpy_formulas(
    collateral: list[float], position: list[float], data: st.DataObject
) -> None:
    n = min(len(collateral), len(position))
    c = np.array(collateral[:n])
    p = np.array(position[:n])
    mm = np.abs(np.array(data.draw(st.lists(st.floats(0.0, 1e8), min_size=n, max_size=n))))
    im = mm * data.draw(st.floats(1.0, 3.0))
    with_gross = data.draw(st.booleans())
    gross = np.abs(c) + np.abs(p) if with_gross else None
    result = MarginResult.pooled(
        model="x",
        collateral_value_usd=c,
        position_value_usd=p,
        initial_margin_usd=im,
        maintenance_margin_usd=mm,
        gross_value_usd=gross,
    )
    equity = c + p
    zero = 0.0 if gross is None else EQUITY_ZERO_TOLERANCE * gross
    bankrupt = bankrupt_accounts(equity, c, mm, zero)
    assert np.array_equal(result.equity_usd, equity)
    assert np.array_equal(result.available_usd, equity - im)
    assert np.array_equal(result.bankrupt, bankrupt)
    with np.errstate(over="ignore"):  # MM over a subnormal equity: inf in both
        expected_ratio = margin_ratio(mm, equity, bankrupt)
    assert np.array_equal(result.margin_ratio, expected_ratio, equal_nan=True)


def _result(**change: np.ndarray) -> MarginResult:
    fields = {
        "equity_usd": np.array([100.0, 50.0]),
        "collateral_value_usd": np.array([100.0, 50.0]),
        "position_value_usd": np.zeros(2),
        "initial_margin_usd": np.array([20.0, 10.0]),
        "maintenance_margin_usd": np.array([10.0, 5.0]),
        "available_usd": np.array([80.0, 40.0]),
        "margin_ratio": np.array([0.1, 0.1]),
        "bankrupt": np.array([False, False]),
    }
    fields.update(change)
    return MarginResult(model="x", **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"maintenance_margin_usd": np.array([10.0, 11.0])}, "MM <= IM"),
        ({"initial_margin_usd": np.array([20.0, -1.0])}, "IM >= 0"),
        ({"equity_usd": np.array([np.nan, 50.0])}, "result.equity_usd"),
        ({"margin_ratio": np.array([0.1, np.nan])}, "null exactly when bankrupt"),
    ],
)
def test_a_broken_invariant_is_refused_by_name(change: dict[str, np.ndarray], message: str) -> None:
    _result()  # the valid one passes the one-pass check
    with pytest.raises(InputError, match=message):
        _result(**change)


def test_a_result_of_checked_rows_is_the_checked_result_without_a_second_pass() -> None:
    """`of_checked_rows` (an engine stacking rows already checked) gives the same result as the
    checked constructor; it takes every result array and nothing else."""
    checked = _result()
    arrays = {name: getattr(checked, name) for name in RESULT_ARRAYS}
    again = MarginResult.of_checked_rows("x", **arrays)
    assert again.model == checked.model
    for name in RESULT_ARRAYS:
        assert getattr(again, name) is getattr(checked, name)
    with pytest.raises(ValueError, match="needs exactly"):
        MarginResult.of_checked_rows("x", **{k: v for k, v in arrays.items() if k != "bankrupt"})
