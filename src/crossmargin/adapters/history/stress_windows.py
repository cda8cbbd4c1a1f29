"""Historical stress windows and market depth from the shared data (../shared/data/README.md):
daily closes/lows/volumes (prices_daily_yahoo.csv), BTC DVOL (dvol_btc_deribit_daily.csv) and
BTC funding (funding_btcusdt_binance_daily.csv). Reads files; the maths is core.stress.historical.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from crossmargin.adapters.history.deribit_chains import data_dir
from crossmargin.adapters.history.prices import PRICES_FILE
from crossmargin.core.stress.historical import (
    NAMED_WINDOWS,
    Window,
    WindowMove,
    largest_drawdown_windows,
    window_move,
)
from crossmargin.core.stress.impact import MarketDepth
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class DailyPanel:
    days: npt.NDArray[np.datetime64]
    symbols: tuple[str, ...]
    close_usd: FloatArray
    low_usd: FloatArray
    volume_usd: FloatArray


@lru_cache(maxsize=2)
def daily_panel(data: str | None = None) -> DailyPanel:
    path = (Path(data) if data else data_dir()) / PRICES_FILE
    if not path.is_file():
        raise InputError("history", f"{path} not found; set CROSSMARGIN_DATA to the shared data directory")
    with open(path, newline="") as handle:
        rows = [
            (r["date"], r["symbol"], r["close_usd"], r["low_usd"], r["volume_usd"])
            for r in csv.DictReader(handle)
        ]
    days_all = np.array([r[0] for r in rows]).astype("datetime64[D]")
    days, di = np.unique(days_all, return_inverse=True)
    symbols, si = np.unique(np.array([r[1] for r in rows]), return_inverse=True)

    def matrix(col: int) -> FloatArray:
        m = np.full((days.size, symbols.size), np.nan)
        m[di, si] = np.array([float(r[col]) for r in rows])
        return m

    return DailyPanel(
        days=days,
        symbols=tuple(str(s) for s in symbols),
        close_usd=matrix(2),
        low_usd=matrix(3),
        volume_usd=matrix(4),
    )


def _series(name: str, column: str, data: str | None) -> tuple[npt.NDArray[np.datetime64], FloatArray] | None:
    path = (Path(data) if data else data_dir()) / name
    if not path.is_file():
        return None
    with open(path, newline="") as handle:
        rows = [(r["date"], float(r[column])) for r in csv.DictReader(handle)]
    return np.array([r[0] for r in rows]).astype("datetime64[D]"), np.array([r[1] for r in rows])


def historical_moves(*, extra_windows: int = 3, data: str | None = None) -> list[WindowMove]:
    """The named windows (core.stress.historical.NAMED_WINDOWS) and the `extra_windows` worst
    other 2-day windows of the BTC+ETH basket in the data, each with its moves."""
    panel = daily_panel(data)
    dvol = _series("dvol_btc_deribit_daily.csv", "dvol_btc_annualized_vol_pct", data)
    funding = _series("funding_btcusdt_binance_daily.csv", "funding_rate_8h_daily_mean", data)
    basket = [panel.symbols.index(s) for s in ("BTC", "ETH")]
    extra = largest_drawdown_windows(
        days=panel.days,
        close_usd=panel.close_usd,
        basket=basket,
        length_days=2,
        count=extra_windows,
        exclude=NAMED_WINDOWS,
    )
    return [
        window_move(
            w,
            days=panel.days,
            symbols=panel.symbols,
            close_usd=panel.close_usd,
            low_usd=panel.low_usd,
            vol_days=None if dvol is None else dvol[0],
            vol=None if dvol is None else dvol[1],
            funding_days=None if funding is None else funding[0],
            funding_8h_mean=None if funding is None else funding[1],
        )
        for w in (*NAMED_WINDOWS, *extra)
    ]


def market_depth(
    *, as_of: str | None = None, lookback_days: int = 30, data: str | None = None
) -> dict[str, MarketDepth]:
    """Per symbol: mean daily USD volume and std of daily log returns over the `lookback_days`
    before `as_of` (default the data's last full day). Yahoo's volume aggregates many exchanges:
    a venue's own depth is a fraction of it (the `depth_multiplier`)."""
    panel = daily_panel(data)
    end = (
        panel.days.size - 1 if as_of is None else int(np.searchsorted(panel.days, np.datetime64(as_of, "D")))
    )
    end = min(end, panel.days.size - 2)  # the last row may be a partial day
    lo = max(end - lookback_days, 1)
    out = {}
    for n, symbol in enumerate(panel.symbols):
        vol = panel.volume_usd[lo:end, n]
        ret = np.diff(np.log(panel.close_usd[lo - 1 : end, n]))
        if np.all(np.isfinite(vol)) and np.all(np.isfinite(ret)) and vol.mean() > 0:
            out[symbol] = MarketDepth(
                daily_volume_usd=float(vol.mean()), daily_volatility=float(ret.std(ddof=1))
            )
    return out


__all__ = ["Window", "WindowMove", "daily_panel", "historical_moves", "market_depth"]
