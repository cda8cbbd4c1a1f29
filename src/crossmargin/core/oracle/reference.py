"""A scalar, one-asset-at-a-time implementation of the oracle update, in plain Python.

Two implementations of one formula (docs/ARCHITECTURE.md): tests check the vectorised
`core.oracle.state.update` against this, and `bench/bench_oracle.py` times it as the naive
per-asset loop baseline. Not for production use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from crossmargin.core.oracle.params import MAD_TO_SIGMA, OracleParams


def weighted_median_scalar(pairs: list[tuple[float, float]]) -> float:
    """Weighted median of (value, weight) pairs, weight > 0 (midpoint of lower and upper weighted
    medians, as core.oracle.aggregate). NaN when empty."""
    if not pairs:
        return math.nan
    pairs = sorted(pairs, key=lambda pair: pair[0])
    half = 0.5 * sum(weight for _, weight in pairs)
    cumulative = 0.0
    lower = upper = math.nan
    for value, weight in pairs:
        cumulative += weight
        if math.isnan(lower) and cumulative >= half:
            lower = value
        if cumulative > half:
            upper = value
            break
    return 0.5 * (lower + upper)


@dataclass(slots=True)
class AssetState:
    """Mutable per-asset state of the scalar reference."""

    price_usd: float = math.nan
    price_time_ns: int = 0
    band_low_usd: float = math.nan
    band_high_usd: float = math.nan
    smoothed_usd: float = math.nan
    smoothed_time_ns: int = 0
    pending_count: int = 0
    pending_direction: int = 0
    status: int = 3


def aggregate_scalar(
    prices: list[float], times_ns: list[int], weights: list[float], *, now_ns: int, params: OracleParams
) -> tuple[float, float, float, int, int]:
    """(price, band low, band high, n accepted, newest accepted quote time) of one asset's sources."""
    fresh: list[tuple[float, float]] = []
    fresh_times: list[int] = []
    for price, time_ns, weight in zip(prices, times_ns, weights, strict=True):
        if math.isfinite(price) and price > 0.0 and weight > 0.0 and now_ns - time_ns <= params.max_age_ns:
            fresh.append((price, weight if params.use_weights else 1.0))
            fresh_times.append(time_ns)
    centre = weighted_median_scalar(fresh)
    if math.isnan(centre):
        return math.nan, math.nan, math.nan, 0, 0
    mad = weighted_median_scalar([(abs(price - centre), weight) for price, weight in fresh])
    limit = params.mad_threshold * max(MAD_TO_SIGMA * mad, params.mad_floor_fraction * centre)
    values = [price for price, _ in fresh if abs(price - centre) <= limit]
    newest = max(t for (price, _), t in zip(fresh, fresh_times, strict=True) if abs(price - centre) <= limit)
    return centre, min(values), max(values), len(values), newest


def update_scalar(
    state: AssetState,
    prices: list[float],
    times_ns: list[int],
    weights: list[float],
    *,
    now_ns: int,
    params: OracleParams,
) -> AssetState:
    """One oracle step for one asset (same rules as core.oracle.state.update); returns a new state."""
    candidate, low, high, n_accepted, newest_ns = aggregate_scalar(
        prices, times_ns, weights, now_ns=now_ns, params=params
    )
    new = AssetState(**{name: getattr(state, name) for name in AssetState.__slots__})
    live = n_accepted >= params.min_sources
    accept = False
    held = False
    if live:
        if math.isnan(state.price_usd):
            accept = True
            new.pending_count, new.pending_direction = 0, 0
        else:
            intervals = max(1.0, (now_ns - state.price_time_ns) / params.breaker_interval_ns)
            move = candidate / state.price_usd - 1.0
            if abs(move) > params.max_move_fraction * intervals:
                direction = 1 if move > 0 else -1
                continues = state.pending_count > 0 and direction == state.pending_direction
                count = state.pending_count + 1 if continues else 1
                if count >= params.confirm_updates or n_accepted >= params.confirm_sources:
                    accept = True
                    new.pending_count, new.pending_direction = 0, 0
                else:
                    held = True
                    new.pending_count, new.pending_direction = count, direction
            else:
                accept = True
                new.pending_count, new.pending_direction = 0, 0
    if accept:
        new.price_usd, new.price_time_ns = candidate, min(newest_ns, now_ns)
        new.band_low_usd, new.band_high_usd = low, high
    if not math.isnan(new.price_usd):
        if math.isnan(state.smoothed_usd):
            new.smoothed_usd = new.price_usd
        else:
            alpha = -math.expm1(-(now_ns - state.smoothed_time_ns) / params.smoothing_ns)
            new.smoothed_usd = state.smoothed_usd + alpha * (new.price_usd - state.smoothed_usd)
        new.smoothed_time_ns = now_ns
    if math.isnan(new.price_usd):
        new.status = 3
    elif not live:
        new.status = 2
    elif held:
        new.status = 1
    else:
        new.status = 0
    return new
