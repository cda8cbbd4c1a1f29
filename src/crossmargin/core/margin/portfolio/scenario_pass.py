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
SIDE_WEIGHT_ARGUMENT = 16  # two_stream_row_sum's side_weight: None means no side stream


def _row_sums(with_side: bool) -> Callable[..., None]:
    """core.simd.two_stream_row_sum with the side stream (with_side) or without (its arguments
    all None): a closure, so that numba drops the other branch when it compiles it."""

    def sums(
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


_ROW_SUMS = {True: _row_sums(True), False: _row_sums(False)}


def two_stream_row_sum(*args: Any) -> None:
    """core.simd.two_stream_row_sum (prefetch_ahead is ignored: a hint, not a number), arguments
    as there (the side stream's six last, or None). Runs as Python; compiled code inlines the
    `_row_sums` build its argument types pick (`register_overloads`)."""
    _ROW_SUMS[args[SIDE_WEIGHT_ARGUMENT] is not None](*args)


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
    from numba.extending import overload

    overload(two_stream_row_sum, inline="always")(
        _typing(_ROW_SUMS[True], lambda args: _ROW_SUMS[args[SIDE_WEIGHT_ARGUMENT] is not types_none()])
    )
    overload(two_stream_row_sum_worst, inline="always")(
        _typing(two_stream_row_sum_worst, lambda args: two_stream_row_sum_worst)
    )


def types_none() -> Any:
    from numba import types

    return types.none


def _typing(signature: Callable[..., Any], pick: Callable[[tuple[Any, ...]], Any]) -> Callable[..., Any]:
    """A typing function with `signature`'s parameters (numba compares them with the
    implementation's, through __wrapped__, annotations included), returning `pick(arg types)`."""

    @functools.wraps(signature)
    def typing(*args: Any) -> Any:
        return pick(args)

    return typing
