"""Daily market series beside prices (open interest, funding) and the crowding signals they give.

DailyPanel: days (T,) datetime64[D] ascending UTC days, symbols (N,), values (T, N) float64, NaN =
no value that day. Pure data; reading files lives in `adapters.history`.

Signals on day t use values up to and including day t only (a daily value is known at the end of
its day), so a margin in force during day t + 1 is computed from row t: no look-ahead.

    funding_apr[t]          EWMA of the daily mean 8-hour funding rate, half-life h days,
                            × 3 periods/day × 365 days (simple annualisation, as venues quote it)
    open_interest_ratio[t]  OI[t] / mean(OI[t-W .. t-1])   (W-day trailing mean, NaN until W days)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]
DayArray = npt.NDArray[np.datetime64]

FUNDING_PERIODS_PER_DAY = 3.0  # 8-hour funding (Binance, Bybit, OKX)
DAYS_PER_YEAR = 365.0


@dataclass(frozen=True, slots=True)
class DailyPanel:
    """Daily values per symbol: days (T,), symbols (N,), values (T, N) finite or NaN (missing)."""

    days: DayArray
    symbols: tuple[str, ...]
    values: FloatArray

    def __post_init__(self) -> None:
        if self.days.dtype != np.dtype("datetime64[D]"):
            raise InputError("panel.days", f"must be datetime64[D], got {self.days.dtype}")
        if self.values.shape != (self.days.size, len(self.symbols)):
            raise InputError("panel.values", f"shape {self.values.shape} != (days, symbols)")
        if self.days.size > 1 and not np.all(np.diff(self.days) > np.timedelta64(0, "D")):
            raise InputError("panel.days", "must be strictly increasing")
        if np.any(np.isinf(self.values)):
            raise InputError("panel.values", "must be finite (NaN = missing)")

    def has(self, symbol: str) -> bool:
        return symbol in self.symbols

    def on_days(self, symbol: str, days: DayArray) -> FloatArray:
        """The symbol's values on `days` (NaN where the panel has no such day or symbol)."""
        out = np.full(days.size, np.nan)
        if symbol not in self.symbols:
            return out
        column = self.values[:, self.symbols.index(symbol)]
        at = np.searchsorted(self.days, days)
        inside = at < self.days.size
        hit = np.zeros(days.size, dtype=bool)
        hit[inside] = self.days[at[inside]] == days[inside]
        out[hit] = column[at[hit]]
        return out


def panel_from_columns(days: DayArray, columns: dict[str, FloatArray]) -> DailyPanel:
    """A panel from one (T,) array per symbol on shared days."""
    symbols: Sequence[str] = tuple(columns)
    values = np.column_stack([np.asarray(columns[s], dtype=np.float64) for s in symbols])
    return DailyPanel(days=days, symbols=tuple(symbols), values=values.reshape(days.size, len(symbols)))


def ewma(values: FloatArray, *, halflife_days: float) -> FloatArray:
    """Exponentially weighted mean along axis 0, m_t = (1-λ)·x_t + λ·m_{t-1}, λ = 2^(-1/h),
    started at x_0 (h = 0: the values themselves). A missing (NaN) day repeats the last known value
    (forward fill); NaN until the first value. Recursive filter, vectorised (lfilter)."""
    x = np.asarray(values, dtype=np.float64)
    if halflife_days == 0.0:
        return x.copy()
    decay = 2.0 ** (-1.0 / halflife_days)
    known = ~np.isnan(x)
    # Forward-fill the missing days, then filter; days before the first value stay NaN.
    index = np.where(known, np.arange(x.shape[0]).reshape((-1,) + (1,) * (x.ndim - 1)), 0)
    filled_index = np.maximum.accumulate(index, axis=0)
    filled = np.take_along_axis(np.where(known, x, 0.0), filled_index, axis=0)
    started = np.maximum.accumulate(known, axis=0)
    first = np.take_along_axis(filled, np.argmax(started, axis=0)[None, ...], axis=0)
    start = np.where(started, filled, first)
    zi_shape = (1, *x.shape[1:])
    initial = (decay * start[:1]).reshape(zi_shape)
    # scipy.signal costs ~0.9 s to import (it pulls in scipy.stats): only EWMA users pay it.
    from scipy.signal import lfilter

    smoothed, _ = lfilter([1.0 - decay], [1.0, -decay], start, axis=0, zi=initial)
    result: FloatArray = np.where(started, smoothed, np.nan)
    return result


def funding_apr(funding_rate_8h: FloatArray, *, halflife_days: float) -> FloatArray:
    """Annualised smoothed funding (fraction/year) from daily mean 8-hour rates (T,) or (T, N)."""
    annual: FloatArray = ewma(funding_rate_8h, halflife_days=halflife_days) * (
        FUNDING_PERIODS_PER_DAY * DAYS_PER_YEAR
    )
    return annual


def open_interest_ratio(open_interest_usd: FloatArray, *, window_days: int) -> FloatArray:
    """OI[t] / mean(OI[t-W .. t-1]) along axis 0; NaN for the first W days and where a window
    touches a missing day."""
    oi = np.asarray(open_interest_usd, dtype=np.float64)
    if window_days < 1:
        raise InputError("window_days", f"must be >= 1, got {window_days}")
    cumulative = np.concatenate([np.zeros((1, *oi.shape[1:])), np.cumsum(oi, axis=0)])
    ratio = np.full(oi.shape, np.nan)
    if oi.shape[0] > window_days:
        trailing = (cumulative[window_days:-1] - cumulative[: -window_days - 1]) / window_days
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio[window_days:] = np.where(trailing > 0.0, oi[window_days:] / trailing, np.nan)
    return ratio


def ewma_volatility(log_returns: FloatArray, *, decay: float, warmup_days: int = 60) -> FloatArray:
    """RiskMetrics EWMA volatility along axis 0: σ_t² = λ σ_{t-1}² + (1-λ) r_t² (J.P. Morgan/Reuters,
    RiskMetrics Technical Document, 1996, λ = 0.94 for daily data), the estimate after day t's
    return (in force for day t + 1). Started at the first squared return and NaN for the first
    `warmup_days` rows after it (λ^60 = 2 % of the start left); a missing return repeats the last
    squared return (`ewma`'s forward fill)."""
    if not 0.0 < decay < 1.0:
        raise InputError("decay", f"must lie in (0, 1), got {decay}")
    r = np.asarray(log_returns, dtype=np.float64)
    variance = ewma(r * r, halflife_days=-1.0 / np.log2(decay))
    seen = np.cumsum(~np.isnan(r), axis=0)
    volatility: FloatArray = np.where(seen > warmup_days, np.sqrt(variance), np.nan)
    return volatility
