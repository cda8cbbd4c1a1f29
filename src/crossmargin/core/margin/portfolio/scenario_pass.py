"""The scenario pass in plain Python for numba: core.simd's three intrinsics, same names, same
arguments, same numbers, written as loops (the portable build, `CROSSMARGIN_KERNEL=numba`, and,
run by the interpreter, the `python` one; core.jit).

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

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from crossmargin.core.jit import kernel
from crossmargin.core.simd_layout import LANES, SIDE_SHORT_LANE, SIDE_SIGNED_LANE

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
    """core.simd.two_stream_row_sum (prefetch_ahead is ignored: a hint, not a number), with the
    side stream or (all its arguments None) without. Runs as Python; numba inlines it
    (`register_overloads`)."""
    split = start  # positions [start, split) with the side sums, then [split, stop)
    if side_weight is not None:  # a branch numba prunes by the argument's type
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
    min(loss, depeg_cap·grid)) or 0 without positions). Runs as Python; numba inlines it."""
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


@kernel(nogil=True, inline="always")
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


@functools.cache
def register_overloads() -> None:
    """Let numba compile calls of `two_stream_row_sum` and `two_stream_row_sum_worst`: each
    inlined into its caller (typed inlining, as the intrinsics are), its own source as the
    implementation, so that numba prunes the side stream's branch when its arguments are None.
    Once per process, before the first compiled build of the portfolio kernel (backend.py)."""
    from numba.extending import overload  # noqa: PLC0415 - numba only for compiled builds

    for function in (two_stream_row_sum, two_stream_row_sum_worst):
        overload(function, inline="always")(_typing(function))


def _typing(implementation: Callable[..., Any]) -> Callable[..., Any]:
    # The typing function's signature must be the implementation's (numba compares them, through
    # __wrapped__), annotations included.
    @functools.wraps(implementation)
    def typing(*args: Any) -> Callable[..., Any]:
        return implementation

    return typing
