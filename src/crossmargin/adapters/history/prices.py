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


@lru_cache(maxsize=4)
def _load(path: str, _mtime_ns: int) -> PriceHistory:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"date", "symbol", "close_usd"} - set(reader.fieldnames or ())
        if missing:
            raise InputError("history", f"{path}: missing columns {', '.join(sorted(missing))}")
        rows = [(r["date"], r["symbol"], r["close_usd"]) for r in reader]
    if not rows:
        raise InputError("history", f"{path}: no rows")
    day_text = np.array([r[0] for r in rows])
    symbol_text = np.array([r[1] for r in rows])
    close = np.array([float(r[2]) for r in rows])
    days_all = day_text.astype("datetime64[D]")
    days, day_index = np.unique(days_all, return_inverse=True)
    symbols, symbol_index = np.unique(symbol_text, return_inverse=True)
    matrix = np.full((days.size, symbols.size), np.nan)
    matrix[day_index, symbol_index] = close
    if np.unique(day_index * symbols.size + symbol_index).size != len(rows):
        raise InputError("history", f"{path}: duplicate (date, symbol) rows")
    return PriceHistory(days=days, symbols=tuple(str(s) for s in symbols), close_usd=matrix)
