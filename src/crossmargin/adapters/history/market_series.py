"""Open interest and funding histories from ../shared/data as `core.market_history.DailyPanel`s.

open_interest_binance_coinm_perp_daily_coinalyze.csv: date, symbol, oi_close_usd (Binance
coin-margined perpetuals via Coinalyze; a coin-margined contract has a fixed USD face value, so
the USD open interest is the contract count, not moved by the price). funding_<sym>usdt_binance_
daily.csv: date, funding_rate_8h_daily_mean; funding_<sym>usdt_binance_8h.csv: funding_time_utc,
funding_rate_8h, averaged per UTC day here. Where a symbol has both, the daily file (the longer
history) is used and the 8-hour file fills only the days it lacks. ../shared/data/README.md gives
provenance. prices_daily_yahoo.csv: date, symbol, volume_usd (Yahoo's aggregate across venues).
dvol_<sym>_deribit_daily.csv: date, dvol_<sym>_annualized_vol_pct (Deribit's 30-day implied-vol
index, percent; returned as a fraction). The directory is `$CROSSMARGIN_DATA`, else ../shared/data
beside the checkout.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from crossmargin.adapters.history.deribit_chains import data_dir
from crossmargin.core.market_history import DailyPanel
from crossmargin.errors import InputError

PRICES_FILE = "prices_daily_yahoo.csv"
DVOL = re.compile(r"dvol_([a-z0-9]+)_deribit_daily\.csv")
OPEN_INTEREST_FILE = "open_interest_binance_coinm_perp_daily_coinalyze.csv"
FUNDING_DAILY = re.compile(r"funding_([a-z0-9]+)usdt_binance_daily\.csv")
FUNDING_8H = re.compile(r"funding_([a-z0-9]+)usdt_binance_8h\.csv")


def _rows(path: Path, columns: tuple[str, ...]) -> list[tuple[str, ...]]:
    if not path.is_file():
        raise InputError("history", f"{path} not found; set CROSSMARGIN_DATA to the shared data directory")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = set(columns) - set(reader.fieldnames or ())
        if missing:
            raise InputError("history", f"{path}: missing columns {', '.join(sorted(missing))}")
        rows = [tuple(r[c] for c in columns) for r in reader]
    if not rows:
        raise InputError("history", f"{path}: no rows")
    return rows


def _number(text: str, path: Path, line: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError("history", f"{path}:{line}: {column} {text!r} is not a number") from None
    if not np.isfinite(value):
        raise InputError("history", f"{path}:{line}: {column} must be finite, got {text!r}")
    return value


def _panel(entries: dict[str, dict[np.datetime64, float]]) -> DailyPanel:
    symbols = tuple(sorted(entries))
    all_days = np.unique(np.array([d for s in symbols for d in entries[s]], dtype="datetime64[D]"))
    values = np.full((all_days.size, len(symbols)), np.nan)
    for n, symbol in enumerate(symbols):  # a handful of symbols; days vectorised
        days = np.array(list(entries[symbol]), dtype="datetime64[D]")
        values[np.searchsorted(all_days, days), n] = np.array(list(entries[symbol].values()))
    return DailyPanel(days=all_days, symbols=symbols, values=values)


@lru_cache(maxsize=4)
def _open_interest(path: str, _mtime_ns: int) -> DailyPanel:
    file = Path(path)
    entries: dict[str, dict[np.datetime64, float]] = {}
    for line, (day, symbol, oi) in enumerate(_rows(file, ("date", "symbol", "oi_close_usd")), start=2):
        value = _number(oi, file, line, "oi_close_usd")
        if value < 0.0:
            raise InputError("history", f"{file}:{line}: oi_close_usd must be >= 0, got {oi}")
        by_day = entries.setdefault(symbol, {})
        key = np.datetime64(day, "D")
        if key in by_day:
            raise InputError("history", f"{file}:{line}: duplicate ({day}, {symbol})")
        by_day[key] = value
    return _panel(entries)


@lru_cache(maxsize=4)
def _funding(directory: str, _stamp: tuple[tuple[str, int], ...]) -> DailyPanel:
    folder = Path(directory)
    entries: dict[str, dict[np.datetime64, float]] = {}
    for file in sorted(folder.glob("funding_*usdt_binance_daily.csv")):
        match = FUNDING_DAILY.fullmatch(file.name)
        if match is None:
            continue
        symbol = match.group(1).upper()
        rows = _rows(file, ("date", "funding_rate_8h_daily_mean"))
        entries[symbol] = {
            np.datetime64(day, "D"): _number(rate, file, line, "funding_rate_8h_daily_mean")
            for line, (day, rate) in enumerate(rows, start=2)
        }
    for file in sorted(folder.glob("funding_*usdt_binance_8h.csv")):
        match = FUNDING_8H.fullmatch(file.name)
        if match is None:
            continue
        symbol = match.group(1).upper()
        rows = _rows(file, ("funding_time_utc", "funding_rate_8h"))
        days = np.array([t[:10] for t, _ in rows], dtype="datetime64[D]")
        rates = np.array(
            [_number(r, file, line, "funding_rate_8h") for line, (_, r) in enumerate(rows, start=2)]
        )
        unique, index = np.unique(days, return_inverse=True)
        means = np.bincount(index, weights=rates) / np.bincount(index)
        by_day = entries.setdefault(symbol, {})
        for day, mean in zip(unique.tolist(), means.tolist(), strict=True):  # fill only missing days
            by_day.setdefault(np.datetime64(day, "D"), mean)
    if not entries:
        raise InputError("history", f"no funding_<symbol>usdt_binance_(daily|8h).csv under {folder}")
    return _panel(entries)


@lru_cache(maxsize=4)
def _volume(path: str, _mtime_ns: int) -> DailyPanel:
    file = Path(path)
    entries: dict[str, dict[np.datetime64, float]] = {}
    for line, (day, symbol, volume) in enumerate(_rows(file, ("date", "symbol", "volume_usd")), start=2):
        value = _number(volume, file, line, "volume_usd") if volume != "" else float("nan")
        if value < 0.0:
            raise InputError("history", f"{file}:{line}: volume_usd must be >= 0, got {volume}")
        entries.setdefault(symbol, {})[np.datetime64(day, "D")] = value
    return _panel(entries)


@lru_cache(maxsize=4)
def _implied(directory: str, _stamp: tuple[tuple[str, int], ...]) -> DailyPanel:
    entries: dict[str, dict[np.datetime64, float]] = {}
    for file in sorted(Path(directory).glob("dvol_*_deribit_daily.csv")):
        match = DVOL.fullmatch(file.name)
        if match is None:
            continue
        column = f"dvol_{match.group(1)}_annualized_vol_pct"
        rows = _rows(file, ("date", column))
        entries[match.group(1).upper()] = {
            np.datetime64(day, "D"): _number(pct, file, line, column) / 100.0
            for line, (day, pct) in enumerate(rows, start=2)
        }
    if not entries:
        raise InputError("history", f"no dvol_<symbol>_deribit_daily.csv under {directory}")
    return _panel(entries)


@dataclass(frozen=True, slots=True, kw_only=True)
class CsvVolume:
    """`engine.ports.VolumeSource` over the shared daily price CSV's volume_usd column."""

    path: Path

    def volume_history(self) -> DailyPanel:
        if not self.path.is_file():
            raise InputError("history", f"{self.path} not found; set CROSSMARGIN_DATA")
        return _volume(str(self.path.resolve()), self.path.stat().st_mtime_ns)


@dataclass(frozen=True, slots=True, kw_only=True)
class CsvImpliedVol:
    """`engine.ports.ImpliedVolSource` over every dvol_<symbol>_deribit_daily.csv in `directory`."""

    directory: Path

    def implied_volatility_history(self) -> DailyPanel:
        files = sorted(self.directory.glob("dvol_*_deribit_daily.csv"))
        return _implied(str(self.directory.resolve()), tuple((f.name, f.stat().st_mtime_ns) for f in files))


@dataclass(frozen=True, slots=True, kw_only=True)
class CsvOpenInterest:
    """`engine.ports.OpenInterestSource` over the shared Coinalyze CSV (module docstring)."""

    path: Path

    def open_interest_history(self) -> DailyPanel:
        if not self.path.is_file():
            raise InputError("history", f"{self.path} not found; set CROSSMARGIN_DATA")
        return _open_interest(str(self.path.resolve()), self.path.stat().st_mtime_ns)


@dataclass(frozen=True, slots=True, kw_only=True)
class CsvFunding:
    """`engine.ports.FundingSource` over every funding_<symbol>usdt_binance_*.csv in `directory`."""

    directory: Path

    def funding_history(self) -> DailyPanel:
        files = sorted(self.directory.glob("funding_*usdt_binance_*.csv"))
        stamp = tuple((f.name, f.stat().st_mtime_ns) for f in files)
        return _funding(str(self.directory.resolve()), stamp)


def shared_open_interest(data: Path | None = None) -> CsvOpenInterest:
    return CsvOpenInterest(path=(data if data is not None else data_dir()) / OPEN_INTEREST_FILE)


def shared_funding(data: Path | None = None) -> CsvFunding:
    return CsvFunding(directory=data if data is not None else data_dir())


def shared_volume(data: Path | None = None) -> CsvVolume:
    return CsvVolume(path=(data if data is not None else data_dir()) / PRICES_FILE)


def shared_implied_vol(data: Path | None = None) -> CsvImpliedVol:
    return CsvImpliedVol(directory=data if data is not None else data_dir())
