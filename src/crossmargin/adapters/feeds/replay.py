"""Replay a quote table through the oracle core: the same `update` the live NATS feed calls."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from crossmargin.adapters.feeds.quotes import QuoteBook, QuoteTable
from crossmargin.core.oracle import (
    LiquidationPaused,
    OracleParams,
    OraclePolicy,
    OracleState,
    OracleUpdate,
    ParamTable,
    liquidation_pauses,
    update,
)
from crossmargin.errors import InputError


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
) -> Iterator[ReplayStep]:
    """Feed the quotes in time order and update the oracle at every distinct quote time, or every
    `tick_ns` (an update at the end of each tick with the quotes so far). Yields one step per update."""
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
    for start, end, now_ns in zip(starts, ends, times, strict=True):
        book.put_many(table, slice(int(start), int(end)))
        current, result = update(current, book.snapshot(), now_ns=int(now_ns), params=table_params)
        yield ReplayStep(
            time_ns=int(now_ns),
            update=result,
            pauses=liquidation_pauses(result, policy, asset_names=table.assets),
        )
