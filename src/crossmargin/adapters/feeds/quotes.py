"""Timestamped source quotes: the table the replay reads, and the latest-quote book both feeds keep.

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

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from crossmargin.core.oracle import QuoteMatrix
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

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


@dataclass(frozen=True, slots=True)
class QuoteTable:
    """Quotes sorted by time, struct of arrays (n_quotes,): time_ns, asset_index, source_index,
    price_usd, weight; names in `assets` and `sources` (indices point into them)."""

    assets: tuple[str, ...]
    sources: tuple[str, ...]
    time_ns: IntArray
    asset_index: IntArray
    source_index: IntArray
    price_usd: FloatArray
    weight: FloatArray

    def __len__(self) -> int:
        return int(self.time_ns.shape[0])

    @staticmethod
    def from_columns(
        *,
        time_ns: npt.ArrayLike,
        asset: list[str],
        source: list[str],
        price_usd: npt.ArrayLike,
        weight: npt.ArrayLike | None = None,
        assets: tuple[str, ...] | None = None,
        sources: tuple[str, ...] | None = None,
    ) -> QuoteTable:
        """Build from row columns; assets/sources default to the sorted distinct names."""
        times = np.asarray(time_ns, dtype=np.int64)
        prices = np.asarray(price_usd, dtype=np.float64)
        weights = np.ones_like(prices) if weight is None else np.asarray(weight, dtype=np.float64)
        if not (len(asset) == len(source) == times.shape[0] == prices.shape[0] == weights.shape[0]):
            raise InputError("quotes", "columns differ in length")
        asset_names = assets if assets is not None else tuple(sorted(set(asset)))
        source_names = sources if sources is not None else tuple(sorted(set(source)))
        asset_lookup = {name: i for i, name in enumerate(asset_names)}
        source_lookup = {name: i for i, name in enumerate(source_names)}
        unknown = (set(asset) - asset_lookup.keys()) | (set(source) - source_lookup.keys())
        if unknown:
            raise InputError("quotes", f"unknown asset or source names {sorted(unknown)[:5]}")
        order = np.argsort(times, kind="stable")
        return QuoteTable(
            assets=asset_names,
            sources=source_names,
            time_ns=times[order],
            asset_index=np.array([asset_lookup[a] for a in asset], dtype=np.int64)[order],
            source_index=np.array([source_lookup[s] for s in source], dtype=np.int64)[order],
            price_usd=prices[order],
            weight=weights[order],
        )


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
    if "time_ns" in names:
        times = np.asarray(table.column("time_ns").to_numpy(), dtype=np.int64)
    elif "time" in names:
        column = table.column("time")
        if not pa.types.is_timestamp(column.type):
            try:
                column = pc.strptime(column, format="%Y-%m-%dT%H:%M:%SZ", unit="ns")
            except pa.ArrowInvalid as error:
                raise QuoteFileError(str(path), "time", str(error).splitlines()[0]) from error
        times = np.asarray(column.cast(pa.timestamp("ns")).cast(pa.int64()).to_numpy(), dtype=np.int64)
    else:
        raise QuoteFileError(str(path), "time", "missing column (time or time_ns)")
    prices = np.asarray(table.column("price_usd").to_numpy(), dtype=np.float64)
    if not np.all(np.isfinite(prices) & (prices > 0.0)):
        bad = int(np.flatnonzero(~(np.isfinite(prices) & (prices > 0.0)))[0])
        raise QuoteFileError(str(path), f"price_usd[{bad}]", f"must be finite and > 0, got {prices[bad]!r}")
    weights = np.asarray(table.column("weight").to_numpy(), dtype=np.float64) if "weight" in names else None
    return QuoteTable.from_columns(
        time_ns=times,
        asset=[str(x) for x in table.column("asset").to_pylist()],
        source=[str(x) for x in table.column("source").to_pylist()],
        price_usd=prices,
        weight=weights,
    )


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


class QuoteBook:
    """The latest quote of every (asset, source), as the (assets × sources) matrix the core reads.

    Mutable on purpose: it is the adapter's buffer between messages and updates; the core receives
    a copy (`snapshot`) and never sees this object."""

    def __init__(self, assets: tuple[str, ...], sources: tuple[str, ...]) -> None:
        self.assets = assets
        self.sources = sources
        self._asset_lookup = {name: i for i, name in enumerate(assets)}
        self._source_lookup = {name: i for i, name in enumerate(sources)}
        shape = (len(assets), len(sources))
        self._price_usd = np.full(shape, np.nan)
        self._time_ns = np.zeros(shape, dtype=np.int64)
        self._weight = np.ones(shape)

    def put(self, asset: str, source: str, *, price_usd: float, time_ns: int, weight: float = 1.0) -> bool:
        """Record a quote; False (ignored) for an unknown asset or source, or an older quote."""
        i = self._asset_lookup.get(asset)
        j = self._source_lookup.get(source)
        if i is None or j is None or time_ns < self._time_ns[i, j]:
            return False
        self._price_usd[i, j] = price_usd
        self._time_ns[i, j] = time_ns
        self._weight[i, j] = weight
        return True

    def put_many(self, table: QuoteTable, rows: slice) -> None:
        """Record rows of a QuoteTable whose names match this book's (vectorised)."""
        a, s = table.asset_index[rows], table.source_index[rows]
        self._price_usd[a, s] = table.price_usd[rows]
        self._time_ns[a, s] = table.time_ns[rows]
        self._weight[a, s] = table.weight[rows]

    def snapshot(self) -> QuoteMatrix:
        return QuoteMatrix(
            price_usd=self._price_usd.copy(), time_ns=self._time_ns.copy(), weight=self._weight.copy()
        )
