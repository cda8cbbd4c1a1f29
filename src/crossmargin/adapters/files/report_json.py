"""The margin report as JSON, written columnar and streamed: any size, the typed report's schema.

Same keys, key order and values as `to_json(build_margin_report(run))` (docs/cli.md, "The JSON
report"): the writer reads `MarginColumns` chunk by chunk of accounts (about `CHUNK_ROWS`
positions each), renders each column with orjson (shortest round-trip floats, so every number
parses back to the same float64; NaN and inf as null) and lets `json_kernel.render_accounts`
interleave the values with the keys, on `WORKERS` threads beside the rendering one, written in
order. Memory stays at three chunks; no Python object per account or position. Two layouts:

    indent=True    the layout of `json.dumps(report, indent=2)` (`crossmargin margin --json`)
    indent=False   compact, one account per line (`--out report.json`: 30 % smaller, and
                   line-oriented tools can split it)

Strings are written as UTF-8 (not \\u-escaped as `json.dumps` does by default: the same values).
The float text may differ from Python's `repr` (`0.00001` for `1e-05`), never the value.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
import orjson

from crossmargin.adapters.files import json_kernel as kernel
from crossmargin.engine.report_columns import MarginColumns

# Threads assembling and writing chunks, beside the one rendering them.
WORKERS = 2
# About this many position rows per chunk: ~30 MB of output, ~15 MB of rendered columns (small
# enough that the two threads overlap on all but the first and last chunk).
CHUNK_ROWS = 100_000

ACCOUNT_KEYS = (
    "account_id",
    "equity_usd",
    "initial_margin_usd",
    "maintenance_margin_usd",
    "available_usd",
    "margin_ratio",
    "bankrupt",
    "below_maintenance",
    "collateral_value_usd",
)
POSITION_KEYS = (
    "instrument_id",
    "quantity",
    "entry_price",
    "value_usd",
    "unrealised_pnl_usd",
    "initial_margin_usd",
    "maintenance_margin_usd",
)
ISOLATED_KEY = "isolated_equity_usd"
COLLATERAL_KEYS = ("asset", "balance", "value_usd", "haircut")

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
IntArray = npt.NDArray[np.int64]
Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class _Layout:
    """Whitespace of one layout: `line(level)` starts a line at nesting `level` (accounts at 2)."""

    indent: bool

    def line(self, level: int) -> str:
        return "\n" + "  " * level if self.indent else ""

    def key(self, name: str) -> str:
        return json.dumps(name) + (": " if self.indent else ":")

    def header(self, columns: MarginColumns) -> str:
        items = (
            ("model", columns.model),
            ("preset", columns.preset),
            ("valuation_time", columns.valuation_time),
            ("book", columns.book),
        )
        body = ",".join(f"{self.line(1)}{self.key(k)}{json.dumps(v, ensure_ascii=False)}" for k, v in items)
        return "{" + body + "," + self.line(1) + self.key("accounts")

    def footer(self, n_accounts: int) -> str:
        if n_accounts == 0:
            return "[]" + self.line(0) + "}\n"
        return (self.line(1) if self.indent else "\n") + "]" + self.line(0) + "}\n"

    def templates(self, position_keys: Sequence[str]) -> list[str]:
        """The kernel's template table (json_kernel module docstring)."""
        account = "\n" if not self.indent else self.line(2)
        structure = {
            kernel.ACCOUNT_FIRST: account,
            kernel.ACCOUNT_NEXT: "," + account,
            kernel.ACCOUNT_OPEN: "{",
            kernel.ACCOUNT_CLOSE: self.line(2) + "}",
            kernel.POSITIONS_KEY: "," + self.line(3) + self.key("positions"),
            kernel.COLLATERAL_KEY: "," + self.line(3) + self.key("collateral"),
            kernel.EMPTY_LIST: "[]",
            kernel.LIST_OPEN: "[",
            kernel.LIST_CLOSE: self.line(3) + "]",
            kernel.ITEM_FIRST: self.line(4) + "{",
            kernel.ITEM_NEXT: "," + self.line(4) + "{",
            kernel.ITEM_CLOSE: self.line(4) + "}",
        }
        assert sorted(structure) == list(range(kernel.N_STRUCTURE))

        def keys(names: Sequence[str], level: int) -> list[str]:
            return [("," if n else "") + self.line(level) + self.key(name) for n, name in enumerate(names)]

        return [
            *(structure[t] for t in range(kernel.N_STRUCTURE)),
            *keys(ACCOUNT_KEYS, 3),
            *keys(position_keys, 5),
            *keys(COLLATERAL_KEYS, 5),
        ]


def _table(pieces: Sequence[bytes]) -> tuple[npt.NDArray[np.uint8], IntArray]:
    """Concatenated bytes and their bounds: piece n is data[bounds[n]:bounds[n + 1]]."""
    bounds = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in pieces], out=bounds[1:])
    data = np.frombuffer(b"".join(pieces), dtype=np.uint8) if bounds[-1] else np.zeros(1, dtype=np.uint8)
    return data, bounds


def chunk_bounds(position_count: IntArray, rows_per_chunk: int = CHUNK_ROWS) -> list[tuple[int, int]]:
    """Account ranges [start, stop) of about `rows_per_chunk` rows each (an account's positions
    plus one), never splitting an account. Vectorised."""
    n = position_count.shape[0]
    if n == 0:
        return []
    chunk_of = np.cumsum(position_count + 1) // max(rows_per_chunk, 1)
    starts = [0, *(np.flatnonzero(np.diff(chunk_of)) + 1).tolist()]
    stops = [*starts[1:], n]
    return list(zip(starts, stops, strict=True))


def write_margin_json(
    columns: MarginColumns,
    stream: BinaryIO,
    *,
    indent: bool,
    progress: Progress | None = None,
    rows_per_chunk: int = CHUNK_ROWS,
) -> None:
    """Write the report (module docstring) to a binary stream, chunk by chunk; `progress(n)`
    after each chunk with the number of accounts written so far."""
    layout = _Layout(indent)
    isolated = columns.positions.isolated_equity_usd is not None
    position_keys = (*POSITION_KEYS, ISOLATED_KEY) if isolated else POSITION_KEYS
    templates, bounds = _table([t.encode() for t in layout.templates(position_keys)])
    quoted = [orjson.dumps(name) for name in (*columns.instrument_ids, *columns.asset_symbols)]
    names, name_bounds = _table(quoted)
    widest_name = max((len(q) for q in quoted), default=0)
    # Field -> rendered column (order of `_render`), or -1: the name of a code.
    account_fields = np.arange(len(ACCOUNT_KEYS), dtype=np.int64)
    position_fields = np.array([-1, *range(9, 9 + len(position_keys) - 1)], dtype=np.int64)
    collateral_start = 9 + len(position_keys) - 1
    collateral_fields = np.array([-1, *range(collateral_start, collateral_start + 3)], dtype=np.int64)
    sizes = np.diff(bounds)

    def size_of(first: int, count: int) -> int:
        return int(sizes[first : first + count].sum())

    account_bytes = (
        max(sizes[kernel.ACCOUNT_FIRST], sizes[kernel.ACCOUNT_NEXT])
        + sizes[kernel.ACCOUNT_OPEN]
        + sizes[kernel.ACCOUNT_CLOSE]
        + sizes[kernel.POSITIONS_KEY]
        + sizes[kernel.COLLATERAL_KEY]
        + 2 * (sizes[kernel.EMPTY_LIST] + sizes[kernel.LIST_OPEN] + sizes[kernel.LIST_CLOSE])
        + size_of(kernel.N_STRUCTURE, len(ACCOUNT_KEYS))
    )
    item_bytes = max(sizes[kernel.ITEM_FIRST], sizes[kernel.ITEM_NEXT]) + sizes[kernel.ITEM_CLOSE]
    position_bytes = (
        item_bytes + widest_name + size_of(kernel.N_STRUCTURE + len(ACCOUNT_KEYS), len(position_keys))
    )
    collateral_bytes = (
        item_bytes + widest_name + size_of(kernel.N_STRUCTURE + len(ACCOUNT_KEYS) + len(position_keys), 4)
    )

    stream.write(layout.header(columns).encode())
    if columns.n_accounts:
        stream.write(b"[")

    buffers = threading.local()  # each worker's output buffer, reused from chunk to chunk

    def assemble(
        chunk: MarginColumns,
        rendered: npt.NDArray[np.uint8],
        cursor: IntArray,
        first: bool,
        previous: Future[None] | None,
    ) -> None:
        """Run the kernel of one chunk (numba, the GIL released) into this worker's buffer,
        wait until the previous chunk is written, then write this one (the GIL released). The
        buffer is kept across the worker's chunks: fresh pages cost a page fault each, a
        measurable share of the kernel on a VM."""
        capacity = (
            rendered.size
            + chunk.n_accounts * int(account_bytes)
            + chunk.n_positions * int(position_bytes)
            + chunk.collateral.asset.size * int(collateral_bytes)
        )
        out: npt.NDArray[np.uint8] | None = getattr(buffers, "out", None)
        if out is None or out.size < capacity:
            out = buffers.out = np.empty(capacity + capacity // 4, dtype=np.uint8)
        # core.jit work: ~1 us a byte interpreted (an estimate, not in bench_startup's calibration)
        n = kernel.render_accounts.for_work(capacity)(
            out,
            rendered,
            cursor[:-1] + 1,  # each column starts with "["
            templates,
            bounds,
            names,
            name_bounds,
            account_fields,
            position_fields,
            collateral_fields,
            chunk.positions.instrument,
            chunk.collateral.asset + len(columns.instrument_ids),
            chunk.accounts.position_count,
            chunk.accounts.collateral_count,
            first,
        )
        if previous is not None:
            previous.result()  # in order (and its error, if it failed)
        stream.write(out[:n].data)

    # This thread renders chunk k+2 with orjson (which holds the GIL) while two workers assemble
    # chunks k and k+1 (numba and the write release it): the kernel is ~3x the rendering, so
    # one worker would leave a core idle. Written in order; at most three chunks in memory.
    pending: deque[tuple[Future[None], int]] = deque()
    with ThreadPoolExecutor(max_workers=WORKERS) as workers:
        try:
            for start, stop in chunk_bounds(columns.accounts.position_count, rows_per_chunk):
                chunk = columns.chunk(start, stop)
                rendered, cursor = _table(_render(chunk, isolated=isolated))
                while len(pending) >= WORKERS:
                    _finish(pending, progress)
                previous = pending[-1][0] if pending else None
                pending.append(
                    (workers.submit(assemble, chunk, rendered, cursor, start == 0, previous), stop)
                )
            while pending:
                _finish(pending, progress)
        finally:
            for future, _ in pending:
                future.cancel()
    stream.write(layout.footer(columns.n_accounts).encode())


def _finish(pending: deque[tuple[Future[None], int]], progress: Progress | None) -> None:
    """Wait for the oldest chunk to be written; report the accounts written so far."""
    future, stop = pending.popleft()
    future.result()
    if progress is not None:
        progress(stop)


def _render(chunk: MarginColumns, *, isolated: bool) -> list[bytes]:
    """Every column of a chunk as one JSON array, in the field order of the layout: 9 account
    columns, the position columns after instrument_id, the collateral columns after asset."""
    a = chunk.accounts
    p = chunk.positions
    c = chunk.collateral
    arrays: list[npt.NDArray[np.generic]] = [
        a.equity_usd,
        a.initial_margin_usd,
        a.maintenance_margin_usd,
        a.available_usd,
        a.margin_ratio,
        a.bankrupt,
        a.below_maintenance,
        a.collateral_value_usd,
        p.quantity,
        p.entry_price,
        p.value_usd,
        p.unrealised_pnl_usd,
        p.initial_margin_usd,
        p.maintenance_margin_usd,
    ]
    if isolated:
        assert p.isolated_equity_usd is not None
        arrays.append(p.isolated_equity_usd)
    arrays += [c.balance, c.value_usd, c.haircut]
    return [
        orjson.dumps(tuple(a.account_id)),
        *(orjson.dumps(np.ascontiguousarray(x), option=_NUMPY) for x in arrays),
    ]
