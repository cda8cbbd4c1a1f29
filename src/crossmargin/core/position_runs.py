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
                  underlying run (in this account)
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt

from crossmargin.core.instruments import NO_EXPIRY_NS, InstrumentTable

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

BUCKET_END = 1
UNDERLYING_END = 2


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
    max_positions: int


@numba.njit(cache=True, nogil=True)
def order_account(
    indices: np.ndarray,
    quantity: np.ndarray,
    entry_price: np.ndarray,
    bucket: np.ndarray,
    bucket_underlying: np.ndarray,
    reciprocal: np.ndarray,
    out_instrument: np.ndarray,
    out_quantity: np.ndarray,
    out_pnl_weight: np.ndarray,
    out_entry_weight: np.ndarray,
    out_run_end: np.ndarray,
) -> None:
    """One account's positions (any order, unique instruments) into bucket order, with their
    weights and run-end flags written to the out_* slices (same length)."""
    n = indices.shape[0]
    n_instruments = bucket.shape[0]
    key = np.empty(n, dtype=np.int64)
    for j in range(n):
        key[j] = bucket[indices[j]] * n_instruments + indices[j]
    order = np.argsort(key)
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
    for j in range(n):
        b = bucket[out_instrument[j]]
        flag = 0
        if j + 1 == n or bucket[out_instrument[j + 1]] != b:
            flag |= BUCKET_END
        if j + 1 == n or bucket_underlying[bucket[out_instrument[j + 1]]] != bucket_underlying[b]:
            flag |= UNDERLYING_END
        out_run_end[j] = flag


@numba.njit(parallel=True, cache=True, nogil=True)
def _order_book(
    indptr: np.ndarray,
    indices: np.ndarray,
    quantity: np.ndarray,
    entry_price: np.ndarray,
    bucket: np.ndarray,
    bucket_underlying: np.ndarray,
    reciprocal: np.ndarray,
    out_instrument: np.ndarray,
    out_quantity: np.ndarray,
    out_pnl_weight: np.ndarray,
    out_entry_weight: np.ndarray,
    out_run_end: np.ndarray,
) -> None:
    for a in numba.prange(indptr.shape[0] - 1):
        lo = indptr[a]
        hi = indptr[a + 1]
        order_account(
            indices[lo:hi],
            quantity[lo:hi],
            entry_price[lo:hi],
            bucket,
            bucket_underlying,
            reciprocal,
            out_instrument[lo:hi],
            out_quantity[lo:hi],
            out_pnl_weight[lo:hi],
            out_entry_weight[lo:hi],
            out_run_end[lo:hi],
        )


def position_runs(
    indptr: IntArray,
    indices: IntArray,
    quantity: FloatArray,
    entry_price: FloatArray,
    table: InstrumentTable,
) -> PositionRuns:
    buckets = risk_buckets(table)
    nnz = int(indices.size)
    instrument = np.empty(nnz, dtype=np.int32)
    ordered_q = np.empty(nnz)
    pnl_weight = np.empty(nnz)
    entry_weight = np.empty(nnz)
    run_end = np.empty(nnz, dtype=np.uint8)
    ptr = np.ascontiguousarray(indptr, dtype=np.int64)
    _order_book(
        ptr,
        np.ascontiguousarray(indices, dtype=np.int64),
        np.ascontiguousarray(quantity, dtype=np.float64),
        np.ascontiguousarray(entry_price, dtype=np.float64),
        buckets.bucket,
        buckets.underlying,
        table.reciprocal_entry,
        instrument,
        ordered_q,
        pnl_weight,
        entry_weight,
        run_end,
    )
    return PositionRuns(
        indptr=ptr,
        instrument=instrument,
        quantity=ordered_q,
        pnl_weight=pnl_weight,
        entry_weight=entry_weight,
        run_end=run_end,
        max_positions=int(np.diff(ptr).max()) if ptr.size > 1 else 0,
    )
