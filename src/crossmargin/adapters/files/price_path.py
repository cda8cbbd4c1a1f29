"""Price path files for `crossmargin simulate`: CSV (UTF-8) with a `time` column (ISO 8601 UTC, e.g.
2025-03-01T12:00:00Z, or integer ns since the epoch) and one column per symbol (index price, USD;
an empty cell: no price for that symbol at that time).

    time,BTC,ETH
    2025-03-01T00:00:00Z,84000,2200
    2025-03-01T01:00:00Z,80000,

Refused, naming `file:line` and the column: a row with more or fewer cells than the header, a
price that is not a finite number > 0, a time that does not parse, a time not after the previous
row's (a path runs forward: a row out of order would otherwise be clamped to the ledger's time), a
symbol the book does not price (`symbols=`, matched exactly: `btc` is not `BTC`), a repeated
column, or a file with no rows. Nothing is dropped: every row becomes a step.

The rows become the engine's price path (`engine.ports.PricePath`): (as_of_ns, {symbol: USD}).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Collection
from datetime import UTC, datetime
from pathlib import Path

from crossmargin.engine.inputs import PricePathStep
from crossmargin.errors import BookFileError

# datetime's own range: a later year overflows the ns count of an int64 anyway.
_MAX_NS = 2**63 - 1


def read_price_path(path: str | Path, *, symbols: Collection[str] | None = None) -> list[PricePathStep]:
    """Every row of the CSV as (as_of_ns, {symbol: index price USD}), in file order, strictly
    increasing in time; `symbols`: the names the book prices (None: any). A bad file raises
    BookFileError (`file: line N, column C: problem`)."""
    name = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise BookFileError(name, "file", "not found") from None
    except OSError as error:
        raise BookFileError(name, "file", error.strerror or str(error)) from None
    except UnicodeDecodeError as error:
        bad = f"byte {error.start}: {error.object[error.start]:#04x}"
        raise BookFileError(name, "file", f"not UTF-8 ({bad}); save the file as UTF-8") from None
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if not header or "time" not in header:
        raise BookFileError(name, "line 1", "the price path needs a header with a time column")
    columns = [c.strip() for c in header]
    _check_header(name, columns, symbols)
    time_at = columns.index("time")
    rows: list[PricePathStep] = []
    previous_ns: int | None = None
    for line, cells in enumerate(reader, start=2):
        if not cells:
            continue  # a blank line (a trailing newline): not a row
        if len(cells) != len(columns):
            raise BookFileError(name, f"line {line}", f"{len(cells)} cells for {len(columns)} columns")
        ns = _time_ns(name, line, cells[time_at])
        if previous_ns is not None and ns <= previous_ns:
            raise BookFileError(
                name, f"line {line}, column time", f"{cells[time_at].strip()} is not after the previous row"
            )
        previous_ns = ns
        prices = {
            column: _price(name, line, column, cell)
            for column, cell in zip(columns, cells, strict=True)
            if column != "time" and cell.strip() != ""
        }
        rows.append((ns, prices))
    if not rows:
        raise BookFileError(name, "file", "the price path has no rows")
    return rows


def _check_header(name: str, columns: list[str], symbols: Collection[str] | None) -> None:
    seen: set[str] = set()
    for column in columns:
        if column == "":
            raise BookFileError(name, "line 1", "an empty column name")
        if column in seen:
            raise BookFileError(name, f"line 1, column {column}", "repeated")
        seen.add(column)
        if symbols is not None and column != "time" and column not in symbols:
            known = ", ".join(sorted(symbols))
            raise BookFileError(
                name, f"line 1, column {column}", f"not a symbol of the book (names are exact: {known})"
            )


def _time_ns(name: str, line: int, cell: str) -> int:
    stamp = cell.strip()
    try:
        ns = int(stamp) if stamp.isdigit() else _iso_ns(stamp)
    except (ValueError, OverflowError) as error:
        raise BookFileError(name, f"line {line}, column time", f"{stamp!r}: {error}") from None
    if not 0 <= ns <= _MAX_NS:
        raise BookFileError(name, f"line {line}, column time", f"{stamp!r} is outside 1970..2262")
    return ns


def _price(name: str, line: int, column: str, cell: str) -> float:
    try:
        price = float(cell)
    except ValueError:
        raise BookFileError(
            name, f"line {line}, column {column}", f"{cell.strip()!r} is not a number"
        ) from None
    if not (math.isfinite(price) and price > 0.0):
        raise BookFileError(name, f"line {line}, column {column}", f"must be finite and > 0, got {price!r}")
    return price


def _iso_ns(stamp: str) -> int:
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
