"""The book's positions re-ordered by risk bucket, for the scenario kernels.

A risk bucket is (underlying, expiry); perpetuals and spot share their underlying's no-expiry
bucket. Bucket ids are numbered in (underlying, expiry) order, so inside an account sorted by
(bucket, instrument) every bucket and every underlying is one contiguous run of positions. The
portfolio kernel then accumulates per-bucket and per-underlying sums as running sums that it
closes at each run's end, with no per-account scratch tables and no data-dependent branches.

Everything here depends only on positions, entry prices and the instrument table, never on
prices, so a book computes it once (`Book.position_runs`) and reuses it at every market state.

Per stored position, in bucket order within each account (same account row pointers as the book):
    instrument    (nnz,) int32
    quantity      (nnz,) contracts
    pnl_weight    (nnz,) what multiplies the instrument's scenario P&L row: q / E for inverse
                  delta-one contracts (their P&L is linear in 1/E), q otherwise
    entry_weight  (nnz,) q · entry_term(E): the position's weight on the instrument's entry
                  coefficient in today's value (see pricing.entry_term)
    run_end       (nnz,) uint8: bit 0 = last position of its bucket run, bit 1 = last of its
                  underlying run (in this account), bit 2 = in the general section (below)
    side_weight   (nnz,) q for a position alone in its underlying (in this account), 0 otherwise

Alone in its underlying, a position's floor and add-ons are linear in q, one slope per side of
zero (|D_u| = |q|·|delta|): the kernel sums them as side_weight x a row per instrument and sign,
in the same vector loop as the scenario P&L. Every other position (a run of two or more on one
underlying, or any position on an underlying the caller names in `general_underlyings`: those
whose add-ons are not linear even alone, concentration's |D_u|^(1+power)) is also copied, in the
same order, into the general section: a CSR over the accounts that have any (general_indptr,
general_instrument, general_quantity, general_run_end with bit 3 = last of its account), which
the kernel reduces with the running sums of the run-end flags, in one flat loop.
general_row (A,): each account's row in that CSR, or n_general (one past the last) for none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from crossmargin.core.instruments import NO_EXPIRY_NS, InstrumentTable
from crossmargin.core.jit import kernel, prange

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

BUCKET_END = 1
UNDERLYING_END = 2
GENERAL = 4
ACCOUNT_END = 8


@dataclass(frozen=True, slots=True)
class RiskBuckets:
    """(underlying, expiry) buckets of an instrument table, numbered in that order.
    bucket (I,): each instrument's bucket; underlying (B,), expiry_ns (B,): each bucket's
    underlying index and expiry (NO_EXPIRY_NS for the perpetual/spot bucket)."""

    bucket: IntArray
    underlying: IntArray
    expiry_ns: IntArray


def risk_buckets(table: InstrumentTable) -> RiskBuckets:
    no_expiry = table.expiry_ns == NO_EXPIRY_NS
    # -1 sorts the no-expiry bucket first within its underlying; one int64 key (underlying, rank of
    # expiry) makes the unique a 1-D one (np.unique over rows sorts a void view, 15x slower).
    expiries, expiry_rank = np.unique(np.where(no_expiry, -1, table.expiry_ns), return_inverse=True)
    key = table.underlying_index.astype(np.int64) * expiries.size + expiry_rank.reshape(-1)
    unique, bucket = np.unique(key, return_inverse=True)
    expiry = expiries[unique % expiries.size]
    return RiskBuckets(
        bucket=bucket.reshape(-1).astype(np.int64),
        underlying=(unique // expiries.size).astype(np.int64),
        expiry_ns=np.where(expiry < 0, NO_EXPIRY_NS, expiry).astype(np.int64),
    )


@dataclass(frozen=True, slots=True)
class PositionRuns:
    """See the module docstring. indptr is the book's own account row pointer (int64)."""

    indptr: IntArray
    instrument: npt.NDArray[np.int32]
    quantity: FloatArray
    pnl_weight: FloatArray
    entry_weight: FloatArray
    run_end: npt.NDArray[np.uint8]
    side_weight: FloatArray
    max_positions: int
    general_indptr: IntArray
    general_row: npt.NDArray[np.int32]
    general_instrument: npt.NDArray[np.int32]
    general_quantity: FloatArray
    general_run_end: npt.NDArray[np.uint8]

    @property
    def n_general(self) -> int:
        return int(self.general_indptr.shape[0]) - 1


# Shell-sort gaps (Ciura 2001, extended by x2.25): a sort of a few keys per account in a few
# lines, with no call into numba's quicksort, whose compilation alone cost ~4 s of a cold start.
_GAPS = np.array([1, 4, 10, 23, 57, 132, 301, 701, 1577, 3548, 7983, 17961, 40412, 90927], dtype=np.int64)


@kernel(nogil=True)
def argsort_keys(key: np.ndarray) -> np.ndarray:
    """Indices that sort `key` (int64, distinct values) ascending: Shell sort with Ciura's gaps,
    O(n) on the usual already-ordered account, O(n^(4/3))-ish at worst."""
    n = key.shape[0]
    order = np.arange(n)
    for g in range(_GAPS.shape[0] - 1, -1, -1):
        gap = _GAPS[g]
        if gap >= n:
            continue
        for j in range(gap, n):
            moving = order[j]
            k = key[moving]
            t = j
            while t >= gap and key[order[t - gap]] > k:
                order[t] = order[t - gap]
                t -= gap
            order[t] = moving
    return order


@kernel(nogil=True)
def order_account(
    indices: np.ndarray,
    quantity: np.ndarray,
    entry_price: np.ndarray,
    bucket: np.ndarray,
    bucket_underlying: np.ndarray,
    reciprocal: np.ndarray,
    general_underlying: np.ndarray,
    out_instrument: np.ndarray,
    out_quantity: np.ndarray,
    out_pnl_weight: np.ndarray,
    out_entry_weight: np.ndarray,
    out_run_end: np.ndarray,
    out_side_weight: np.ndarray,
) -> int:
    """One account's positions (any order, unique instruments) into bucket order, with their
    weights, run-end flags and side weights written to the out_* slices (same length). Returns
    how many are in the general section."""
    n = indices.shape[0]
    n_instruments = bucket.shape[0]
    key = np.empty(n, dtype=np.int64)
    for j in range(n):
        key[j] = bucket[indices[j]] * n_instruments + indices[j]
    order = argsort_keys(key)
    for j in range(n):
        src = order[j]
        i = indices[src]
        q = quantity[src]
        e = entry_price[src]
        out_instrument[j] = i
        out_quantity[j] = q
        if reciprocal[i]:
            out_pnl_weight[j] = q / e
            out_entry_weight[j] = q / e
        else:
            out_pnl_weight[j] = q
            out_entry_weight[j] = q * e
    n_general = 0
    run_start = 0
    for j in range(n):
        b = bucket[out_instrument[j]]
        u = bucket_underlying[b]
        flag = 0
        if j + 1 == n or bucket[out_instrument[j + 1]] != b:
            flag |= BUCKET_END
        if j + 1 == n or bucket_underlying[bucket[out_instrument[j + 1]]] != u:
            flag |= UNDERLYING_END
        out_run_end[j] = flag
        if flag & UNDERLYING_END:
            general = j > run_start or general_underlying[u]
            for r in range(run_start, j + 1):
                out_side_weight[r] = 0.0 if general else out_quantity[r]
                if general:
                    out_run_end[r] |= GENERAL
                    n_general += 1
            run_start = j + 1
    return n_general


@kernel(nogil=True)
def copy_general(
    p0: int,
    p1: int,
    instrument: np.ndarray,
    quantity: np.ndarray,
    run_end: np.ndarray,
    g0: int,
    out_instrument: np.ndarray,
    out_quantity: np.ndarray,
    out_run_end: np.ndarray,
) -> None:
    """Copy positions [p0, p1) flagged GENERAL to the general section from g0, and flag the
    last one copied as its account's end."""
    g = g0
    for p in range(p0, p1):
        if run_end[p] & GENERAL:
            out_instrument[g] = instrument[p]
            out_quantity[g] = quantity[p]
            out_run_end[g] = run_end[p]
            g += 1
    if g > g0:
        out_run_end[g - 1] |= ACCOUNT_END


@kernel(parallel=True, nogil=True)
def _order_book(
    indptr: np.ndarray,
    indices: np.ndarray,
    quantity: np.ndarray,
    entry_price: np.ndarray,
    bucket: np.ndarray,
    bucket_underlying: np.ndarray,
    reciprocal: np.ndarray,
    general_underlying: np.ndarray,
    out_instrument: np.ndarray,
    out_quantity: np.ndarray,
    out_pnl_weight: np.ndarray,
    out_entry_weight: np.ndarray,
    out_run_end: np.ndarray,
    out_side_weight: np.ndarray,
    out_n_general: np.ndarray,
) -> None:
    for a in prange(indptr.shape[0] - 1):
        lo = indptr[a]
        hi = indptr[a + 1]
        out_n_general[a] = order_account(
            indices[lo:hi],
            quantity[lo:hi],
            entry_price[lo:hi],
            bucket,
            bucket_underlying,
            reciprocal,
            general_underlying,
            out_instrument[lo:hi],
            out_quantity[lo:hi],
            out_pnl_weight[lo:hi],
            out_entry_weight[lo:hi],
            out_run_end[lo:hi],
            out_side_weight[lo:hi],
        )


@kernel(parallel=True, nogil=True)
def _copy_book_general(
    indptr: np.ndarray,
    instrument: np.ndarray,
    quantity: np.ndarray,
    run_end: np.ndarray,
    general_row: np.ndarray,
    general_indptr: np.ndarray,
    out_instrument: np.ndarray,
    out_quantity: np.ndarray,
    out_run_end: np.ndarray,
) -> None:
    n_general = general_indptr.shape[0] - 1
    for a in prange(indptr.shape[0] - 1):
        g = general_row[a]
        if g < n_general:
            copy_general(
                indptr[a],
                indptr[a + 1],
                instrument,
                quantity,
                run_end,
                general_indptr[g],
                out_instrument,
                out_quantity,
                out_run_end,
            )


def position_runs(
    indptr: IntArray,
    indices: IntArray,
    quantity: FloatArray,
    entry_price: FloatArray,
    table: InstrumentTable,
    general_underlyings: frozenset[str] = frozenset(),
) -> PositionRuns:
    buckets = risk_buckets(table)
    nnz = int(indices.size)
    n_accounts = int(indptr.size) - 1
    instrument = np.empty(nnz, dtype=np.int32)
    ordered_q = np.empty(nnz)
    pnl_weight = np.empty(nnz)
    entry_weight = np.empty(nnz)
    run_end = np.empty(nnz, dtype=np.uint8)
    side_weight = np.empty(nnz)
    n_general = np.empty(n_accounts, dtype=np.int64)
    general_underlying = np.array([u in general_underlyings for u in table.underlyings], dtype=np.bool_)
    ptr = np.ascontiguousarray(indptr, dtype=np.int64)
    _order_book.for_work(4 * nnz)(  # interpreted: ~3.6 us a position (core.jit)
        ptr,
        np.ascontiguousarray(indices, dtype=np.int64),
        np.ascontiguousarray(quantity, dtype=np.float64),
        np.ascontiguousarray(entry_price, dtype=np.float64),
        buckets.bucket,
        buckets.underlying,
        table.reciprocal_entry,
        general_underlying,
        instrument,
        ordered_q,
        pnl_weight,
        entry_weight,
        run_end,
        side_weight,
        n_general,
    )
    has_general = n_general > 0
    general_indptr = np.concatenate([[0], np.cumsum(n_general[has_general])]).astype(np.int64)
    # Accounts without general positions read the row one past the last (the kernel's zero row).
    general_row = np.where(has_general, np.cumsum(has_general) - 1, int(has_general.sum())).astype(np.int32)
    n_copied = int(general_indptr[-1])
    general_instrument = np.empty(n_copied, dtype=np.int32)
    general_quantity = np.empty(n_copied)
    general_run_end = np.empty(n_copied, dtype=np.uint8)
    _copy_book_general.for_work(nnz)(
        ptr,
        instrument,
        ordered_q,
        run_end,
        general_row,
        general_indptr,
        general_instrument,
        general_quantity,
        general_run_end,
    )
    return PositionRuns(
        indptr=ptr,
        instrument=instrument,
        quantity=ordered_q,
        pnl_weight=pnl_weight,
        entry_weight=entry_weight,
        run_end=run_end,
        side_weight=side_weight,
        max_positions=int(np.diff(ptr).max()) if ptr.size > 1 else 0,
        general_indptr=general_indptr,
        general_row=general_row,
        general_instrument=general_instrument,
        general_quantity=general_quantity,
        general_run_end=general_run_end,
    )
