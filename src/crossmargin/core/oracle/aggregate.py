"""Robust aggregation of many sources per asset, vectorised over an assets × sources matrix.

For each asset (row) with quotes p_j, times t_j and weights w_j (j over sources):

    fresh_j    = p_j finite and > 0, w_j > 0, now − t_j ≤ max_age
    price      = weighted median of the fresh p_j             (unit weights unless use_weights)
    MAD        = weighted median of |p_j − price| over fresh j
    accepted_j = fresh_j and |p_j − price| ≤ mad_threshold · max(1.4826·MAD, mad_floor_fraction·price)
    band       = [min, max] of the accepted p_j,   live = (number accepted) ≥ min_sources

The weighted median is the midpoint of the lower and upper weighted medians: with cumulative
weights c_k over the sorted prices and half = Σw/2, lower = first k with c_k ≥ half, upper = first k
with c_k > half. With unit weights it is the ordinary median (mean of the middle two for even n).
It depends only on the multiset of (price, weight) pairs, so it is invariant under permuting
sources, and it always lies within [min, max] of the prices it is taken over.

Why the price is the median of the fresh sources and not re-taken over the accepted ones: the
median has a breakdown point of 1/2 — with fewer than ⌈n/2⌉ corrupted sources both middle order
statistics are honest quotes, so the price stays inside the honest range, whatever the corrupted
ones quote. A second median over a MAD-filtered set loses that guarantee when honest sources
themselves disagree (honest 1, 2, 1000 and corrupted 1001, 1002: the filter keeps 1000..1002 and
their median 1001 lies outside the honest range). The MAD filter decides what the sources agree
on: the band (the confidence reported with every price), the number of agreeing sources (enough
for a live price? enough to confirm a large move?) and the uncertainty add-on. With
mad_threshold ≥ 1 the two sources next to the median are always accepted, so the price lies
within the band.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from crossmargin.core.oracle.params import MAD_TO_SIGMA, FloatArray, IntArray, ParamTable
from crossmargin.errors import InputError

BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class QuoteMatrix:
    """The latest quote of every source for every asset, shape (n_assets, n_sources) each.

    price_usd: NaN where a source has never quoted an asset. time_ns: quote time, int64 ns.
    weight: confidence or volume weight (> 0 to count; used when the asset's `use_weights`)."""

    price_usd: FloatArray
    time_ns: IntArray
    weight: FloatArray

    def __post_init__(self) -> None:
        shape = self.price_usd.shape
        if self.price_usd.ndim != 2:
            raise InputError("price_usd", f"must be 2-d (assets × sources), got shape {shape}")
        if self.time_ns.shape != shape or self.weight.shape != shape:
            raise InputError(
                "quotes", f"price {shape}, time {self.time_ns.shape}, weight {self.weight.shape} differ"
            )
        if self.price_usd.dtype != np.float64 or self.weight.dtype != np.float64:
            raise InputError("quotes", "price_usd and weight must be float64")
        if self.time_ns.dtype != np.int64:
            raise InputError("time_ns", f"must be int64 nanoseconds, got {self.time_ns.dtype}")

    @staticmethod
    def build(
        price_usd: npt.ArrayLike, time_ns: npt.ArrayLike, weight: npt.ArrayLike | None = None
    ) -> QuoteMatrix:
        prices = np.asarray(price_usd, dtype=np.float64)
        weights = np.ones_like(prices) if weight is None else np.asarray(weight, dtype=np.float64)
        times = np.broadcast_to(np.asarray(time_ns, dtype=np.int64), prices.shape)
        return QuoteMatrix(price_usd=prices, time_ns=np.ascontiguousarray(times), weight=weights)


@dataclass(frozen=True, slots=True)
class Aggregate:
    """One aggregation over assets × sources. Per asset (n_assets,) unless stated.

    price_usd: weighted median of the fresh sources, NaN when none. band_low_usd, band_high_usd:
    min and max of the accepted sources. n_fresh, n_accepted: counts. newest_time_ns: time of the
    newest accepted quote (the data time of the price). live: n_accepted ≥ min_sources.
    fresh, accepted: (n_assets, n_sources) masks."""

    price_usd: FloatArray
    band_low_usd: FloatArray
    band_high_usd: FloatArray
    n_fresh: IntArray
    n_accepted: IntArray
    newest_time_ns: IntArray
    live: BoolArray
    fresh: BoolArray
    accepted: BoolArray


def _sorted_weighted_median(sorted_values: FloatArray, sorted_weights: FloatArray) -> FloatArray:
    """Weighted median per row of values already sorted ascending along axis 1, masked entries
    carrying weight 0 (and sorted to the end). NaN for rows of total weight 0."""
    cumulative = np.cumsum(sorted_weights, axis=1)
    total = cumulative[:, -1]
    half = 0.5 * total[:, None]
    lower = np.argmax(cumulative >= half, axis=1)
    upper = np.argmax(cumulative > half, axis=1)
    rows = np.arange(sorted_values.shape[0])
    median = 0.5 * (sorted_values[rows, lower] + sorted_values[rows, upper])
    return np.where(total > 0.0, median, np.nan)


def weighted_median(values: FloatArray, weights: FloatArray, mask: BoolArray) -> FloatArray:
    """Weighted median per row over the entries where mask (see module docstring), shape (rows,)."""
    keyed = np.where(mask, values, np.inf)
    order = np.argsort(keyed, axis=1, kind="stable")
    sorted_values = np.take_along_axis(keyed, order, axis=1)
    sorted_weights = np.take_along_axis(np.where(mask, weights, 0.0), order, axis=1)
    return _sorted_weighted_median(sorted_values, sorted_weights)


def aggregate(quotes: QuoteMatrix, *, now_ns: int, params: ParamTable) -> Aggregate:
    """Aggregate every asset's sources at time now_ns (formula in the module docstring)."""
    prices = quotes.price_usd
    n_assets = prices.shape[0]
    if n_assets != params.n_assets:
        raise InputError("quotes", f"{n_assets} assets but params for {params.n_assets}")
    age_ns = np.int64(now_ns) - quotes.time_ns
    with np.errstate(invalid="ignore"):
        fresh = (prices > 0.0) & np.isfinite(prices) & (quotes.weight > 0.0)
    fresh &= age_ns <= params.max_age_ns[:, None]
    weights = np.where(params.use_weights[:, None], quotes.weight, 1.0)
    weights = np.where(fresh, weights, 0.0)

    # One sort by price serves both medians: the accepted set is a subset in the same order.
    keyed = np.where(fresh, prices, np.inf)
    order = np.argsort(keyed, axis=1, kind="stable")
    sorted_prices = np.take_along_axis(keyed, order, axis=1)
    sorted_weights = np.take_along_axis(weights, order, axis=1)
    centre = _sorted_weighted_median(sorted_prices, sorted_weights)

    with np.errstate(invalid="ignore"):
        deviation = np.abs(sorted_prices - centre[:, None])
    mad = weighted_median(deviation, sorted_weights, sorted_weights > 0.0)
    scale = np.maximum(MAD_TO_SIGMA * mad, params.mad_floor_fraction * centre)
    with np.errstate(invalid="ignore"):
        keep_sorted = (sorted_weights > 0.0) & (deviation <= (params.mad_threshold * scale)[:, None])
    n_accepted = keep_sorted.sum(axis=1, dtype=np.int64)
    any_accepted = n_accepted > 0
    band_low = np.where(any_accepted, np.min(np.where(keep_sorted, sorted_prices, np.inf), axis=1), np.nan)
    band_high = np.where(any_accepted, np.max(np.where(keep_sorted, sorted_prices, -np.inf), axis=1), np.nan)

    accepted = np.zeros_like(fresh)
    np.put_along_axis(accepted, order, keep_sorted, axis=1)
    newest_ns = np.max(np.where(accepted, quotes.time_ns, np.iinfo(np.int64).min), axis=1)
    return Aggregate(
        price_usd=centre,
        band_low_usd=band_low,
        band_high_usd=band_high,
        n_fresh=fresh.sum(axis=1, dtype=np.int64),
        n_accepted=n_accepted,
        newest_time_ns=newest_ns,
        live=n_accepted >= params.min_sources,
        fresh=fresh,
        accepted=accepted,
    )
