"""The scenario pass in plain numba: core.simd's three intrinsics, same names, same arguments, same
numbers, written as numba loops (the portable build, `CROSSMARGIN_KERNEL=numba`).

    two_stream_row_sum        out[col0 : col0 + 8·V] = Σ_p weight[p]·scale[i]·rows[row_of[i]]
                                                       + Σ_c weight_b[c]·rows_b[index_b[c]]
                              (i = index[p]), and the side sums into side_out[0:8]
    two_stream_row_sum_worst  the same sums reduced to (worst grid scenario, grid, depeg loss)
    first_worst               the first scenario with the largest loss -weight·pnl - offset

core.simd's docstrings state the contracts. The bits are the intrinsics' too: every sum is added
in the intrinsics' order (even positions onto the running total, odd ones onto a second set of
sums from zero, the two then added; positions up to side_stop, then the rest, then balances, each
run so), every product is a multiply then an add (numba does not contract them into a fused
multiply-add without fastmath), and the maxima break ties on the first scenario. The sums live in
memory (`out`'s block and an 8·V scratch per call), which is what the intrinsics avoid.

Each is one flat function inlined into the caller (numba IR), as the intrinsics are: called
instead, once per account with twenty arrays, the portfolio kernel measured 4-6x slower (numba's
calls pass reference-counted arrays; the kernel's docstring has the same story).

Differences: `two_stream_row_sum_worst` uses `out` (at least 8·V elements) as scratch, where the
intrinsic leaves it untouched (the portfolio kernel passes its P&L buffer, which it does not read
after that call); `prefetch_ahead` and the vector count need not be compile-time constants.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba import types
from numba.extending import overload

from crossmargin.core.simd import LANES, SIDE_SHORT_LANE, SIDE_SIGNED_LANE

Array = np.ndarray  # typed by numba at the call; shapes and dtypes as core.simd states


def two_stream_row_sum(
    index: Array,
    weight: Array,
    start: int,
    stop: int,
    row_of: Array,
    scale: Array,
    rows: Array,
    index_b: Array,
    weight_b: Array,
    start_b: int,
    stop_b: int,
    rows_b: Array,
    col0: int,
    out: Array,
    n_vectors: int,
    prefetch_ahead: int,
    side_weight: Any,
    side_stop: Any,
    side_rows: Any,
    side_initial: Any,
    side_initial_row: Any,
    side_out: Any,
) -> None:
    """core.simd.two_stream_row_sum (prefetch_ahead is ignored: a hint, not a number). Compiled
    code only: numba inlines the implementation `_two_stream_row_sum` picks by the argument types."""
    raise NotImplementedError("call from numba-compiled code")


def two_stream_row_sum_worst(
    index: Array,
    weight: Array,
    start: int,
    stop: int,
    row_of: Array,
    scale: Array,
    rows: Array,
    index_b: Array,
    weight_b: Array,
    start_b: int,
    stop_b: int,
    rows_b: Array,
    col0: int,
    out: Array,
    n_vectors: int,
    prefetch_ahead: int,
    side_weight: Any,
    side_stop: Any,
    side_rows: Any,
    side_initial: Any,
    side_initial_row: Any,
    side_out: Any,
    worst: tuple[Array, Array, int, int, float],
) -> tuple[int, float, float]:
    """core.simd.two_stream_row_sum_worst, with `out` as scratch for the block's sums:
    (first grid scenario with the largest loss, max(that loss, 0), max(0, max over depeg rows of
    min(loss, depeg_cap·grid)) or 0 without positions). Compiled code only."""
    raise NotImplementedError("call from numba-compiled code")


# The typing functions' parameters carry no annotations: numba compares them with the
# implementations' whole, annotations included.
@overload(two_stream_row_sum, inline="always")
def _two_stream_row_sum(  # type: ignore[no-untyped-def]
    index, weight, start, stop, row_of, scale, rows, index_b, weight_b, start_b, stop_b, rows_b, col0,
    out, n_vectors, prefetch_ahead, side_weight, side_stop, side_rows, side_initial, side_initial_row,
    side_out,
):  # fmt: skip
    """The implementation, with the side stream or (all its arguments None) without."""
    with_side = side_weight is not types.none

    def sums(  # type: ignore[no-untyped-def]
        index, weight, start, stop, row_of, scale, rows, index_b, weight_b, start_b, stop_b, rows_b, col0,
        out, n_vectors, prefetch_ahead, side_weight, side_stop, side_rows, side_initial, side_initial_row,
        side_out,
    ):  # fmt: skip
        split = start  # positions [start, split) with the side sums, then [split, stop)
        if with_side:
            split = side_stop
            for lane in range(LANES):
                # multiplier(w): |w|, but max(-w, 0) on the short lane and w on the signed lane
                even = side_initial[side_initial_row, lane]
                odd_lane = 0.0
                p = start
                while p < split:
                    w = side_weight[p]
                    if lane == SIDE_SHORT_LANE:
                        w = -w if w < 0.0 else 0.0
                    elif lane != SIDE_SIGNED_LANE:
                        w = abs(w)
                    term = w * side_rows[index[p], lane]
                    if (p - start) % 2 == 0:
                        even += term
                    else:
                        odd_lane += term
                    p += 1
                side_out[lane] = even + odd_lane
        n = LANES * n_vectors
        odd = np.empty(n)
        for c in range(n):
            out[col0 + c] = 0.0
        # Positions: the run up to split, then the rest, each from its own zero odd sums.
        for run_start, run_stop in ((start, split), (split, stop)):
            odd[:] = 0.0
            p = run_start
            while p + 1 < run_stop:
                i, j = index[p], index[p + 1]
                w_even, w_odd = weight[p] * scale[i], weight[p + 1] * scale[j]
                r_even, r_odd = row_of[i], row_of[j]
                for c in range(n):
                    out[col0 + c] += w_even * rows[r_even, col0 + c]
                    odd[c] += w_odd * rows[r_odd, col0 + c]
                p += 2
            if p < run_stop:
                i = index[p]
                w_even, r_even = weight[p] * scale[i], row_of[i]
                for c in range(n):
                    out[col0 + c] += w_even * rows[r_even, col0 + c]
            for c in range(n):
                out[col0 + c] += odd[c]
        # Balances: direct rows, no scale.
        odd[:] = 0.0
        p = start_b
        while p + 1 < stop_b:
            w_even, w_odd = weight_b[p], weight_b[p + 1]
            r_even, r_odd = index_b[p], index_b[p + 1]
            for c in range(n):
                out[col0 + c] += w_even * rows_b[r_even, col0 + c]
                odd[c] += w_odd * rows_b[r_odd, col0 + c]
            p += 2
        if p < stop_b:
            w_even, r_even = weight_b[p], index_b[p]
            for c in range(n):
                out[col0 + c] += w_even * rows_b[r_even, col0 + c]
        for c in range(n):
            out[col0 + c] += odd[c]

    return sums


@overload(two_stream_row_sum_worst, inline="always")
def _two_stream_row_sum_worst(  # type: ignore[no-untyped-def]
    index, weight, start, stop, row_of, scale, rows, index_b, weight_b, start_b, stop_b, rows_b, col0, out,
    n_vectors, prefetch_ahead, side_weight, side_stop, side_rows, side_initial, side_initial_row, side_out,
    worst,
):  # fmt: skip
    def sums_then_worst(  # type: ignore[no-untyped-def]
        index, weight, start, stop, row_of, scale, rows, index_b, weight_b, start_b, stop_b, rows_b, col0,
        out, n_vectors, prefetch_ahead, side_weight, side_stop, side_rows, side_initial, side_initial_row,
        side_out,
        worst,
    ):  # fmt: skip
        two_stream_row_sum(index, weight, start, stop, row_of, scale, rows, index_b, weight_b, start_b,
                           stop_b, rows_b, col0, out, n_vectors, prefetch_ahead, side_weight, side_stop,
                           side_rows, side_initial, side_initial_row, side_out)  # fmt: skip
        loss_weight, offset, n_grid, n_scen, cap_rate = worst
        best = -np.inf
        arg = 0
        for s in range(n_grid):
            loss = -(loss_weight[s] * out[s]) - offset[s]
            if loss > best:  # strict: the first of equal losses; a NaN loss never counts
                best = loss
                arg = s
        grid = best if best > 0.0 else 0.0
        depeg = 0.0
        if start < stop:
            cap = cap_rate * grid
            for s in range(n_grid, n_scen):
                loss = -(loss_weight[s] * out[s]) - offset[s]
                capped = loss if loss < cap else cap
                if capped > depeg:
                    depeg = capped
        return arg, grid, depeg

    return sums_then_worst


@numba.njit(cache=True, nogil=True, inline="always")
def first_worst(pnl: Array, weight: Array, offset: Array, n: int) -> int:
    """core.simd.first_worst: the first s in [0, n) with the largest -weight[s]·pnl[s] - offset[s]
    (0 when n == 0 or every loss is NaN)."""
    best = -np.inf
    arg = 0
    for s in range(n):
        loss = -(weight[s] * pnl[s]) - offset[s]
        if loss > best:
            best = loss
            arg = s
    return arg
