"""Historical stress windows: the real joint moves of a window of days, from a daily panel.

For a window [first, last] of UTC days and every symbol with a close the day before `first`:
  close factor  = close(last) / close(first − 1)            (the window's joint move)
  trough factor = min(low over the window) / close(first − 1) (each asset at its worst: harsher
                  than any joint moment, reported beside the joint move)
Implied vol (BTC DVOL, where the data has it) gives a relative vol shift DVOL(last)/DVOL(first−1)
− 1, and funding the sum of the daily funding over the window (each day 3 × the mean 8 h rate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]
DayArray = npt.NDArray[np.datetime64]


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    name: str
    first_day: str
    last_day: str
    note: str = ""


# The windows the risk team asks about first (dates UTC).
NAMED_WINDOWS = (
    Window(
        name="covid-2020-03", first_day="2020-03-12", last_day="2020-03-13", note="COVID crash, BitMEX halt"
    ),
    Window(name="may-2021", first_day="2021-05-19", last_day="2021-05-19", note="China mining ban, cascade"),
    Window(
        name="luna-2022-05",
        first_day="2022-05-07",
        last_day="2022-05-12",
        note="UST/LUNA collapse, USDT wobble",
    ),
    Window(name="ftx-2022-11", first_day="2022-11-07", last_day="2022-11-09", note="FTX insolvency"),
    Window(name="usdc-2023-03", first_day="2023-03-10", last_day="2023-03-11", note="SVB, USDC depeg"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowMove:
    """One window's moves over `symbols` (NaN: no data for that symbol then)."""

    window: Window
    symbols: tuple[str, ...]
    close_factor: FloatArray
    trough_factor: FloatArray
    vol_relative_change: float  # NaN without implied-vol data
    funding_sum: float  # NaN without funding data


def window_move(
    window: Window,
    *,
    days: DayArray,
    symbols: Sequence[str],
    close_usd: FloatArray,
    low_usd: FloatArray,
    vol_days: DayArray | None = None,
    vol: FloatArray | None = None,
    funding_days: DayArray | None = None,
    funding_8h_mean: FloatArray | None = None,
) -> WindowMove:
    """The window's moves from a (T, N) panel of daily closes and lows (module docstring)."""
    first, last = np.datetime64(window.first_day, "D"), np.datetime64(window.last_day, "D")
    if last < first:
        raise InputError(f"window[{window.name}]", "last day before first day")
    before = np.flatnonzero(days == first - 1)
    inside = (days >= first) & (days <= last)
    end = np.flatnonzero(days == last)
    if before.size == 0 or end.size == 0:
        raise InputError(f"window[{window.name}]", "outside the price history")
    base = close_usd[before[0]]
    close_factor = close_usd[end[0]] / base
    lows = np.where(inside[:, None], low_usd, np.nan)
    seen = np.any(np.isfinite(lows), axis=0)
    trough = np.full(base.shape, np.nan)
    trough[seen] = np.nanmin(lows[:, seen], axis=0) / base[seen]
    vol_change = float("nan")
    if vol_days is not None and vol is not None:
        v0, v1 = np.flatnonzero(vol_days == first - 1), np.flatnonzero(vol_days == last)
        if v0.size and v1.size:
            vol_change = float(vol[v1[0]] / vol[v0[0]] - 1.0)
    funding = float("nan")
    if funding_days is not None and funding_8h_mean is not None:
        span = (funding_days >= first) & (funding_days <= last)
        if span.sum() == (last - first).astype(int) + 1:
            funding = float(3.0 * funding_8h_mean[span].sum())
    return WindowMove(
        window=window,
        symbols=tuple(symbols),
        close_factor=close_factor,
        trough_factor=trough,
        vol_relative_change=vol_change,
        funding_sum=funding,
    )


def largest_drawdown_windows(
    *,
    days: DayArray,
    close_usd: FloatArray,
    basket: Sequence[int],
    length_days: int,
    count: int,
    exclude: Sequence[Window] = (),
    separation_days: int = 14,
) -> list[Window]:
    """The `count` worst windows of `length_days` by the basket's mean log return (columns
    `basket`, NaN ignored), at least `separation_days` from each other and from `exclude`."""
    if length_days < 1 or count < 0:
        raise InputError("windows", "length >= 1 and count >= 0")
    logp = np.log(close_usd[:, list(basket)])
    move = logp[length_days:] - logp[:-length_days]  # row t: close(t + length) / close(t)
    score = np.nanmean(np.where(np.isfinite(move), move, np.nan), axis=1)
    taken: list[np.datetime64] = [np.datetime64(w.first_day, "D") for w in exclude]
    out: list[Window] = []
    for t in np.argsort(np.where(np.isfinite(score), score, np.inf)).tolist():
        if len(out) >= count or not np.isfinite(score[t]):
            break
        first = days[t + 1]
        if any(abs(int((first - d).astype(int))) < separation_days for d in taken):
            continue
        taken.append(first)
        last = days[t + length_days]
        out.append(
            Window(
                name=f"worst-{length_days}d-{first}",
                first_day=str(first),
                last_day=str(last),
                note=f"basket {np.expm1(score[t]):+.1%}",
            )
        )
    return out
