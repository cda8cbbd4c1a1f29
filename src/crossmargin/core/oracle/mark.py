"""Index, mark and settlement prices, vectorised over instruments.

Perpetual mark, Deribit style: mark = index + clamp(EMA of premium, ±max_premium_fraction·index),
premium = (impact mid − index), the EMA in time, S ← S + (1 − exp(−Δt/τ))·(x − S) (Deribit: 30 s
EMA of the fair-price premium; the clamp keeps one thin book from dragging the mark).

Perpetual mark, Binance style: median(index·(1 + funding_rate·τ_funding), index + premium EMA,
last traded price), τ_funding = time to the next funding as a fraction of the interval.

Futures mark from the basis: mark = index·(1 + basis·T), basis annualised (simple), from a smoothed
basis so that a single trade on a thin expiry does not move its mark.

Options from the vol surface: vol at (T, log K/F) interpolated linearly in log-moneyness per expiry
(flat beyond the grid) and linearly in total variance σ²T across expiries; value by Black-76
(core.pricing.black76), USD per unit of underlying.

Settlement TWAP: the time-weighted average of a step function (each price holds until the next
observation) over [start, end).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crossmargin.core.checks import check_finite, check_positive
from crossmargin.core.oracle.params import FloatArray, IntArray
from crossmargin.core.pricing import black76
from crossmargin.errors import InputError


@dataclass(frozen=True, slots=True, kw_only=True)
class PerpMarkParams:
    """premium_ema_ns: EMA time constant of the premium; max_premium_fraction: clamp of the
    smoothed premium relative to the index (Binance clamps funding, Deribit caps the premium)."""

    premium_ema_ns: int = 30_000_000_000
    max_premium_fraction: float = 0.005

    def __post_init__(self) -> None:
        if not isinstance(self.premium_ema_ns, int) or self.premium_ema_ns <= 0:
            raise InputError("premium_ema_ns", f"must be a positive int, got {self.premium_ema_ns!r}")
        if not 0.0 <= self.max_premium_fraction < 1.0:
            raise InputError("max_premium_fraction", f"must lie in [0, 1), got {self.max_premium_fraction!r}")


@dataclass(frozen=True, slots=True)
class PremiumState:
    """Smoothed premium per perpetual (n_perps,), USD, NaN before the first observation."""

    premium_ema_usd: FloatArray
    as_of_ns: int

    @staticmethod
    def initial(n_perps: int, *, as_of_ns: int = 0) -> PremiumState:
        return PremiumState(premium_ema_usd=np.full(n_perps, np.nan), as_of_ns=as_of_ns)


def ema_step(previous: FloatArray, observation: FloatArray, *, elapsed_ns: int, tau_ns: int) -> FloatArray:
    """One time-based EMA step; NaN previous → the observation; NaN observation → unchanged."""
    alpha = -np.expm1(-elapsed_ns / tau_ns)
    stepped = np.where(np.isfinite(previous), previous + alpha * (observation - previous), observation)
    return np.where(np.isfinite(observation), stepped, previous)


def perp_mark(
    state: PremiumState,
    *,
    index_usd: FloatArray,
    impact_mid_usd: FloatArray,
    now_ns: int,
    params: PerpMarkParams,
) -> tuple[PremiumState, FloatArray]:
    """Deribit-style perpetual mark per perp (n_perps,), USD, and the new premium state."""
    if now_ns < state.as_of_ns:
        raise InputError("now_ns", f"{now_ns} is before the premium state at {state.as_of_ns}")
    premium = np.asarray(impact_mid_usd, dtype=np.float64) - index_usd
    ema = ema_step(
        state.premium_ema_usd, premium, elapsed_ns=now_ns - state.as_of_ns, tau_ns=params.premium_ema_ns
    )
    cap = params.max_premium_fraction * np.asarray(index_usd, dtype=np.float64)
    clamped = np.clip(np.where(np.isfinite(ema), ema, 0.0), -cap, cap)
    return PremiumState(premium_ema_usd=ema, as_of_ns=now_ns), index_usd + clamped


def binance_perp_mark(
    *,
    index_usd: FloatArray,
    funding_rate: FloatArray,
    time_to_funding_fraction: FloatArray,
    premium_ema_usd: FloatArray,
    last_price_usd: FloatArray,
) -> FloatArray:
    """Binance-style mark: the median of the funding-basis price, the smoothed-premium price and the
    last traded price, per perp (n_perps,), USD."""
    price_funding = index_usd * (1.0 + funding_rate * time_to_funding_fraction)
    price_premium = index_usd + premium_ema_usd
    return np.median(np.stack([price_funding, price_premium, np.asarray(last_price_usd)]), axis=0)


def annualised_basis(*, future_mid_usd: FloatArray, index_usd: FloatArray, years: FloatArray) -> FloatArray:
    """Simple annualised basis (F/S − 1)/T per future; T > 0."""
    check_positive(years, "years")
    return (np.asarray(future_mid_usd) / index_usd - 1.0) / years


def futures_mark(*, index_usd: FloatArray, basis_annualised: FloatArray, years: FloatArray) -> FloatArray:
    """Dated future mark = index · (1 + basis · T), USD, per future; the basis converges to the
    index at expiry (T = 0)."""
    years = np.maximum(np.asarray(years, dtype=np.float64), 0.0)
    return np.asarray(index_usd) * (1.0 + np.asarray(basis_annualised) * years)


@dataclass(frozen=True, slots=True)
class VolSurface:
    """Implied vols on a grid: expiries (E,) years ascending, log-moneyness ln(K/F) (K,) ascending,
    vol (E, K) per 1.00."""

    expiry_years: FloatArray
    log_moneyness: FloatArray
    vol: FloatArray

    def __post_init__(self) -> None:
        check_positive(self.expiry_years, "expiry_years")
        check_positive(self.vol, "vol")
        check_finite(self.log_moneyness, "log_moneyness")
        if self.vol.shape != (self.expiry_years.shape[0], self.log_moneyness.shape[0]):
            raise InputError("vol", f"shape {self.vol.shape} must be (expiries, strikes)")
        if np.any(np.diff(self.expiry_years) <= 0.0) or np.any(np.diff(self.log_moneyness) <= 0.0):
            raise InputError("surface", "expiries and log-moneyness must be strictly ascending")

    def vol_at(self, *, years: FloatArray, log_moneyness: FloatArray) -> FloatArray:
        """Interpolated vol per query point (formula in the module docstring)."""
        years = np.asarray(years, dtype=np.float64)
        k = np.asarray(log_moneyness, dtype=np.float64)
        # Vol at each query's moneyness on every expiry row: (E, N); E is a handful of expiries.
        per_expiry = np.stack([np.interp(k, self.log_moneyness, row) for row in self.vol])
        if self.expiry_years.shape[0] == 1:
            single: FloatArray = per_expiry[0]
            return single
        variance = per_expiry**2 * self.expiry_years[:, None]
        t = np.clip(years, self.expiry_years[0], self.expiry_years[-1])
        upper = np.clip(np.searchsorted(self.expiry_years, t, side="left"), 1, self.expiry_years.shape[0] - 1)
        lower = upper - 1
        t0, t1 = self.expiry_years[lower], self.expiry_years[upper]
        columns = np.arange(k.shape[0])
        weight = (t - t0) / (t1 - t0)
        total_variance = (1.0 - weight) * variance[lower, columns] + weight * variance[upper, columns]
        # Before the first expiry keep the first expiry's vol; beyond the last, the last's.
        total_variance = np.where(years < self.expiry_years[0], per_expiry[0] ** 2 * years, total_variance)
        total_variance = np.where(years > self.expiry_years[-1], per_expiry[-1] ** 2 * years, total_variance)
        return np.sqrt(total_variance / np.maximum(years, 1e-12))


def option_marks(
    surface: VolSurface,
    *,
    forward_usd: FloatArray,
    strike_usd: FloatArray,
    years: FloatArray,
    sign: FloatArray,
    rate: float = 0.0,
) -> FloatArray:
    """Option marks from the surface, USD per unit of underlying (Black-76), per option."""
    check_positive(forward_usd, "forward_usd")
    check_positive(strike_usd, "strike_usd")
    check_positive(years, "years")
    vol = surface.vol_at(years=years, log_moneyness=np.log(np.asarray(strike_usd) / forward_usd))
    return black76(forward=forward_usd, strike=strike_usd, years=years, vol=vol, rate=rate, sign=sign).value


def twap(*, time_ns: IntArray, price_usd: FloatArray, start_ns: int, end_ns: int) -> FloatArray:
    """Time-weighted average price over [start_ns, end_ns), per asset.

    time_ns (T,) ascending observation times; price_usd (T, n_assets), each row holding until the
    next observation; time before the first observation does not count. NaN prices are skipped;
    NaN when no price covers any of the window."""
    if end_ns <= start_ns:
        raise InputError("end_ns", f"window [{start_ns}, {end_ns}) is empty")
    times = np.asarray(time_ns, dtype=np.int64)
    prices = np.asarray(price_usd, dtype=np.float64)
    if prices.ndim == 1:
        prices = prices[:, None]
    if times.ndim != 1 or prices.shape[0] != times.shape[0] or np.any(np.diff(times) < 0):
        raise InputError("time_ns", "must be 1-d, ascending, one per price row")
    segment_start = np.clip(times, start_ns, end_ns)
    segment_end = np.clip(np.append(times[1:], end_ns), start_ns, end_ns)
    segment_start[0] = start_ns if times[0] > start_ns else segment_start[0]
    duration = (segment_end - segment_start).astype(np.float64)[:, None]
    weights = np.where(np.isfinite(prices), duration, 0.0)
    total = weights.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        weighted_sum = (np.where(weights > 0.0, prices, 0.0) * weights).sum(axis=0)
        return np.where(total > 0.0, weighted_sum / total, np.nan)
