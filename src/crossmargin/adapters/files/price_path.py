"""Price path files for `crossmargin simulate`: CSV with a `time` column (ISO 8601 UTC, e.g.
2025-03-01T12:00:00Z, or integer ns since the epoch) and one column per symbol (index price, USD;
an empty cell: no price for that symbol at that time).

    time,BTC,ETH
    2025-03-01T00:00:00Z,84000,2200
    2025-03-01T01:00:00Z,80000,

The rows become the engine's price path (`engine.ports.PricePath`): (as_of_ns, {symbol: USD}).
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

from crossmargin.engine.inputs import PricePathStep
from crossmargin.errors import InputError


def read_price_path(path: str | Path) -> list[PricePathStep]:
    """Every row of the CSV as (as_of_ns, {symbol: index price USD}), in file order; a bad cell
    raises InputError naming `file:line`."""
    rows: list[PricePathStep] = []
    with Path(path).open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "time" not in reader.fieldnames:
            raise InputError(f"{path}: time", "the price path needs a time column")
        for n, raw in enumerate(reader, start=2):
            stamp = raw.pop("time")
            try:
                ns = int(stamp) if stamp.strip().isdigit() else _iso_ns(stamp)
                prices = {k: float(v) for k, v in raw.items() if v not in (None, "")}
            except ValueError as error:
                raise InputError(f"{path}:{n}", str(error)) from None
            rows.append((ns, prices))
    return rows


def _iso_ns(stamp: str) -> int:
    moment = datetime.fromisoformat(stamp.strip().replace("Z", "+00:00"))
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1_000
