"""Quote files: read and write the timestamped source quotes the replay reads (`engine.inputs.QuoteTable`).

A quote file (CSV or Parquet) has one row per quote:

    time         ISO-8601 UTC (e.g. 2023-03-11T06:00:00Z) — or time_ns, int nanoseconds since epoch
    source       source name (an exchange, an aggregator)
    asset        asset name
    price_usd    > 0
    weight       optional confidence or volume weight (default 1)
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from crossmargin.engine.inputs import QuoteTable
from crossmargin.engine.oracle_replay import QuoteBook
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# QuoteTable and QuoteBook are the engine's (engine.inputs, engine.oracle_replay); kept importable here.
__all__ = [
    "DailyOhlcQuotes",
    "QuoteBook",
    "QuoteFile",
    "QuoteFileError",
    "QuoteTable",
    "daily_ohlc_quotes",
    "default_data_dir",
    "load_quotes",
    "to_ns",
    "write_quotes",
]

DATA_ENV = "CROSSMARGIN_DATA"
YAHOO_DAILY = "prices_daily_yahoo.csv"


class QuoteFileError(InputError):
    """A quote file that cannot be read; nothing is replayed from it."""

    def __init__(self, path: str, field: str, problem: str) -> None:
        self.path = path
        super().__init__(field, problem)
        self.args = (f"{path}: {field}: {problem}",)

    def __str__(self) -> str:
        return f"{self.path}: {self.field}: {self.problem}"


def default_data_dir() -> Path:
    """$CROSSMARGIN_DATA, else ../shared/data beside the checkout (this file is
    <checkout>/src/crossmargin/adapters/feeds/quotes.py)."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[5] / "shared" / "data"


def to_ns(moment: datetime) -> int:
    """Nanoseconds since the epoch of an aware (or naive = UTC) datetime, exact to the microsecond."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def load_quotes(path: str | Path) -> QuoteTable:
    """Read a CSV or Parquet quote file (columns in the module docstring)."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            table = pq.read_table(path)
        else:
            names_as_text = {"source": pa.string(), "asset": pa.string()}
            table = pa_csv.read_csv(path, convert_options=pa_csv.ConvertOptions(column_types=names_as_text))
    except (OSError, pa.ArrowInvalid) as error:
        raise QuoteFileError(str(path), "file", str(error).splitlines()[0]) from error
    names = set(table.column_names)
    for required in ("source", "asset", "price_usd"):
        if required not in names:
            raise QuoteFileError(str(path), required, "missing column")
    if table.num_rows == 0:
        raise QuoteFileError(str(path), "file", "no quote rows (a header alone)")
    for column in ("price_usd", "weight", "time_ns"):
        if column in names and not _numeric(table.column(column).type):
            n, cell = _first_non_number(table.column(column))
            problem = "empty" if cell is None else f"{cell!r} is not a number"
            raise QuoteFileError(str(path), f"{_row(path, n)}, column {column}", problem)
    if "time_ns" in names:
        times = np.asarray(table.column("time_ns").to_numpy(), dtype=np.int64)
    elif "time" in names:
        column = table.column("time")
        if column.null_count:
            raise QuoteFileError(str(path), f"{_row(path, _first_null(column))}, column time", "empty")
        if not pa.types.is_timestamp(column.type):
            try:
                column = pc.strptime(column, format="%Y-%m-%dT%H:%M:%SZ", unit="ns")
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
                raise QuoteFileError(
                    str(path),
                    "time",
                    "not ISO 8601 UTC (2023-03-11T06:00:00Z): " + str(error).splitlines()[0],
                ) from error

        times = np.asarray(column.cast(pa.timestamp("ns")).cast(pa.int64()).to_numpy(), dtype=np.int64)
    else:
        raise QuoteFileError(str(path), "time", "missing column (time or time_ns)")
    prices = np.asarray(table.column("price_usd").to_numpy(), dtype=np.float64)
    if not np.all(np.isfinite(prices) & (prices > 0.0)):
        bad = int(np.flatnonzero(~(np.isfinite(prices) & (prices > 0.0)))[0])
        raise QuoteFileError(
            str(path),
            f"{_row(path, bad)}, column price_usd",
            f"must be finite and > 0, got {float(prices[bad])!r}",
        )
    weights = np.asarray(table.column("weight").to_numpy(), dtype=np.float64) if "weight" in names else None
    return QuoteTable.from_columns(
        time_ns=times,
        asset=[str(x) for x in table.column("asset").to_pylist()],
        source=[str(x) for x in table.column("source").to_pylist()],
        price_usd=prices,
        weight=weights,
    )


def _numeric(kind: pa.DataType) -> bool:
    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind))


def _first_null(column: pa.ChunkedArray) -> int:
    return int(np.flatnonzero(np.asarray(column.is_null().to_numpy(zero_copy_only=False)))[0])


def _first_non_number(column: pa.ChunkedArray) -> tuple[int, Any]:
    """Row n and its cell, for the first cell of a text column that does not parse as a number."""
    for n, cell in enumerate(column.to_pylist()):
        try:
            float(cell)
        except (TypeError, ValueError):
            return n, cell
    return 0, None  # pragma: no cover - a text column always has a non-number (else Arrow typed it)


def _row(path: Path, n: int) -> str:
    """Where row n (0-based, after the header) is: `line N` of a CSV file, `row n` of Parquet."""
    return f"row {n}" if path.suffix.lower() in (".parquet", ".pq") else f"line {n + 2}"


def write_quotes(table: QuoteTable, path: str | Path) -> None:
    """Write a quote table as CSV (time_ns) or Parquet, by suffix."""
    path = Path(path)
    arrow = pa.table(
        {
            "time_ns": pa.array(table.time_ns, type=pa.int64()),
            "source": [table.sources[i] for i in table.source_index],
            "asset": [table.assets[i] for i in table.asset_index],
            "price_usd": pa.array(table.price_usd),
            "weight": pa.array(table.weight),
        }
    )
    if path.suffix.lower() in (".parquet", ".pq"):
        pq.write_table(arrow, path)
    else:
        pa_csv.write_csv(arrow, path)


# Intraday times given to a daily bar's four prices: open, first extreme, second extreme, close.
OHLC_HOURS = (0, 6, 12, 18)


def daily_ohlc_quotes(
    *,
    symbols: tuple[str, ...],
    start: date,
    end: date,
    source: str = "yahoo",
    data_dir: Path | None = None,
) -> QuoteTable:
    """Quotes from the shared daily history (prices_daily_yahoo.csv), four per day and symbol:
    open at 00:00, then the extreme nearer the open at 06:00, the other at 12:00, the close at
    18:00 UTC (the usual OHLC path assumption: the bar reaches the extreme nearer its open first).
    One source: Yahoo's aggregated price. Days in [start, end]."""
    path = (data_dir or default_data_dir()) / YAHOO_DAILY
    if not path.is_file():
        raise QuoteFileError(str(path), "file", f"not found (set ${DATA_ENV})")
    wanted = set(symbols)
    times: list[int] = []
    assets: list[str] = []
    prices: list[float] = []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["symbol"] not in wanted:
                continue
            day = date.fromisoformat(row["date"])
            if not start <= day <= end:
                continue
            high, low, close = float(row["high_usd"]), float(row["low_usd"]), float(row["close_usd"])
            open_ = float(row["open_usd"])
            first, second = (high, low) if high - open_ <= open_ - low else (low, high)
            for hour, price in zip(OHLC_HOURS, (open_, first, second, close), strict=True):
                times.append(to_ns(datetime.combine(day, time(hour), tzinfo=UTC)))
                assets.append(row["symbol"])
                prices.append(price)
    if not times:
        raise QuoteFileError(str(path), "symbol", f"no rows for {sorted(wanted)} in [{start}, {end}]")
    return QuoteTable.from_columns(
        time_ns=times, asset=assets, source=[source] * len(times), price_usd=prices, assets=tuple(symbols)
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class QuoteFile:
    """`engine.ports.QuoteSource` over a quote file (CSV or Parquet, columns in the module
    docstring), read when asked."""

    path: Path

    def quote_table(self) -> QuoteTable:
        return load_quotes(self.path)


@dataclass(frozen=True, slots=True, kw_only=True)
class DailyOhlcQuotes:
    """`engine.ports.QuoteSource` over the shared daily history: four quotes per day and symbol
    (`daily_ohlc_quotes`), days in [start, end]."""

    symbols: tuple[str, ...]
    start: date
    end: date
    source: str = "yahoo"
    data_dir: Path | None = None

    def quote_table(self) -> QuoteTable:
        return daily_ohlc_quotes(
            symbols=self.symbols, start=self.start, end=self.end, source=self.source, data_dir=self.data_dir
        )
