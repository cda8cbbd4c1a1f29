"""Daily closes from ../shared/data/prices_daily_yahoo.csv as a `core.var.history.PriceHistory`.

The file is long format (date, symbol, open/high/low/close/volume USD; one row per symbol and UTC
day; Yahoo Finance via budydeveloper/crypto-dataset, see ../shared/data/README.md). Days a symbol
has no row are NaN. The directory is `$CROSSMARGIN_DATA`, else ../shared/data beside the checkout.

`CsvPriceHistory` is the engine's `PriceHistorySource` port over such a file.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from crossmargin.adapters.history.deribit_chains import data_dir
from crossmargin.core.var.history import PriceHistory
from crossmargin.errors import InputError

PRICES_FILE = "prices_daily_yahoo.csv"


def prices_path(data: Path | None = None) -> Path:
    return (data if data is not None else data_dir()) / PRICES_FILE


def load_price_history(path: Path | str | None = None) -> PriceHistory:
    """Every symbol's daily close, USD (cached per file: the back-test asks once per model)."""
    file = Path(path) if path is not None else prices_path()
    if not file.is_file():
        raise InputError(
            "history",
            f"price history {file} not found; set CROSSMARGIN_DATA to the shared data directory, or to"
            f" a directory holding your own daily closes as {PRICES_FILE} (CSV columns date, symbol,"
            " close_usd; docs/cli.md, 'Price history file')",
        )
    return _load(str(file.resolve()), file.stat().st_mtime_ns)


@dataclass(frozen=True, slots=True, kw_only=True)
class CsvPriceHistory:
    """`engine.ports.PriceHistorySource` over a long-format daily CSV (module docstring), read
    on the first call and cached per file and modification time. A missing file raises
    InputError("history", ...) when read, not when named."""

    path: Path

    def price_history(self) -> PriceHistory:
        return load_price_history(self.path)

    def is_available(self) -> bool:
        """Whether the file is there (a caller decides what to run without it)."""
        return self.path.is_file()


def shared_price_history(data: Path | None = None) -> CsvPriceHistory:
    """The shared daily closes: `data` (default `$CROSSMARGIN_DATA`, else ../shared/data)
    / prices_daily_yahoo.csv."""
    return CsvPriceHistory(path=prices_path(data))


COLUMNS = ("date", "symbol", "close_usd")


@lru_cache(maxsize=4)
def _load(path: str, _mtime_ns: int) -> PriceHistory:
    # csv.reader, not DictReader: a dict per row was half of reading the shared file (35,615 rows:
    # 207 -> 108 ms on an AMD EPYC Zen 1), most of a VaR margin run of the example book.
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        missing = set(COLUMNS) - set(header)
        if missing:
            raise InputError("history", f"{path}: missing columns {', '.join(sorted(missing))}")
        rows = list(reader)
    if not rows:
        raise InputError("history", f"{path}: no rows")
    short = next((n for n, row in enumerate(rows) if len(row) != len(header)), None)
    if short is not None:
        problem = f"{len(rows[short])} fields where the header has {len(header)}"
        raise InputError("history", f"{path}: line {short + 2}: {problem}")
    day, symbol, close_text = (header.index(name) for name in COLUMNS)
    day_text = np.array([row[day] for row in rows])
    symbol_text = np.array([row[symbol] for row in rows])
    close = _closes(path, [row[close_text] for row in rows])
    days_all = day_text.astype("datetime64[D]")
    days, day_index = np.unique(days_all, return_inverse=True)
    symbols, symbol_index = np.unique(symbol_text, return_inverse=True)
    matrix = np.full((days.size, symbols.size), np.nan)
    matrix[day_index, symbol_index] = close
    if np.unique(day_index * symbols.size + symbol_index).size != len(rows):
        raise InputError("history", f"{path}: duplicate (date, symbol) rows")
    return PriceHistory(days=days, symbols=tuple(str(s) for s in symbols), close_usd=matrix)


def _closes(path: str, text: list[str]) -> npt.NDArray[np.float64]:
    """The closes as float64 (Python's float of each, so the same bits), or an InputError naming
    the first line that is not a number."""
    try:
        return np.array([float(value) for value in text])
    except ValueError:
        for n, value in enumerate(text):
            try:
                float(value)
            except ValueError:
                problem = f"close_usd {value!r} is not a number"
                raise InputError("history", f"{path}: line {n + 2}: {problem}") from None
        raise
