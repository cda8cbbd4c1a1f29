"""Daily price history as a matrix, and the h-day returns a margin period of risk needs.

PriceHistory: days (T,) numpy datetime64[D], UTC calendar days; symbols (N,); close_usd (T, N),
NaN where a symbol has no price that day (not listed yet, or a gap). Pure data: reading files lives
in `adapters.history.prices`.

    daily log return      r[t, n] = ln(close[t, n] / close[t-1, n])          (T-1, N), row t-1
    h-day log return      R[t, n] = Σ_{j<h} r[t+j, n]   (overlapping windows)   (T-h, N)

Overlapping h-day windows (every day starts one) keep the scenario count close to the window
length, as CCPs do for a 2-day margin period of risk; neighbouring scenarios share one day.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from crossmargin.core.checks import check_range
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]
DayArray = npt.NDArray[np.datetime64]

NS_PER_DAY = 86_400 * 10**9


def day_of_ns(moment_ns: int) -> np.datetime64:
    """UTC calendar day containing `moment_ns` (ns since the epoch)."""
    return np.datetime64(moment_ns // NS_PER_DAY, "D")


def known_until(valuation_ns: int) -> np.datetime64:
    """Last day whose close is known at `valuation_ns`: a daily close is stamped at the end of its
    UTC day (24:00), so at 2025-12-30T17:31Z the last known close is 2025-12-29's and at exactly
    2020-03-13T00:00Z it is 2020-03-12's. No look-ahead in back-tests."""
    return np.datetime64((valuation_ns // NS_PER_DAY) - 1, "D")


@dataclass(frozen=True, slots=True)
class PriceHistory:
    """Daily closes, USD: days (T,) ascending and unique, symbols (N,), close_usd (T, N) > 0 or NaN."""

    days: DayArray
    symbols: tuple[str, ...]
    close_usd: FloatArray

    def __post_init__(self) -> None:
        if self.days.dtype != np.dtype("datetime64[D]"):
            raise InputError("history.days", f"must be datetime64[D], got {self.days.dtype}")
        if self.close_usd.shape != (self.days.size, len(self.symbols)):
            raise InputError("history.close_usd", f"shape {self.close_usd.shape} != (days, symbols)")
        if self.days.size > 1 and not np.all(np.diff(self.days) > np.timedelta64(0, "D")):
            raise InputError("history.days", "must be strictly increasing")
        given = self.close_usd[~np.isnan(self.close_usd)]
        if not np.all(np.isfinite(given)) or np.any(given <= 0.0):
            raise InputError("history.close_usd", "prices must be > 0 and finite (NaN = missing)")

    @property
    def n_days(self) -> int:
        return int(self.days.size)

    def has(self, symbol: str) -> bool:
        return symbol in self.symbols

    def column(self, symbol: str) -> int:
        try:
            return self.symbols.index(symbol)
        except ValueError:
            raise InputError("history.symbols", f"no price history for {symbol!r}") from None

    def select(self, symbols: Sequence[str]) -> PriceHistory:
        """Only these symbols, in this order."""
        cols = [self.column(s) for s in symbols]
        return PriceHistory(days=self.days, symbols=tuple(symbols), close_usd=self.close_usd[:, cols])

    def between(self, first: np.datetime64 | str, last: np.datetime64 | str) -> PriceHistory:
        """Days in [first, last], inclusive."""
        lo = np.datetime64(str(first), "D")
        hi = np.datetime64(str(last), "D")
        keep = (self.days >= lo) & (self.days <= hi)
        return PriceHistory(days=self.days[keep], symbols=self.symbols, close_usd=self.close_usd[keep])

    def until(self, last: np.datetime64 | str) -> PriceHistory:
        """Days up to and including `last` (what is known at the end of that day)."""
        keep = self.days <= np.datetime64(str(last), "D")
        return PriceHistory(days=self.days[keep], symbols=self.symbols, close_usd=self.close_usd[keep])

    def last_days(self, count: int) -> PriceHistory:
        """The last `count` days."""
        start = max(self.n_days - count, 0)
        return PriceHistory(days=self.days[start:], symbols=self.symbols, close_usd=self.close_usd[start:])

    def complete(self) -> PriceHistory:
        """From the first day on which every symbol has a price; later gaps stay NaN (joint
        returns across a gap are dropped by `horizon_log_returns`)."""
        full = np.flatnonzero(np.all(~np.isnan(self.close_usd), axis=1))
        if full.size == 0:
            raise InputError("history", f"no day with a price for all of {', '.join(self.symbols)}")
        start = int(full[0])
        return PriceHistory(days=self.days[start:], symbols=self.symbols, close_usd=self.close_usd[start:])

    def log_returns(self) -> FloatArray:
        """Daily log returns (T-1, N); row t-1 is the move from day t-1 to day t (NaN across gaps)."""
        with np.errstate(invalid="ignore"):
            returns: FloatArray = np.diff(np.log(self.close_usd), axis=0)
        return returns


def horizon_log_returns(daily: FloatArray, horizon_days: int) -> FloatArray:
    """Overlapping h-day log returns (T-h+1, N) from daily log returns (T, N): row t sums rows
    t..t+h-1. A window touching a NaN is NaN."""
    if horizon_days < 1:
        raise InputError("horizon_days", f"must be >= 1, got {horizon_days}")
    if daily.shape[0] < horizon_days:
        return np.empty((0, daily.shape[1]))
    cumulative = np.vstack([np.zeros((1, daily.shape[1])), np.cumsum(daily, axis=0)])
    summed: FloatArray = cumulative[horizon_days:] - cumulative[:-horizon_days]
    # cumsum carries a NaN forward for ever: mark exactly the windows that contain one instead.
    bad = np.isnan(daily)
    if bad.any():
        counts = np.vstack([np.zeros((1, daily.shape[1])), np.cumsum(bad, axis=0)])
        touched = (counts[horizon_days:] - counts[:-horizon_days]) > 0
        clean = np.where(bad, 0.0, daily)
        cumulative = np.vstack([np.zeros((1, daily.shape[1])), np.cumsum(clean, axis=0)])
        summed = np.where(touched, np.nan, cumulative[horizon_days:] - cumulative[:-horizon_days])
    return summed


def check_confidence(confidence: float, name: str) -> None:
    check_range(confidence, low=0.5, high=1.0, include_high=False, name=name)
