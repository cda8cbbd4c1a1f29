"""The oracle as a pure state transition: (state, quotes, now) -> (new state, update).

Per asset, one update:
  1. aggregate the sources (core.oracle.aggregate) into a candidate price and a band;
  2. too few accepted sources → status STALE, the last accepted price kept with its age;
  3. circuit breaker: with last accepted price P and elapsed time Δt since it,
         limit = max_move_fraction · max(1, Δt / breaker_interval)
     a candidate C with |C/P − 1| > limit is HELD (P kept) until `confirm_updates` consecutive
     updates move beyond the limit in the same direction, or at once when `confirm_sources`
     accepted sources agree on C; then C is accepted. A candidate back within the limit is
     accepted and clears the hold;
  4. the smoothed ("stable") price follows the accepted price as an EMA in time:
         S ← S + (1 − exp(−Δt/τ)) · (P − S)
  5. the uncertainty add-on is computed from the band and the age (core.oracle.valuation).

The state is an immutable value (read-only arrays); nothing is mutated in place, so a replay of
the same quotes from the same state gives the same result.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from crossmargin.core.oracle.aggregate import Aggregate, BoolArray, QuoteMatrix, aggregate
from crossmargin.core.oracle.params import FloatArray, IntArray, ParamTable
from crossmargin.core.oracle.valuation import uncertainty_addon
from crossmargin.errors import InputError

Int8Array = npt.NDArray[np.int8]


class PriceStatus(IntEnum):
    """How far a price may be trusted, best first."""

    VALID = 0  # enough sources agree, no circuit breaker holding
    HELD = 1  # a large move waits for confirmation; the last accepted price is reported
    STALE = 2  # too few live sources; the last accepted price is reported with its age
    NO_PRICE = 3  # never had an accepted price


ArrayT = TypeVar("ArrayT", bound=npt.NDArray[Any])


def _frozen(array: ArrayT) -> ArrayT:
    array.setflags(write=False)
    return array


@dataclass(frozen=True, slots=True)
class OracleState:
    """Everything the oracle remembers between updates, per asset (n_assets,).

    price_usd: last accepted price (NaN before the first). price_time_ns: time of the newest quote
    behind it (its age is measured from there).
    band_low_usd, band_high_usd, n_sources: band and source count of that accepted price.
    smoothed_usd: EMA of the accepted price; smoothed_time_ns: time of its last step.
    pending_usd, pending_count, pending_direction: the held candidate, how many consecutive
    updates confirmed it, and its sign (+1 up, −1 down, 0 none). status: PriceStatus codes.
    as_of_ns: time of the last update (updates must not go back in time)."""

    price_usd: FloatArray
    price_time_ns: IntArray
    band_low_usd: FloatArray
    band_high_usd: FloatArray
    n_sources: IntArray
    smoothed_usd: FloatArray
    smoothed_time_ns: IntArray
    pending_usd: FloatArray
    pending_count: IntArray
    pending_direction: Int8Array
    status: Int8Array
    as_of_ns: int

    @property
    def n_assets(self) -> int:
        return int(self.price_usd.shape[0])

    @staticmethod
    def initial(n_assets: int, *, as_of_ns: int = 0) -> OracleState:
        """No price yet for any asset."""
        nan = np.full(n_assets, np.nan)
        zero = np.zeros(n_assets, dtype=np.int64)
        return OracleState(
            price_usd=_frozen(nan.copy()),
            price_time_ns=_frozen(zero.copy()),
            band_low_usd=_frozen(nan.copy()),
            band_high_usd=_frozen(nan.copy()),
            n_sources=_frozen(zero.copy()),
            smoothed_usd=_frozen(nan.copy()),
            smoothed_time_ns=_frozen(zero.copy()),
            pending_usd=_frozen(nan.copy()),
            pending_count=_frozen(zero.copy()),
            pending_direction=_frozen(np.zeros(n_assets, dtype=np.int8)),
            status=_frozen(np.full(n_assets, PriceStatus.NO_PRICE, dtype=np.int8)),
            as_of_ns=as_of_ns,
        )


@dataclass(frozen=True, slots=True)
class OracleUpdate:
    """The result of one update, per asset (n_assets,) unless stated.

    price_usd: the price to use (last accepted; NaN when NO_PRICE). status: PriceStatus codes.
    age_ns: now − time of the newest quote behind the price.
    candidate_usd: this update's aggregate (NaN if none).
    band_low_usd, band_high_usd: band of the reported price. smoothed_usd: the stable price.
    uncertainty_addon: haircut add-on fraction from band and age. accepted: (assets × sources)."""

    as_of_ns: int
    price_usd: FloatArray
    status: Int8Array
    age_ns: IntArray
    candidate_usd: FloatArray
    band_low_usd: FloatArray
    band_high_usd: FloatArray
    n_sources: IntArray
    smoothed_usd: FloatArray
    uncertainty_addon: FloatArray
    accepted: BoolArray
    aggregate: Aggregate


def update(
    state: OracleState, quotes: QuoteMatrix, *, now_ns: int, params: ParamTable
) -> tuple[OracleState, OracleUpdate]:
    """One oracle step for every asset (see module docstring). Pure: returns a new state."""
    if quotes.price_usd.shape[0] != state.n_assets:
        raise InputError("quotes", f"{quotes.price_usd.shape[0]} assets but state has {state.n_assets}")
    if now_ns < state.as_of_ns:
        raise InputError("now_ns", f"{now_ns} is before the last update at {state.as_of_ns}")
    agg = aggregate(quotes, now_ns=now_ns, params=params)
    candidate = agg.price_usd
    live = agg.live
    last = state.price_usd
    has_last = np.isfinite(last)

    # Circuit breaker: the move from the last accepted price, against a limit that grows with
    # the time since it (a price that has not updated for an hour may have moved an hour's worth).
    elapsed_ns = np.int64(now_ns) - state.price_time_ns
    intervals = np.maximum(1.0, elapsed_ns / params.breaker_interval_ns)
    limit = params.max_move_fraction * intervals
    with np.errstate(invalid="ignore", divide="ignore"):
        move = candidate / last - 1.0
        big = live & has_last & (np.abs(move) > limit)
    direction = np.where(np.isfinite(move), np.sign(move), 0.0).astype(np.int8)
    continues = (state.pending_count > 0) & (direction == state.pending_direction)
    # A gap (not live) neither confirms nor denies a held move: the hold carries over.
    pending_count = np.where(big, np.where(continues, state.pending_count + 1, 1), state.pending_count)
    pending_count = np.where(live & ~big, 0, pending_count)
    confirmed = big & ((pending_count >= params.confirm_updates) | (agg.n_accepted >= params.confirm_sources))
    accept = live & (~big | confirmed)
    held = big & ~confirmed
    pending_count = np.where(confirmed, 0, pending_count)
    pending_direction = np.where(pending_count > 0, np.where(big, direction, state.pending_direction), 0)
    pending_usd = np.where(held, candidate, np.where(pending_count > 0, state.pending_usd, np.nan))

    price = np.where(accept, candidate, last)
    # The price is as old as the newest quote behind it (Pyth/Drift: the publish time), never newer than now.
    price_time_ns = np.where(accept, np.minimum(agg.newest_time_ns, np.int64(now_ns)), state.price_time_ns)
    band_low = np.where(accept, agg.band_low_usd, state.band_low_usd)
    band_high = np.where(accept, agg.band_high_usd, state.band_high_usd)
    n_sources = np.where(accept, agg.n_accepted, state.n_sources)

    has_price = np.isfinite(price)
    step_ns = np.int64(now_ns) - state.smoothed_time_ns
    alpha = -np.expm1(-step_ns / params.smoothing_ns)
    smoothed = np.where(
        np.isfinite(state.smoothed_usd), state.smoothed_usd + alpha * (price - state.smoothed_usd), price
    )
    smoothed = np.where(has_price, smoothed, state.smoothed_usd)
    smoothed_time_ns = np.where(has_price, np.int64(now_ns), state.smoothed_time_ns)

    status = np.full(state.n_assets, PriceStatus.VALID, dtype=np.int8)
    status[held] = PriceStatus.HELD
    status[~live] = PriceStatus.STALE
    status[~has_price] = PriceStatus.NO_PRICE
    age_ns = np.where(has_price, np.int64(now_ns) - price_time_ns, 0)
    addon = uncertainty_addon(
        price_usd=price, band_low_usd=band_low, band_high_usd=band_high, age_ns=age_ns, params=params
    )

    new_state = OracleState(
        price_usd=_frozen(price),
        price_time_ns=_frozen(price_time_ns),
        band_low_usd=_frozen(band_low),
        band_high_usd=_frozen(band_high),
        n_sources=_frozen(n_sources),
        smoothed_usd=_frozen(smoothed),
        smoothed_time_ns=_frozen(smoothed_time_ns),
        pending_usd=_frozen(pending_usd),
        pending_count=_frozen(pending_count.astype(np.int64)),
        pending_direction=_frozen(pending_direction.astype(np.int8)),
        status=_frozen(status),
        as_of_ns=now_ns,
    )
    result = OracleUpdate(
        as_of_ns=now_ns,
        price_usd=new_state.price_usd,
        status=new_state.status,
        age_ns=age_ns,
        candidate_usd=candidate,
        band_low_usd=new_state.band_low_usd,
        band_high_usd=new_state.band_high_usd,
        n_sources=new_state.n_sources,
        smoothed_usd=new_state.smoothed_usd,
        uncertainty_addon=addon,
        accepted=agg.accepted,
        aggregate=agg,
    )
    return new_state, result
