"""The scenario pass in plain numba: core.simd's three intrinsics, same names, same arguments, same
numbers, written as scalar loops (the portable backend, `CROSSMARGIN_KERNEL=numba`).

    two_stream_row_sum        out[col0 : col0 + 8·V] = Σ_p weight[p]·scale[i]·rows[row_of[i]]
                                                       + Σ_c weight_b[c]·rows_b[index_b[c]]
                              (i = index[p]), and the side sums into side_out[0:8]
    two_stream_row_sum_worst  the same sums reduced to (worst grid scenario, grid, depeg loss)
    first_worst               the first scenario with the largest loss -weight·pnl - offset

core.simd's docstrings state the contracts. The bits are the intrinsics' too: every sum is added
in the intrinsics' order (even positions onto the running total, odd ones onto zero, the two sets
then added; positions up to side_stop, then the rest, then balances, each run so), every product
is a multiply then an add (no fused multiply-add: numba does not contract without fastmath), and
the maxima break ties on the first scenario. The loop runs over scenarios outside, positions
inside, so each sum is a scalar in a register rather than a store-to-load chain through memory.

One difference: `two_stream_row_sum_worst` uses `out` (at least 8·V elements) as scratch, where
the intrinsic leaves it untouched; the portfolio kernel passes its P&L buffer, which it does not
read after that call.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from crossmargin.core.simd import LANES, SIDE_SHORT_LANE, SIDE_SIGNED_LANE

Array = np.ndarray  # typed by numba at the call; shapes and dtypes as core.simd states
# The side stream's arguments are arrays and ints, or all None: Any.


@numba.njit(cache=True, nogil=True)
def _mapped_sum(
    total: float,
    index: Array,
    weight: Array,
    row_of: Array,
    scale: Array,
    rows: Array,
    start: int,
    stop: int,
    column: int,
) -> float:
    """total + Σ_{p in [start, stop)} weight[p]·scale[i]·rows[row_of[i], column], i = index[p],
    in the intrinsics' order: even positions onto total, odd ones onto 0, then the two added."""
    even = total
    odd = 0.0
    p = start
    while p + 1 < stop:
        i = index[p]
        even += (weight[p] * scale[i]) * rows[row_of[i], column]
        j = index[p + 1]
        odd += (weight[p + 1] * scale[j]) * rows[row_of[j], column]
        p += 2
    if p < stop:
        i = index[p]
        even += (weight[p] * scale[i]) * rows[row_of[i], column]
    return even + odd


@numba.njit(cache=True, nogil=True)
def _direct_sum(
    total: float, index: Array, weight: Array, rows: Array, start: int, stop: int, column: int
) -> float:
    """`_mapped_sum` with the identity row map and no scale (the balances' stream)."""
    even = total
    odd = 0.0
    p = start
    while p + 1 < stop:
        even += weight[p] * rows[index[p], column]
        odd += weight[p + 1] * rows[index[p + 1], column]
        p += 2
    if p < stop:
        even += weight[p] * rows[index[p], column]
    return even + odd


@numba.njit(cache=True, nogil=True)
def _side_multiplier(w: float, lane: int) -> float:
    """What a side row's lane is charged per contract of a position of signed size w."""
    if lane == SIDE_SHORT_LANE:
        return -w if w < 0.0 else 0.0
    if lane == SIDE_SIGNED_LANE:
        return w
    return abs(w)


@numba.njit(cache=True, nogil=True)
def _side_sums(
    index: Array,
    start: int,
    stop: int,
    side_weight: Array,
    side_rows: Array,
    side_initial: Array,
    side_initial_row: int,
    side_out: Array,
) -> None:
    """side_out[0:8] = side_initial[row] + Σ_p multiplier(side_weight[p]) ⊙ side_rows[index[p]],
    even and odd positions apart as in `_mapped_sum`."""
    for lane in range(LANES):
        even = side_initial[side_initial_row, lane]
        odd = 0.0
        p = start
        while p + 1 < stop:
            even += _side_multiplier(side_weight[p], lane) * side_rows[index[p], lane]
            odd += _side_multiplier(side_weight[p + 1], lane) * side_rows[index[p + 1], lane]
            p += 2
        if p < stop:
            even += _side_multiplier(side_weight[p], lane) * side_rows[index[p], lane]
        side_out[lane] = even + odd


@numba.njit(cache=True, nogil=True)
def _column_sum(
    column: int,
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
    split: int,
) -> float:
    """One scenario's sum as the intrinsic adds it: positions [start, split) from 0, then
    [split, stop), then the balances, each run onto the total so far."""
    total = _mapped_sum(0.0, index, weight, row_of, scale, rows, start, split, column)
    total = _mapped_sum(total, index, weight, row_of, scale, rows, split, stop, column)
    return _direct_sum(total, index_b, weight_b, rows_b, start_b, stop_b, column)


@numba.njit(cache=True, nogil=True)
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
    """core.simd.two_stream_row_sum (prefetch_ahead is ignored: a hint, not a number)."""
    split = start  # without a side stream, the positions are one run
    if side_weight is not None:
        split = side_stop
        _side_sums(index, start, side_stop, side_weight, side_rows, side_initial, side_initial_row, side_out)
    for column in range(col0, col0 + LANES * n_vectors):
        out[column] = _column_sum(column, index, weight, start, stop, row_of, scale, rows, index_b, weight_b,
                                  start_b, stop_b, rows_b, split)  # fmt: skip


@numba.njit(cache=True, nogil=True)
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
    min(loss, depeg_cap·grid)) or 0 without positions)."""
    loss_weight, offset, n_grid, n_scen, cap_rate = worst
    two_stream_row_sum(index, weight, start, stop, row_of, scale, rows, index_b, weight_b, start_b, stop_b,
                       rows_b, col0, out, n_vectors, prefetch_ahead, side_weight, side_stop, side_rows,
                       side_initial, side_initial_row, side_out)  # fmt: skip
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


@numba.njit(cache=True, nogil=True)
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
