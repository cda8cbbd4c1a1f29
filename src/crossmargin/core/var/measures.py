"""Value at Risk and Expected Shortfall over a scenario set, per account, blockwise.

For one account with scenario P&L vector PnL (S,) (full repricing of positions and collateral, the
portfolio path of `core.scenarios`), loss L_s = -PnL_s and, with k = ⌈(1-α)·S⌉ (at least 1):

    VaR_α = L_(k)                      the k-th largest loss
    ES_α  = (1/k) · Σ_{j≤k} L_(j)      the mean of the k largest losses

Conservative at an integer (1-α)·S: VaR is then the upper of the two order statistics that bound
the quantile (S = 1,000, α = 99 %: the 10th worst loss; ES 97.5 %: the mean of the 25 worst), so
ES_α ≥ VaR_α always and both grow with α.

Scenarios carry a group (one measure per group, e.g. the current window and a stressed window);
the book kernel keeps, per account and group, its k largest losses (in scenario order) while it
streams the scenarios in blocks of `SCENARIO_BLOCK` (2,048), so the accounts x scenarios matrix is
never built: memory is O(A x G) for the results plus one block and the k-buffers per thread. An
account's losses in a block are its rows (positions' unit and entry-coefficient rows, balances'
asset rows, one table) times their weights, summed four rows per pass over the block: the block's
losses are loaded and stored once per four rows rather than once per row (an account holds a few
rows and the block is a thousand scenarios wide, so the sums stay in memory; core.simd's register
sums fit the portfolio's other shape, many rows and 32 scenarios, and measured 1.7x slower here).

The tail selection, per block and group, costs about as much as those sums (bench/bench_var.py
measures both), so each step is a vectorised pass or a branch-free one:
1. m = 8k strided buckets' maxima (bucket j: every m-th loss from j; one elementwise max per row
   of m): a value that at least k of the maxima reach has k distinct losses at or above it.
2. A floor under the k-th largest loss: the least of k group maxima of the maxima (k distinct
   losses), raised by bisection against the greatest, each step a count of the maxima in their
   own dtype (cheaper than selecting their k-th largest, as good a filter).
3. A branch-free pass over the ~k buckets that reach the floor (`_gather_candidates`) keeps a few
   candidates, in scenario order.
4. Of those and the running top k, the smallest are dropped one by one (`_keep_largest`; a few
   dozen values, e = a few to drop: no sort).
Any floor at or below the k-th largest loss gives the same k values in the same (scenario) order,
so VaR and ES are the same bits whichever floor is used; ES sums them in that order.

The helpers are inlined into the kernel (numba `inline="always"`) and take no views (unsigned
offsets instead of slices) and no tuples of arrays: numba takes and drops a reference on each
(NRT_incref/NRT_decref, atomic operations), which perf put at 7 % of the pass on an Intel Xeon,
family 6 model 167 (0.1 % without). bench_var there: 0.84 -> 0.53-0.59 s float32.

Float32 inputs are allowed (half the memory traffic): the kernel then adds to VaR and ES a bound on
the rounding error of every scenario P&L, (n + 2)·u·Σ_j |q_j|·max_s|Δv_j,s| with u = 2^-24 and n
terms, so a float32 result is never below the float64 one (rounded conservatively).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from crossmargin.core.jit import kernel, prange
from crossmargin.core.var.history import check_confidence
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SCENARIO_BLOCK = 2048  # scenarios per block: an 8-16 KiB P&L buffer that stays in L1
ACCOUNT_CHUNK = 2048  # accounts per parallel task
BUCKETS_PER_TAIL = 8  # m = 8k buckets: about k of them reach the floor (an eighth of the scenarios)
FLOOR_STEPS = 8  # bisections of the floor (each a count over the m maxima)
DROP_LIMIT = 16  # values dropped one by one from the candidates (quadratic); numpy's sort beyond
FLOAT32_UNIT_ROUNDOFF = 2.0**-24


def tail_count(confidence: float, n_scenarios: int) -> int:
    """k = ⌈(1-α)·S⌉, at least 1 (module docstring). The 1e-9 keeps 0.01 x 1000 at 10, not 11."""
    check_confidence(confidence, "confidence")
    if n_scenarios < 1:
        raise InputError("scenarios", "VaR needs at least one scenario")
    return max(1, min(n_scenarios, math.ceil((1.0 - confidence) * n_scenarios - 1e-9)))


def var_es(loss_usd: FloatArray, confidence: float) -> tuple[float, float]:
    """(VaR, ES) of one loss vector (S,), USD: the reference the kernel is tested against."""
    k = tail_count(confidence, loss_usd.size)
    worst = np.sort(loss_usd)[::-1][:k]
    return float(worst[-1]), float(worst.mean())


def tail_scenarios(loss_usd: FloatArray, confidence: float) -> IntArray:
    """Indices of the k largest losses, worst first (ties: the lower index first)."""
    k = tail_count(confidence, loss_usd.size)
    order: IntArray = np.argsort(-loss_usd, kind="stable")[:k].astype(np.int64)
    return order


@dataclass(frozen=True, slots=True)
class TailMeasures:
    """Per account and scenario group, (n_accounts, n_groups), USD, unweighted: VaR (k-th largest
    loss) and ES (mean of the k largest), k per group in `tail_counts`."""

    var_usd: FloatArray
    es_usd: FloatArray
    tail_counts: IntArray


def book_tail_measures(
    *,
    indptr: IntArray,
    indices: npt.NDArray[np.int32] | IntArray,
    quantity: FloatArray,
    entry_term: FloatArray,
    d_unit: npt.NDArray[np.floating],
    d_coef: npt.NDArray[np.floating],
    has_coefficient: npt.NDArray[np.bool_],
    collateral_usd: npt.NDArray[np.floating],
    d_asset: npt.NDArray[np.floating],
    group: IntArray,
    tail_counts: IntArray,
    select: bool = True,
) -> TailMeasures:
    """VaR and ES of every account's scenario P&L, one pass over the CSR book.

    PnL_s = Σ_p q_p·(dA[i_p, s] + entry_term_p·dB[i_p, s]) + Σ_k value_k·dF[k, s]; d_unit, d_coef
    (I, S), d_asset (K, S) and collateral_usd (A, K) all float64 or all float32 (module docstring).
    Accounts without positions need nothing (their collateral's own risk is what haircuts price).
    `select=False` runs the P&L sums alone, without the tail selection (var_usd then holds each
    account's loss in its last scenario, es_usd 0): the pass's arithmetic floor, measured on the
    same inputs by the same loop (bench/bench_var.py), not a risk measure.
    """
    n_accounts = indptr.shape[0] - 1
    n_groups = int(tail_counts.size)
    dtype = d_unit.dtype
    if not (d_coef.dtype == dtype and d_asset.dtype == dtype and collateral_usd.dtype == dtype):
        raise InputError("var.kernel", "d_unit, d_coef, d_asset and collateral must share one dtype")
    if group.shape != (d_unit.shape[1],) or (group.size and (group.min() < 0 or group.max() >= n_groups)):
        raise InputError("var.kernel", "group must be (S,) with values in [0, n_groups)")
    sizes = np.bincount(group, minlength=n_groups)
    group_start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    if np.any(group != np.repeat(np.arange(n_groups), sizes)):
        raise InputError("var.kernel", "scenarios must be ordered by group (0, 0, ..., 1, 1, ...)")
    if np.any(tail_counts < 1) or np.any(tail_counts > sizes):
        raise InputError("var.kernel", "each group needs 1 <= k <= its scenario count")
    out_var = np.zeros((n_accounts, n_groups))
    out_es = np.zeros((n_accounts, n_groups))
    error_unit = FLOAT32_UNIT_ROUNDOFF if dtype == np.float32 else 0.0
    # One table of scenario rows: the instruments' unit rows, the coefficient rows of those that
    # have one, the assets' rows; an account's P&L is a weighted sum of some of its rows.
    n_instruments = d_unit.shape[0]
    coef_instruments = np.flatnonzero(has_coefficient)
    coef_row = np.full(n_instruments, -1, dtype=np.int64)
    coef_row[coef_instruments] = n_instruments + np.arange(coef_instruments.size)
    asset_row0 = n_instruments + coef_instruments.size
    rows = np.concatenate([d_unit, d_coef[coef_instruments], d_asset]).astype(dtype, copy=False)
    counts = np.diff(indptr)
    max_entries = 2 * int(counts.max(initial=0)) + collateral_usd.shape[1]
    work = (indices.size + collateral_usd.size) * d_unit.shape[1]  # interpreted: ~0.7 us a multiply-add
    _tail_kernel.for_work(work)(
        indptr.astype(np.int64, copy=False),
        indices,
        quantity.astype(dtype),
        (quantity * entry_term).astype(dtype),
        coef_row,
        np.ascontiguousarray(collateral_usd),
        np.ascontiguousarray(rows),
        asset_row0,
        np.abs(rows).max(axis=1).astype(np.float64) if rows.size else np.zeros(rows.shape[0]),
        max_entries,
        group_start,
        tail_counts.astype(np.int64, copy=False),
        error_unit,
        select,
        out_var,
        out_es,
    )
    return TailMeasures(var_usd=out_var, es_usd=out_es, tail_counts=tail_counts.astype(np.int64))


@kernel(nogil=True, inline="always")
def _max_into(loss: np.ndarray, offset: int, kept: np.ndarray, out: np.ndarray, n: int) -> None:
    """out[j] = v if v > kept[j] else kept[j] with v = loss[offset + j], j < n; `out` and `kept`
    distinct arrays. The offset unsigned (no wraparound, no slice: a slice is a view, whose
    reference numba takes and drops, two atomic operations)."""
    start = np.uint64(offset)
    for j in range(n):
        value = loss[start + np.uint64(j)]
        held = kept[j]
        out[j] = value if value > held else held


@kernel(nogil=True, inline="always")
def _strided_maxima(
    loss: np.ndarray, lo: int, hi: int, n_buckets: int, maxima: np.ndarray, scratch: np.ndarray
) -> None:
    """maxima[j] = max of bucket j = {loss[s] : s in [lo, hi), (s - lo) mod n_buckets = j}
    (hi - lo >= n_buckets, so no bucket is empty). Row by row, each row of n_buckets contiguous
    losses one elementwise max: it vectorises (slices, so that no index needs numba's
    negative-index wraparound), where contiguous buckets need a horizontal reduction each.

    Each row's max goes to the other of `maxima` and `scratch` (as long as `maxima`), never back
    where it was read: `m[j] = v if v > m[j] else m[j]` is a store only where v wins, which LLVM
    vectorises as a masked store (vmaskmovps), a microcoded instruction on AMD Zen 2/3
    (https://www.agner.org/optimize/instruction_tables.pdf); a store of the select to another
    array is a plain vector store. On a Zen 3 EPYC, 1,000 float32 losses into 200 buckets: 490 ->
    90 ns (one thread). The same values either way."""
    n_rows = (hi - lo + n_buckets - 1) // n_buckets
    # The first row goes where the last lands in `maxima` after n_rows - 1 swaps.
    into_maxima = n_rows % 2 == 1
    first = maxima if into_maxima else scratch
    start = np.uint64(lo)
    for j in range(n_buckets):
        first[j] = loss[start + np.uint64(j)]
    s = lo + n_buckets
    while s < hi:
        width = min(n_buckets, hi - s)
        into_maxima = not into_maxima
        src, dst = (scratch, maxima) if into_maxima else (maxima, scratch)
        _max_into(loss, s, src, dst, width)
        for j in range(width, n_buckets):  # a short last row: its missing buckets carry over
            dst[j] = src[j]
        s += n_buckets


@kernel(nogil=True, inline="always")
def _count_at_least(values: np.ndarray, n: int, threshold: float) -> int:
    """#{j < n: values[j] >= threshold}; threshold in values' dtype (compared in it: 16 float32
    lanes a vector where float64 would take 8)."""
    count = np.int32(0)
    for j in range(n):  # kept int32 (numba widens a sum of int32 to int64): 8 lanes, not 4
        count = np.int32(count + np.int32(values[j] >= threshold))
    return int(count)


@kernel(nogil=True, inline="always")
def _extremes(values: np.ndarray, n: int) -> tuple[float, float]:
    """(min, max) of values[:n] (n >= 1) in four interleaved chains: one running min/max is a
    chain of dependent selects (~3 cycles each) that LLVM does not vectorise without fastmath.
    Exact: min and max round nothing."""
    low0 = low1 = low2 = low3 = values[0]
    high0 = high1 = high2 = high3 = values[0]
    n4 = n - n % 4
    for j in range(0, n4, 4):
        a, b, c, d = values[j], values[j + 1], values[j + 2], values[j + 3]
        low0 = a if a < low0 else low0
        low1 = b if b < low1 else low1
        low2 = c if c < low2 else low2
        low3 = d if d < low3 else low3
        high0 = a if a > high0 else high0
        high1 = b if b > high1 else high1
        high2 = c if c > high2 else high2
        high3 = d if d > high3 else high3
    for j in range(n4, n):
        a = values[j]
        low0 = a if a < low0 else low0
        high0 = a if a > high0 else high0
    low0 = low1 if low1 < low0 else low0
    low2 = low3 if low3 < low2 else low2
    high0 = high1 if high1 > high0 else high0
    high2 = high3 if high3 > high2 else high2
    return float(low2 if low2 < low0 else low0), float(high2 if high2 > high0 else high0)


@kernel(nogil=True, inline="always")
def _floor_of_maxima(
    maxima: np.ndarray, n: int, k: int, group_maxima: np.ndarray, scratch: np.ndarray
) -> float:
    """A value t with at least k of maxima[:n] >= t (k <= n), close to their k-th largest, in the
    maxima's dtype: the least of k group maxima, raised by FLOOR_STEPS bisections of [it, the
    greatest] each checked by a (vectorised) count, which costs less than selecting the k-th
    largest exactly and is as good a filter. The scratch arrays: n slots each."""
    # k groups of the maxima (strided, like the buckets): their k maxima are k distinct losses,
    # so the least of them is a floor already, and the greatest the greatest loss.
    _strided_maxima(maxima, 0, n, k, group_maxima, scratch)
    low, high = _extremes(group_maxima, k)
    for _ in range(FLOOR_STEPS):
        scratch[0] = 0.5 * (low + high)  # rounded to the maxima's dtype: compared in it
        middle = scratch[0]
        if not middle > low:  # converged (or not finite)
            break
        count = _count_at_least(maxima, n, middle)
        if count >= k:
            low = middle
            if count == k:
                break
        else:
            high = middle
    return low


@kernel(nogil=True, inline="always")
def _gather_candidates(
    loss: np.ndarray,
    lo: int,
    hi: int,
    n_buckets: int,
    maxima: np.ndarray,
    floor: float,
    reached: np.ndarray,
    kept: np.ndarray,
    g: int,
    first: int,
) -> int:
    """The losses at or above `floor` of the buckets whose maximum reaches it (bucket j: every
    n_buckets-th loss from lo + j, `_strided_maxima`'s), into kept[g] from `first`; returns where
    they end (first + their count).
    Branch-free: the reaching buckets' indices first (a compress), then row by row each one's
    loss, kept by advancing the count. A branch per bucket mispredicted on every account's own
    pattern (~27 of 200 taken): 345 -> 221 ns an account on an Intel Xeon, family 6 model 167,
    with 384 distinct real loss vectors. Row by row, each row's buckets in order: the candidates
    come out in scenario order (`_keep_largest` keeps it). `reached`: n_buckets slots, uint64."""
    # Unsigned indices: numba wraps a negative signed index around (a compare and an add on
    # every access), never an unsigned one.
    n_reached = np.uint64(0)
    for j in range(n_buckets):
        reached[n_reached] = j
        n_reached += np.uint64(maxima[j] >= floor)
    count = np.uint64(first)
    full_stop = lo + ((hi - lo) // n_buckets) * n_buckets
    for start in range(lo, full_stop, n_buckets):
        row_start = np.uint64(start)
        for q in range(n_reached):
            value = loss[row_start + reached[q]]
            kept[g, count] = value
            count += np.uint64(value >= floor)
    row_start = np.uint64(full_stop)  # the short last row, if any
    for q in range(n_reached):
        j = reached[q]
        if j < np.uint64(hi - full_stop):
            value = loss[row_start + j]
            kept[g, count] = value
            count += np.uint64(value >= floor)
    return int(np.int64(count))


@kernel(nogil=True, inline="always")
def _keep_largest(kept: np.ndarray, g: int, n: int, k: int) -> tuple[int, float]:
    """kept[g, :n] (in scenario order: the k largest so far, then the new candidates) -> its k
    largest, still in scenario order, in kept[g, :k]; returns their count and the least of them.
    The floor leaves a few more than k (e = n - k): the smallest is dropped e times, the last of
    equal ones first, by a scan and a shift (no sort: 27 candidates on an Intel Xeon, family 6
    model 167, 207 -> 78 ns against an insertion sort of all of them); beyond DROP_LIMIT,
    `_keep_by_sort`. Of equal values the earliest are kept either way, so ES sums the same
    values in the same order whatever the floor: the same bits. In place: nothing copied."""
    if n - k > DROP_LIMIT:
        n = _keep_by_sort(kept, g, n, k)
    while n > k:
        at = 0
        low = kept[g, 0]
        for j in range(1, n):  # the last of the smallest, branch-free
            value = kept[g, j]
            smaller = value <= low
            low = value if smaller else low
            at = j if smaller else at
        for j in range(at, n - 1):
            kept[g, j] = kept[g, j + 1]
        n -= 1
    low = kept[g, 0]
    for j in range(1, n):
        value = kept[g, j]
        low = value if value < low else low
    return n, low


@kernel(nogil=True, inline="always")
def _keep_by_sort(kept: np.ndarray, g: int, n: int, k: int) -> int:
    """kept[g, :n] -> its k largest (k < n) in kept[g, :k], in their order: those above the k-th
    largest v (a sorted copy's), then of those equal to v the earliest."""
    v = np.sort(kept[g, :n])[n - k]
    above = 0
    for j in range(n):
        above += kept[g, j] > v
    equal_left = k - above
    count = 0
    for j in range(n):
        value = kept[g, j]
        if value > v or (value == v and equal_left > 0):
            equal_left -= value == v
            kept[g, count] = value
            count += 1
    return count


@kernel(parallel=True, nogil=True)
def _tail_kernel(
    indptr: np.ndarray,
    indices: np.ndarray,
    quantity: np.ndarray,
    coef_quantity: np.ndarray,
    coef_row: np.ndarray,
    collateral: np.ndarray,
    rows: np.ndarray,
    asset_row0: int,
    max_row: np.ndarray,
    max_entries: int,
    group_start: np.ndarray,
    tail_counts: np.ndarray,
    error_unit: float,
    select: bool,
    out_var: np.ndarray,
    out_es: np.ndarray,
) -> None:
    """Per account: its entries (row of `rows`, weight): a position's unit row (weight q), its
    coefficient row if its instrument has one (q·entry_term), each non-zero balance's asset row
    (its USD value); then per block of scenarios the loss -Σ_e w_e·rows[r_e] summed four entries
    per pass over the block (one load and store of the loss buffer per four rows, not per row),
    then the tail selection of each group."""
    n_accounts = indptr.shape[0] - 1
    n_scen = rows.shape[1]
    n_assets = collateral.shape[1]
    n_groups = tail_counts.shape[0]
    k_max = 1
    for g in range(n_groups):
        k_max = max(k_max, tail_counts[g])
    block = min(SCENARIO_BLOCK, max(n_scen, 1))
    n_chunks = (n_accounts + ACCOUNT_CHUNK - 1) // ACCOUNT_CHUNK
    for chunk in prange(n_chunks):
        pnl = np.empty(block, dtype=rows.dtype)
        entry_row = np.empty(max(max_entries, 1), dtype=np.int64)
        entry_weight = np.empty(max(max_entries, 1), dtype=rows.dtype)
        # Per group: its k largest losses so far (scenario order), then a block's candidates.
        kept = np.empty((n_groups, block + k_max))
        kth = np.zeros(n_groups)  # each group's k-th largest loss so far, once it has k
        maxima = np.empty(BUCKETS_PER_TAIL * k_max, dtype=rows.dtype)
        scratch = np.empty(BUCKETS_PER_TAIL * k_max, dtype=rows.dtype)
        group_maxima = np.empty(BUCKETS_PER_TAIL * k_max, dtype=rows.dtype)
        group_scratch = np.empty(BUCKETS_PER_TAIL * k_max, dtype=rows.dtype)
        reached = np.empty(BUCKETS_PER_TAIL * k_max, dtype=np.uint64)
        filled = np.zeros(n_groups, dtype=np.int64)
        stop = min((chunk + 1) * ACCOUNT_CHUNK, n_accounts)
        for a in range(chunk * ACCOUNT_CHUNK, stop):
            first = indptr[a]
            last = indptr[a + 1]
            if last == first:
                for g in range(n_groups):
                    out_var[a, g] = 0.0
                    out_es[a, g] = 0.0
                continue
            n_entries = 0
            for p in range(first, last):
                i = indices[p]
                entry_row[n_entries] = i
                entry_weight[n_entries] = quantity[p]
                n_entries += 1
                if coef_row[i] >= 0:
                    entry_row[n_entries] = coef_row[i]
                    entry_weight[n_entries] = coef_quantity[p]
                    n_entries += 1
            for k in range(n_assets):
                v = collateral[a, k]
                if v != 0.0:
                    entry_row[n_entries] = asset_row0 + k
                    entry_weight[n_entries] = v
                    n_entries += 1
            filled[:] = 0
            for start in range(0, n_scen, block):
                width = min(block, n_scen - start)
                end = start + width
                pnl[:width] = 0.0  # accumulates the loss, -PnL, directly
                e = 0
                while e + 4 <= n_entries:
                    w0, w1 = entry_weight[e], entry_weight[e + 1]
                    w2, w3 = entry_weight[e + 2], entry_weight[e + 3]
                    r0 = rows[entry_row[e], start:end]
                    r1 = rows[entry_row[e + 1], start:end]
                    r2 = rows[entry_row[e + 2], start:end]
                    r3 = rows[entry_row[e + 3], start:end]
                    for s in range(width):
                        pnl[s] -= (w0 * r0[s] + w1 * r1[s]) + (w2 * r2[s] + w3 * r3[s])
                    e += 4
                if e + 2 <= n_entries:
                    w0, w1 = entry_weight[e], entry_weight[e + 1]
                    r0 = rows[entry_row[e], start:end]
                    r1 = rows[entry_row[e + 1], start:end]
                    for s in range(width):
                        pnl[s] -= w0 * r0[s] + w1 * r1[s]
                    e += 2
                if e < n_entries:
                    w0 = entry_weight[e]
                    r0 = rows[entry_row[e], start:end]
                    for s in range(width):
                        pnl[s] -= w0 * r0[s]
                if not select:  # the sums alone (book_tail_measures): keep one, skip the tails
                    out_var[a, 0] = pnl[width - 1]
                    continue
                # Per group (contiguous scenarios): its part of the block into its top k, steps
                # 1-4 of the module docstring, written out here rather than as one helper: its
                # seven work arrays passed to it cost 14 atomic reference counts an account.
                for g in range(n_groups):
                    lo = max(group_start[g], start) - start
                    hi = min(group_start[g + 1], start + width) - start
                    if lo >= hi:
                        continue
                    k_g = tail_counts[g]
                    floor = kth[g] if filled[g] == k_g else -np.inf
                    n_kept = filled[g]
                    if hi - lo >= k_g:
                        n_buckets = min(hi - lo, BUCKETS_PER_TAIL * k_g)
                        _strided_maxima(pnl, lo, hi, n_buckets, maxima, scratch)
                        raised = _floor_of_maxima(maxima, n_buckets, k_g, group_maxima, group_scratch)
                        scratch[0] = max(floor, raised)  # a loss or a bisection point: exact in the dtype
                        n_kept = _gather_candidates(
                            pnl, lo, hi, n_buckets, maxima, scratch[0], reached, kept, g, n_kept
                        )
                    else:
                        for s in range(lo, hi):
                            value = np.float64(pnl[s])
                            kept[g, n_kept] = value
                            n_kept += int(value >= floor)
                    filled[g], kth[g] = _keep_largest(kept, g, n_kept, k_g)
            if not select:
                continue
            bound = 0.0
            if error_unit > 0.0:
                gross = 0.0
                for e in range(n_entries):
                    gross += abs(np.float64(entry_weight[e])) * max_row[entry_row[e]]
                bound = (n_entries + 2) * error_unit * gross
            for g in range(n_groups):
                total = 0.0
                for j in range(tail_counts[g]):
                    total += kept[g, j]
                out_var[a, g] = kth[g] + bound
                out_es[a, g] = total / tail_counts[g] + bound
