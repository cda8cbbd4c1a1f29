"""`crossmargin calibrate`: per-asset haircuts, IM/MM rates and risk-limit tiers from history,
each with its back-test on the fit window and out of sample (formulas: `core.calibration`).

Inputs through ports: daily closes (`PriceHistorySource`), daily traded volume (`VolumeSource`,
for tier sizes; None: no tiers) and implied volatility (`ImpliedVolSource`, None: EWMA only).
The volatility in force at a close is the RiskMetrics EWMA (λ = 0.94) of returns up to that
close, or the larger of it and the implied vol (annualised / √365) where the data has one: an
implied vol prices the market's own view of the coming month, and a haircut must not be below
either. Venue volume at t is the trailing `volume_window_days` mean of the daily volume up to t.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from crossmargin.core.calibration import AssetCalibration, CalibrationParams, calibrate_asset
from crossmargin.core.checks import check_range
from crossmargin.core.market_history import ewma_volatility
from crossmargin.core.var.history import PriceHistory
from crossmargin.engine.ports import ImpliedVolSource, PriceHistorySource, VolumeSource
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]

DEFAULT_SYMBOLS = ("BTC", "ETH", "SOL", "BNB", "XRP", "DOGE", "ADA", "LINK", "LTC", "AVAX", "DOT", "MATIC")


@dataclass(frozen=True, slots=True, kw_only=True)
class Windows:
    """The fit window (parameters estimated here) and the test window (reported only), UTC days,
    inclusive; they must not overlap."""

    fit_first: str
    fit_last: str
    test_first: str
    test_last: str

    def __post_init__(self) -> None:
        days = {}
        for name in ("fit_first", "fit_last", "test_first", "test_last"):
            try:
                days[name] = np.datetime64(getattr(self, name), "D")
            except ValueError:
                raise InputError(name, f"not a date (YYYY-MM-DD): {getattr(self, name)!r}") from None
        if days["fit_first"] > days["fit_last"]:
            raise InputError("fit", "fit_first is after fit_last")
        if days["test_first"] > days["test_last"]:
            raise InputError("test", "test_first is after test_last")
        if not (days["fit_last"] < days["test_first"] or days["test_last"] < days["fit_first"]):
            raise InputError("test", "the test window overlaps the fit window")

    def masks(self, days: npt.NDArray[np.datetime64]) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        d = np.datetime64
        fit = (days >= d(self.fit_first, "D")) & (days <= d(self.fit_last, "D"))
        test = (days >= d(self.test_first, "D")) & (days <= d(self.test_last, "D"))
        return fit, test


@dataclass(frozen=True, slots=True, kw_only=True)
class CalibrationReport:
    params: CalibrationParams
    windows: Windows
    ewma_lambda: float
    volume_window_days: int
    implied_vol_symbols: tuple[str, ...]
    assets: tuple[AssetCalibration, ...] = field(default_factory=tuple)


def trailing_mean(values: FloatArray, window_days: int) -> FloatArray:
    """Mean of values[t - W + 1 .. t] (W days ending at t), NaN until W days or across a gap."""
    known = np.isfinite(values)
    cumulative = np.concatenate([[0.0], np.cumsum(np.where(known, values, 0.0))])
    counted = np.concatenate([[0], np.cumsum(known)])
    out = np.full(values.size, np.nan)
    if values.size >= window_days:
        sums = cumulative[window_days:] - cumulative[:-window_days]
        full = (counted[window_days:] - counted[:-window_days]) == window_days
        out[window_days - 1 :] = np.where(full, sums / window_days, np.nan)
    return out


def _column(history: PriceHistory, symbol: str) -> FloatArray:
    values: FloatArray = history.close_usd[:, history.column(symbol)]
    return values


def run_calibration(
    *,
    prices: PriceHistorySource,
    windows: Windows,
    params: CalibrationParams | None = None,
    symbols: Sequence[str] | None = None,
    volume: VolumeSource | None = None,
    implied: ImpliedVolSource | None = None,
    ewma_lambda: float = 0.94,
    volume_window_days: int = 30,
) -> CalibrationReport:
    """Calibrate every symbol (default: those of DEFAULT_SYMBOLS the history holds)."""
    chosen = params if params is not None else CalibrationParams()
    check_range(ewma_lambda, low=0.0, high=1.0, include_high=False, name="ewma_lambda")
    check_range(volume_window_days, low=1, high=365, name="volume_window_days")
    history = prices.price_history()
    names = tuple(symbols) if symbols is not None else tuple(s for s in DEFAULT_SYMBOLS if history.has(s))
    if not names:
        raise InputError("symbols", "no symbol to calibrate")
    days = history.days
    fit, test = windows.masks(days)
    volumes = volume.volume_history() if volume is not None else None
    implied_panel = implied.implied_volatility_history() if implied is not None else None
    used_implied: list[str] = []
    results: list[AssetCalibration] = []
    for symbol in names:  # a dozen assets, each vectorised over days
        close = _column(history, symbol)
        with np.errstate(invalid="ignore", divide="ignore"):
            log_return = np.r_[np.nan, np.log(close[1:] / close[:-1])]
        sigma = ewma_volatility(log_return, decay=ewma_lambda)
        if implied_panel is not None and implied_panel.has(symbol):
            implied_daily = implied_panel.on_days(symbol, days) / np.sqrt(365.0)
            sigma = np.where(np.isfinite(sigma), np.fmax(sigma, implied_daily), sigma)
            used_implied.append(symbol)
        traded = (
            trailing_mean(volumes.on_days(symbol, days), volume_window_days)
            if volumes is not None
            else np.full(days.size, np.nan)
        )
        if not np.any(fit & np.isfinite(close)):
            raise InputError(
                "symbols", f"{symbol} has no price in the fit window {windows.fit_first}..{windows.fit_last}"
            )
        results.append(
            calibrate_asset(
                symbol,
                close_usd=close,
                volatility_daily=sigma,
                volume_usd=traded,
                fit=fit,
                test=test,
                params=chosen,
            )
        )
    return CalibrationReport(
        params=chosen,
        windows=windows,
        ewma_lambda=ewma_lambda,
        volume_window_days=volume_window_days,
        implied_vol_symbols=tuple(used_implied),
        assets=tuple(results),
    )


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def calibration_json(report: CalibrationReport) -> dict[str, Any]:
    """The report as JSON-ready data (non-finite numbers as null)."""
    data: dict[str, Any] = _finite(
        {
            "params": asdict(report.params),
            "windows": asdict(report.windows),
            "ewma_lambda": report.ewma_lambda,
            "volume_window_days": report.volume_window_days,
            "implied_vol_symbols": list(report.implied_vol_symbols),
            "assets": [asdict(a) for a in report.assets],
        }
    )
    return data
