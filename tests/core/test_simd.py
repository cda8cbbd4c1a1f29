"""The vector-register intrinsics against plain numpy, on random data (hypothesis); the scenario
pass's implementations (core.simd's intrinsics, the portfolio kernel's plain scenario_pass compiled
by numba and run as Python) through the same tests, to the same bits where the intrinsics promise
bits."""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossmargin.core import simd
from crossmargin.core.margin.portfolio import ADDON_NAMES
from crossmargin.core.margin.portfolio import scenario_pass as plain
from crossmargin.core.simd import (
    LANES,
    SIDE_SHORT_LANE,
    SIDE_SIGNED_LANE,
    first_worst,
    two_stream_row_sum,
    two_stream_row_sum_worst,
    weighted_row_sum,
)

# The scenario pass by backend name (CROSSMARGIN_KERNEL): the names the helpers below call.
SCENARIO_PASS = {
    "simd": {
        "two_stream_row_sum": simd.two_stream_row_sum,
        "two_stream_row_sum_worst": simd.two_stream_row_sum_worst,
        "first_worst": simd.first_worst,
    },
    "numba": {
        "two_stream_row_sum": plain.two_stream_row_sum,
        "two_stream_row_sum_worst": plain.two_stream_row_sum_worst,
        "first_worst": plain.first_worst.compiled(),
    },
    # The same plain scenario pass run by the interpreter (core.jit: CROSSMARGIN_KERNEL=python).
    "python": {
        "two_stream_row_sum": plain.two_stream_row_sum,
        "two_stream_row_sum_worst": plain.two_stream_row_sum_worst,
        "first_worst": plain.first_worst,
    },
}
plain.register_overloads()  # numba inlines the plain pass where compiled code calls it
BACKENDS = pytest.mark.parametrize("backend", list(SCENARIO_PASS))


@functools.cache
def _with(helper: Callable[..., Any], backend: str) -> Any:
    """The helper compiled with the backend's scenario pass bound to the names it calls (the
    python backend: the helper as Python, not compiled)."""
    rebound = {**helper.__globals__, **SCENARIO_PASS[backend]}
    copy = types.FunctionType(helper.__code__, rebound, helper.__name__)
    return copy if backend == "python" else numba.njit(cache=False)(copy)


@functools.cache
def _simd_passes(helper: Callable[..., Any], per_pass: int) -> Callable[..., Any]:
    """The helper compiled with core.simd's intrinsics summing `per_pass` vectors per pass over
    the positions (simd.VECTORS_PER_PASS, read when the intrinsics' code is generated: the
    host's own choice is 4 with AVX-512, 2 without)."""
    build = _with.__wrapped__(helper, "simd")  # a dispatcher of its own, compiled at its first call

    def call(*args: Any) -> Any:
        chosen = simd.VECTORS_PER_PASS
        simd.VECTORS_PER_PASS = per_pass
        try:
            return build(*args)
        finally:
            simd.VECTORS_PER_PASS = chosen

    return call


@numba.njit(cache=False)
def _sums(index, weight, row_of, scale, rows, out, start, stop, ahead_on):  # type: ignore[no-untyped-def]
    width = rows.shape[1]
    for col in range(0, width, 4 * LANES):
        left = (width - col) // LANES
        # Exercise every vector count and both modes; the prefetch never changes the result.
        if left >= 4:
            if ahead_on:
                weighted_row_sum(index, weight, start, stop, row_of, scale, rows, col, out, 4, False, 5)
            else:
                weighted_row_sum(index, weight, start, stop, row_of, scale, rows, col, out, 4, False, 0)
        elif left == 3:
            weighted_row_sum(index, weight, start, stop, row_of, scale, rows, col, out, 3, False, 2)
        elif left == 2:
            weighted_row_sum(index, weight, start, stop, row_of, scale, rows, col, out, 2, False, 0)
        else:
            weighted_row_sum(index, weight, start, stop, row_of, scale, rows, col, out, 1, False, 1)


@numba.njit(cache=False)
def _sums_identity(index, weight, rows, out, start, stop):  # type: ignore[no-untyped-def]
    weighted_row_sum(index, weight, start, stop, None, None, rows, 0, out, 1, False, 0)
    # Accumulating the same range again doubles it.
    weighted_row_sum(index, weight, start, stop, None, None, rows, 0, out, 1, True, 0)


def _two_streams(index, weight, row_of, scale, rows, b_index, b_weight, b_rows, out, b_stop):  # type: ignore[no-untyped-def]
    two_stream_row_sum(
        index,
        weight,
        0,
        index.shape[0],
        row_of,
        scale,
        rows,
        b_index,
        b_weight,
        0,
        b_stop,
        b_rows,
        0,
        out,
        2,
        3,
        None,
        None,
        None,
        None,
        None,
        None,
    )


def _two_streams_side(index, weight, row_of, scale, rows, b_index, b_weight, b_rows, out, b_stop,  # type: ignore[no-untyped-def]
                      side_weight, side_stop, side_rows, side_initial, side_out, ahead_on):  # fmt: skip
    n = index.shape[0]
    if ahead_on:
        two_stream_row_sum(index, weight, 0, n, row_of, scale, rows, b_index, b_weight, 0, b_stop, b_rows, 0, out, 2, 3,
                           side_weight, side_stop, side_rows, side_initial, 1, side_out)  # fmt: skip
    else:
        two_stream_row_sum(index, weight, 0, n, row_of, scale, rows, b_index, b_weight, 0, b_stop, b_rows, 0, out, 1, 0,
                           side_weight, side_stop, side_rows, side_initial, 1, side_out)  # fmt: skip


def _fused(index, weight, start, stop, row_of, scale, rows, b_index, b_weight, b_stop, b_rows,  # type: ignore[no-untyped-def]
           n_vectors, side_weight, side_rows, side_initial, pnl, side_out, worst):  # fmt: skip
    """The block stored by two_stream_row_sum with a run-time vector count, then the fused
    reduction over the same call: (arg, grid, depeg), side sums of both calls."""
    side_stored = np.empty(LANES)
    two_stream_row_sum(index, weight, start, stop, row_of, scale, rows, b_index, b_weight, 0, b_stop, b_rows, 0,
                       pnl, n_vectors, 0, side_weight, stop, side_rows, side_initial, 0, side_stored)  # fmt: skip
    # The intrinsic never writes its `out`; the plain build uses it as scratch (its whole width).
    scratch = np.full(pnl.shape[0], np.nan)
    result = two_stream_row_sum_worst(
        index, weight, start, stop, row_of, scale, rows, b_index, b_weight, 0, b_stop, b_rows, 0,
        scratch, n_vectors, 2, side_weight, stop, side_rows, side_initial, 0, side_out, worst)  # fmt: skip
    return result, side_stored


def _literal_four(index, weight, row_of, scale, rows, b_index, b_weight, b_stop, b_rows, out):  # type: ignore[no-untyped-def]
    two_stream_row_sum(index, weight, 0, index.shape[0], row_of, scale, rows, b_index, b_weight, 0, b_stop, b_rows,
                       0, out, 4, 0, None, None, None, None, None, None)  # fmt: skip


def _worst(pnl, weight, offset, n):  # type: ignore[no-untyped-def]
    return first_worst(pnl, weight, offset, n)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_blocks=st.integers(1, 9),
    n_positions=st.integers(0, 40),
    index_dtype=st.sampled_from([np.int32, np.int64]),
    ahead=st.booleans(),
)
def test_weighted_row_sum_matches_numpy(
    seed: int, n_blocks: int, n_positions: int, index_dtype: type, ahead: bool
) -> None:
    rng = np.random.default_rng(seed)
    n_rows, n_instruments = 7, 11
    rows = rng.normal(size=(n_rows, n_blocks * LANES))
    row_of = rng.integers(0, n_rows, size=n_instruments).astype(np.int32)
    scale = rng.normal(size=n_instruments)
    index = rng.integers(0, n_instruments, size=n_positions + 3).astype(index_dtype)
    weight = rng.normal(size=n_positions + 3)
    start, stop = 1, 1 + n_positions
    out = np.full(rows.shape[1], np.nan)
    _sums(index, weight, row_of, scale, rows, out, start, stop, ahead)
    i = index[start:stop]
    expected = ((weight[start:stop] * scale[i])[:, None] * rows[row_of[i]]).sum(axis=0)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_a=st.integers(0, 13), n_b=st.integers(0, 5))
@BACKENDS
def test_two_streams_add_up(seed: int, n_a: int, n_b: int, backend: str) -> None:
    """Positions (mapped rows) then balances (direct rows), stored once: the sum of both."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(4, 2 * LANES))
    row_of = rng.integers(0, 4, size=6).astype(np.int32)
    scale = rng.normal(size=6)
    index = rng.integers(0, 6, size=n_a).astype(np.int32)
    weight = rng.normal(size=n_a)
    b_rows = rng.normal(size=(3, 2 * LANES))
    b_index = rng.integers(0, 3, size=n_b + 1).astype(np.int64)
    b_weight = rng.normal(size=n_b + 1)
    out = np.full(2 * LANES, np.nan)
    _with(_two_streams, backend)(index, weight, row_of, scale, rows, b_index, b_weight, b_rows, out, n_b)
    expected = ((weight * scale[index])[:, None] * rows[row_of[index]]).sum(axis=0)
    expected = expected + (b_weight[:n_b, None] * b_rows[b_index[:n_b]]).sum(axis=0)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_a=st.integers(0, 13),
    n_b=st.integers(0, 4),
    split=st.floats(0.0, 1.0),
    ahead=st.booleans(),
)
@BACKENDS
def test_side_stream_charges_each_lane_by_its_multiplier(
    seed: int, n_a: int, n_b: int, split: float, ahead: bool, backend: str
) -> None:
    """The side sum over the first side_stop positions, each instrument's row times |w| on every
    lane but the short lane (max(-w, 0)) and the signed lane (w), added to the initial row; the
    scenario sums are unchanged by it."""
    rng = np.random.default_rng(seed)
    n_vec = 2 if ahead else 1
    rows = rng.normal(size=(4, n_vec * LANES))
    row_of = rng.integers(0, 4, size=6).astype(np.int32)
    scale = rng.normal(size=6)
    index = rng.integers(0, 6, size=n_a).astype(np.int32)
    weight = rng.normal(size=n_a)
    side_weight = rng.normal(size=n_a) * rng.integers(0, 2, size=n_a)  # some zero
    side_rows = rng.normal(size=(6, LANES))
    b_rows = rng.normal(size=(3, n_vec * LANES))
    b_index = rng.integers(0, 3, size=n_b + 1).astype(np.int64)
    b_weight = rng.normal(size=n_b + 1)
    side_stop = round(split * n_a)
    side_initial = rng.normal(size=(3, LANES))
    before = side_initial[1]
    side_out = np.full(LANES, np.nan)
    out = np.full(n_vec * LANES, np.nan)
    _with(_two_streams_side, backend)(index, weight, row_of, scale, rows, b_index, b_weight, b_rows, out, n_b,
                                      side_weight, side_stop, side_rows, side_initial, side_out, ahead)  # fmt: skip
    expected = ((weight * scale[index])[:, None] * rows[row_of[index]]).sum(axis=0)
    expected = expected + (b_weight[:n_b, None] * b_rows[b_index[:n_b]]).sum(axis=0)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    w, i = side_weight[:side_stop], index[:side_stop].astype(np.int64)
    multiplier = np.array([side_multiplier(x) for x in w]).reshape(-1, LANES)
    expected_side = before + (multiplier * side_rows[i]).sum(axis=0)
    np.testing.assert_allclose(side_out, expected_side, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("w", [-2.5, -0.0, 0.0, 3.0, -5e-324, 1.7e308])
@BACKENDS
def test_side_term_is_exactly_the_multiplier_times_the_row(w: float, backend: str) -> None:
    """One position: the side sum is the multiplier times the row to the bit, on a row with
    positive, negative and zero entries (the intrinsic multiplies w by ±1 or 0 per lane where the
    plain pass takes |w|, max(-w, 0) and w). Finite weights: Book refuses a non-finite quantity."""
    side_rows = np.array([[1.5, -0.75, 2.0, 0.0, -3.0, -1.25, 0.5, -0.0]])
    one = np.zeros(1, dtype=np.int32)
    out, side_out = np.full(LANES, np.nan), np.full(LANES, np.nan)
    _with(_two_streams_side, backend)(one, np.ones(1), one, np.ones(1), np.ones((1, LANES)), np.zeros(1, dtype=np.int64),
                                      np.zeros(1), np.zeros((1, LANES)), out, 0, np.array([w]), 1, side_rows,
                                      np.zeros((2, LANES)), side_out, False)  # fmt: skip
    expected = np.array(side_multiplier(w)) * side_rows[0]
    np.testing.assert_array_equal(side_out, expected)


def side_multiplier(weight: float) -> list[float]:
    """Per lane, what a side row is charged per contract of a position of signed size `weight`."""
    lanes = [abs(weight)] * LANES
    lanes[SIDE_SHORT_LANE] = max(-weight, 0.0)
    lanes[SIDE_SIGNED_LANE] = weight
    return lanes


def test_side_lanes_are_the_short_option_and_funding_addons() -> None:
    """The portfolio kernel's add-on columns line up with the side stream's special lanes."""
    assert ADDON_NAMES[SIDE_SHORT_LANE] == "short_option"
    assert ADDON_NAMES[SIDE_SIGNED_LANE] == "funding_provision"
    assert side_multiplier(-2.0) == [2.0, 2.0, 2.0, 2.0, 2.0, -2.0, 2.0, 2.0]
    assert side_multiplier(3.0) == [3.0, 3.0, 0.0, 3.0, 3.0, 3.0, 3.0, 3.0]


def test_identity_rows_and_accumulate() -> None:
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(5, LANES))
    index = np.array([4, 0, 4, 2], dtype=np.int64)
    weight = rng.normal(size=4)
    out = np.empty(LANES)
    _sums_identity(index, weight, rows, out, 0, 4)
    np.testing.assert_allclose(out, 2.0 * (weight[:, None] * rows[index]).sum(axis=0), rtol=1e-13)


def test_perfect_hedge_cancels_exactly() -> None:
    """Multiply then add (two roundings): w·x + (-w)·x is exactly 0, which a fused multiply-add
    would not give."""
    rows = np.full((1, LANES), 1.6)
    out = np.empty(LANES)
    _sums_identity(np.zeros(2, dtype=np.int64), np.array([3.0, -3.0]), rows, out, 0, 2)
    assert np.all(out == 0.0)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 40), ties=st.booleans())
@BACKENDS
def test_first_worst_is_numpy_argmax(seed: int, n: int, ties: bool, backend: str) -> None:
    rng = np.random.default_rng(seed)
    width = max(LANES, -(-n // LANES) * LANES)
    pnl = rng.normal(size=width)
    if ties:
        pnl = np.round(pnl)
    weight = rng.uniform(0.1, 1.0, size=width)
    offset = rng.choice([0.0, 1.0], size=width)
    pnl[n:], weight[n:] = 1e9, -5.0  # padding that would win if it were not masked
    expected = int(np.argmax(-weight[:n] * pnl[:n] - offset[:n])) if n else 0
    assert _with(_worst, backend)(pnl, weight, offset, n) == expected


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_vectors=st.integers(1, 4),
    n_positions=st.integers(0, 12),
    n_balances=st.integers(0, 3),
    grid_frac=st.floats(0.0, 1.0),
    ties=st.booleans(),
)
@BACKENDS
def test_fused_worst_is_first_worst_and_the_depeg_loop(
    seed: int, n_vectors: int, n_positions: int, n_balances: int, grid_frac: float, ties: bool, backend: str
) -> None:
    """two_stream_row_sum_worst returns, bit for bit, what the portfolio kernel's general path
    computes from the stored block: first_worst's scenario, max(loss, 0), and the capped depeg
    maximum (0 without positions); the run-time vector count picks the matching loop."""
    rng = np.random.default_rng(seed)
    width = n_vectors * LANES
    n_rows, n_instruments = 5, 9
    rows = rng.normal(size=(n_rows, width))
    if ties:
        rows = np.round(rows)  # many scenarios share the worst loss
    row_of = rng.integers(0, n_rows, size=n_instruments).astype(np.int32)
    scale = np.where(ties, 1.0, rng.uniform(0.5, 2.0, size=n_instruments))
    index = rng.integers(0, n_instruments, size=n_positions).astype(np.int32)
    weight = rng.integers(-3, 4, size=n_positions).astype(np.float64)
    b_rows = rng.normal(size=(3, width))
    b_index = rng.integers(0, 3, size=n_balances).astype(np.int64)
    b_weight = rng.uniform(0.0, 2.0, size=n_balances)
    side_weight = rng.choice([0.0, 1.5, -2.0], size=n_positions)
    side_rows = rng.normal(size=(n_instruments, LANES))
    side_initial = rng.normal(size=(1, LANES))
    n_scen = int(rng.integers(0, width + 1))
    n_grid = min(round(grid_frac * n_scen), n_scen)
    loss_weight = np.zeros(width)
    loss_weight[:n_scen] = rng.choice([1.0, 0.35], size=n_scen)
    offset = np.zeros(width)
    offset[:n_scen] = rng.choice([0.0, 0.5], size=n_scen)
    # Padding lanes that would win if they were read: huge losses past n_scen.
    loss_weight[n_scen:] = -1e9
    cap_rate = 0.25
    pnl = np.empty(width)
    side_out = np.empty(LANES)
    (arg, grid, depeg), side_stored = _with(_fused, backend)(
        index, weight, 0, n_positions, row_of, scale, rows, b_index, b_weight, n_balances, b_rows,
        n_vectors, side_weight, side_rows, side_initial, pnl, side_out,
        (loss_weight, offset, n_grid, n_scen, cap_rate),
    )  # fmt: skip

    loss = -loss_weight * pnl - offset
    expected_arg = _with(_worst, backend)(pnl, loss_weight, offset, n_grid) if n_grid else 0
    expected_grid = max(loss[expected_arg], 0.0) if n_grid else 0.0
    expected_depeg = 0.0
    if n_positions:
        for s in range(n_grid, n_scen):
            expected_depeg = max(expected_depeg, min(loss[s], cap_rate * expected_grid))
    assert (arg, grid, depeg) == (expected_arg, expected_grid, expected_depeg)
    assert np.array_equal(side_out, side_stored)
    # The stored block itself: numpy's sums (to rounding), and the literal 4-vector call's bits.
    expected_pnl = (weight * scale[index]) @ rows[row_of[index]] + b_weight @ b_rows[b_index]
    np.testing.assert_allclose(pnl, expected_pnl, rtol=1e-12, atol=1e-9)
    if n_vectors == 4:
        literal = np.empty(width)
        _with(_literal_four, backend)(
            index, weight, row_of, scale, rows, b_index, b_weight, n_balances, b_rows, literal
        )
        assert np.array_equal(literal, pnl)


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_vectors=st.integers(1, 4),
    n_positions=st.integers(0, 12),
    n_balances=st.integers(0, 3),
)
def test_plain_scenario_pass_is_the_intrinsics_bit_for_bit(
    seed: int, n_vectors: int, n_positions: int, n_balances: int
) -> None:
    """The plain build adds in the intrinsics' order (even and odd positions apart, then the
    balances), so the block, the side sums and the worst scenario are the same bits; so do the
    intrinsics whatever the number of vectors summed per pass over the positions."""
    rng = np.random.default_rng(seed)
    width = n_vectors * LANES
    rows = rng.normal(size=(5, width))
    row_of = rng.integers(0, 5, size=9).astype(np.int32)
    scale = rng.uniform(0.5, 2.0, size=9)
    index = rng.integers(0, 9, size=n_positions).astype(np.int32)
    weight = rng.normal(size=n_positions) * 10.0 ** rng.integers(-3, 4, size=n_positions)
    b_rows = rng.normal(size=(3, width))
    b_index = rng.integers(0, 3, size=n_balances).astype(np.int64)
    b_weight = rng.uniform(0.0, 2.0, size=n_balances)
    side_weight = rng.normal(size=n_positions)
    side_rows = rng.normal(size=(9, LANES))
    side_initial = rng.normal(size=(1, LANES))
    loss_weight = np.ones(width)
    offset = np.zeros(width)
    worst = (loss_weight, offset, width - 1, width, 0.25)
    results = {}
    for backend in SCENARIO_PASS:
        pnl, side_out = np.empty(width), np.empty(LANES)
        fused, side_stored = _with(_fused, backend)(
            index, weight, 0, n_positions, row_of, scale, rows, b_index, b_weight, n_balances, b_rows,
            n_vectors, side_weight, side_rows, side_initial, pnl, side_out, worst,
        )  # fmt: skip
        results[backend] = (fused, pnl, side_out, side_stored)
    for per_pass in range(1, simd.MAX_VECTORS + 1):
        if per_pass == simd.VECTORS_PER_PASS:
            continue  # the "simd" build above: the host's own width
        pnl, side_out = np.empty(width), np.empty(LANES)
        fused, side_stored = _simd_passes(_fused, per_pass)(
            index, weight, 0, n_positions, row_of, scale, rows, b_index, b_weight, n_balances, b_rows,
            n_vectors, side_weight, side_rows, side_initial, pnl, side_out, worst,
        )  # fmt: skip
        results[f"simd, {per_pass} vectors a pass"] = (fused, pnl, side_out, side_stored)
    simd_fused, *simd_arrays = results["simd"]
    for build in results:
        plain_fused, *plain_arrays = results[build]
        assert plain_fused == simd_fused
        for got, expected in zip(plain_arrays, simd_arrays, strict=True):
            assert np.array_equal(got, expected)
