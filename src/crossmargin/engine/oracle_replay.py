"""Replay quotes through the oracle core: the latest-quote book, the replay loop and the JSON of
one oracle price. The same `core.oracle.update` the live NATS feed (`adapters.feeds.nats_feed`)
calls, so a recorded day replays exactly as it ran.

    QuoteBook       latest quote per (asset, source): the (assets x sources) matrix the core reads
    replay          a QuoteTable in time order -> one ReplayStep (oracle update + pauses) per update
    price_message   one asset of an OracleUpdate as JSON-ready data (published on oracle.<asset>)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from crossmargin.core.oracle import (
    NS_PER_MS,
    LiquidationPaused,
    OracleParams,
    OraclePolicy,
    OracleState,
    OracleUpdate,
    ParamTable,
    PriceStatus,
    QuoteMatrix,
    liquidation_pauses,
    update,
)
from crossmargin.engine.inputs import QuoteTable
from crossmargin.errors import InputError

# One word per status in every command and message (`oracle replay`, `margin --prices`, NATS).
STATUS_LABELS = {
    PriceStatus.VALID: "ok",
    PriceStatus.HELD: "held",
    PriceStatus.STALE: "stale",
    PriceStatus.NO_PRICE: "no_price",
}


def status_label(code: int) -> str:
    """ "ok" | "held" | "stale" | "no_price" for a PriceStatus code."""
    return STATUS_LABELS[PriceStatus(code)]


class QuoteBook:
    """The latest quote of every (asset, source), as the (assets × sources) matrix the core reads.

    Mutable on purpose: it is a feed's buffer between messages and updates; the core receives
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


def price_message(asset_index: int, asset: str, result: OracleUpdate) -> dict[str, Any]:
    """The JSON published on oracle.<asset> for one asset of an update."""

    def number(value: float) -> float | None:
        return None if value != value else float(value)  # NaN → null

    i = asset_index
    return {
        "asset": asset,
        "as_of_ns": result.as_of_ns,
        "price_usd": number(result.price_usd[i]),
        "status": status_label(int(result.status[i])),
        "age_ms": float(result.age_ns[i]) / NS_PER_MS,
        "band_low_usd": number(result.band_low_usd[i]),
        "band_high_usd": number(result.band_high_usd[i]),
        "n_sources": int(result.n_sources[i]),
        "smoothed_usd": number(result.smoothed_usd[i]),
        "uncertainty_addon": float(result.uncertainty_addon[i]),
    }


@dataclass(frozen=True, slots=True)
class ReplayStep:
    """One oracle update during a replay, with the liquidation pauses it raised."""

    time_ns: int
    update: OracleUpdate
    pauses: tuple[LiquidationPaused, ...]


def param_table(assets: tuple[str, ...], params: OracleParams | dict[str, OracleParams]) -> ParamTable:
    """One parameter set for all assets, or one per asset name."""
    if isinstance(params, OracleParams):
        return ParamTable.uniform(params, len(assets))
    missing = [a for a in assets if a not in params]
    if missing:
        raise InputError("params", f"no oracle parameters for {missing}")
    return ParamTable.stack(tuple(params[a] for a in assets))


def replay(
    table: QuoteTable,
    *,
    params: OracleParams | dict[str, OracleParams],
    policy: OraclePolicy | None = None,
    tick_ns: int | None = None,
    state: OracleState | None = None,
    until_ns: int | None = None,
) -> Iterator[ReplayStep]:
    """Feed the quotes in time order and update the oracle at every distinct quote time, or every
    `tick_ns` (an update at the end of each tick with the quotes so far). Yields one step per
    update. `until_ns` (>= the last quote's time): one more update then, with no new quote, so the
    last step's ages and statuses are those at `until_ns` (a book's valuation time)."""
    policy = policy or OraclePolicy()
    table_params = param_table(table.assets, params)
    book = QuoteBook(table.assets, table.sources)
    if len(table) == 0:
        return
    current = state or OracleState.initial(len(table.assets), as_of_ns=int(table.time_ns[0]))
    if tick_ns is None:
        boundaries = np.flatnonzero(np.diff(table.time_ns)) + 1
        times = table.time_ns[np.append(boundaries, len(table)) - 1]
    else:
        if tick_ns <= 0:
            raise InputError("tick_ns", f"must be > 0, got {tick_ns}")
        first, last = int(table.time_ns[0]), int(table.time_ns[-1])
        # Ticks end at first + k·tick; the last one covers the last quote.
        times = np.arange(first + tick_ns, last + tick_ns + 1, tick_ns, dtype=np.int64)
        boundaries = np.searchsorted(table.time_ns, times[:-1], side="right")
    starts = np.concatenate([[0], boundaries])
    ends = np.append(boundaries, len(table))
    if until_ns is not None:
        if until_ns < int(table.time_ns[-1]):
            raise InputError("until_ns", f"{until_ns} is before the last quote ({int(table.time_ns[-1])})")
        if until_ns > int(times[-1]):
            times = np.append(times, np.int64(until_ns))
            starts = np.append(starts, len(table))
            ends = np.append(ends, len(table))
    for start, end, now_ns in zip(starts, ends, times, strict=True):
        book.put_many(table, slice(int(start), int(end)))
        current, result = update(current, book.snapshot(), now_ns=int(now_ns), params=table_params)
        yield ReplayStep(
            time_ns=int(now_ns),
            update=result,
            pauses=liquidation_pauses(result, policy, asset_names=table.assets),
        )
