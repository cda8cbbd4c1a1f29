"""The margin report as Parquet: three flat tables, written columnar chunk by chunk.

`--out report.parquet` writes, side by side:

    report.parquet              one row per account: account_id, equity_usd, initial_margin_usd,
                                maintenance_margin_usd, available_usd, margin_ratio (null when
                                bankrupt), bankrupt, below_maintenance, collateral_value_usd,
                                n_positions, n_collateral
    report.positions.parquet    one row per position: account_id, instrument_id, quantity,
                                entry_price, value_usd, unrealised_pnl_usd, initial_margin_usd,
                                maintenance_margin_usd[, isolated_equity_usd]
    report.collateral.parquet   one row per non-zero balance: account_id, asset, balance,
                                value_usd, haircut

Rows are in the JSON report's order (accounts in book or request order, each account's positions
in instrument order, its balances in asset order); the JSON report's `positions[]` and
`collateral[]` of an account are its rows of the two side tables. Each file's key-value metadata
carries the header: `crossmargin.model`, `crossmargin.preset` (empty when none),
`crossmargin.valuation_time`, `crossmargin.book`. Id columns are strings (dictionary-encoded on
disk); amounts float64 USD, quantities and balances in the book's units.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crossmargin.adapters.arrow import bool_array, numeric_array, string_array
from crossmargin.adapters.files.report_json import chunk_bounds
from crossmargin.engine.report_columns import MarginColumns

Progress = Callable[[int], None]
# Snappy (Parquet's usual default): the float columns are mostly incompressible mantissas; zstd
# saved ~13 % of the positions file for ~40 % more CPU (1M-account bench book).
COMPRESSION = "snappy"
# Dictionary pages for the id columns only: trying them on float columns hashes every value
# before falling back to plain pages (~35 % of the write time).
DICTIONARY_COLUMNS = ["account_id", "instrument_id", "asset"]
# About this many positions per row group (the chunk of accounts written at once). 1,000,000
# took the same CPU (200,000-account bench book) and grew the file: the account ids outgrow
# the 1 MB dictionary page and fall back to plain strings. No compression: ~30 % less CPU, 40 %
# larger files.
ROW_GROUP_ROWS = 250_000


def side_paths(path: Path) -> tuple[Path, Path]:
    """`report.parquet` -> (`report.positions.parquet`, `report.collateral.parquet`)."""
    return path.with_suffix(".positions" + path.suffix), path.with_suffix(".collateral" + path.suffix)


def _metadata(columns: MarginColumns) -> dict[bytes, bytes]:
    return {
        b"crossmargin.model": columns.model.encode(),
        b"crossmargin.preset": (columns.preset or "").encode(),
        b"crossmargin.valuation_time": columns.valuation_time.encode(),
        b"crossmargin.book": columns.book.encode(),
    }


def _names(values: Sequence[str], codes: np.ndarray) -> pa.Array:
    """Strings of a small table by code, as an Arrow dictionary array (no string per row)."""
    return pa.DictionaryArray.from_arrays(numeric_array(codes.astype(np.int32)), string_array(values))


def _owners(ids: pa.Array, counts: np.ndarray) -> pa.Array:
    """The account id of each row of a side table (`counts[n]` rows for account n), as a
    dictionary array over the chunk's ids (no string per row)."""
    owner = np.repeat(np.arange(counts.size, dtype=np.int32), counts)
    return pa.DictionaryArray.from_arrays(numeric_array(owner), ids)


def _table(columns: dict[str, pa.Array]) -> pa.Table:
    return pa.Table.from_arrays(list(columns.values()), names=list(columns))


def _tables(chunk: MarginColumns) -> tuple[pa.Table, pa.Table, pa.Table]:
    """The chunk's three tables, built from the numpy buffers as they are (`adapters.arrow`:
    no `pa.array` on numpy, which imports pandas, ~0.5 s)."""
    a = chunk.accounts
    ids = string_array(a.account_id)
    accounts = _table(
        {
            "account_id": ids,
            "equity_usd": numeric_array(a.equity_usd),
            "initial_margin_usd": numeric_array(a.initial_margin_usd),
            "maintenance_margin_usd": numeric_array(a.maintenance_margin_usd),
            "available_usd": numeric_array(a.available_usd),
            "margin_ratio": numeric_array(a.margin_ratio, nan_is_null=True),  # bankrupt -> null
            "bankrupt": bool_array(a.bankrupt),
            "below_maintenance": bool_array(a.below_maintenance),
            "collateral_value_usd": numeric_array(a.collateral_value_usd),
            "n_positions": numeric_array(a.position_count.astype(np.int64, copy=False)),
            "n_collateral": numeric_array(a.collateral_count.astype(np.int64, copy=False)),
        }
    )
    p = chunk.positions
    position_columns: dict[str, pa.Array] = {
        "account_id": _owners(ids, a.position_count),
        "instrument_id": _names(chunk.instrument_ids, p.instrument),
        "quantity": numeric_array(p.quantity),
        "entry_price": numeric_array(p.entry_price),
        "value_usd": numeric_array(p.value_usd),
        "unrealised_pnl_usd": numeric_array(p.unrealised_pnl_usd),
        "initial_margin_usd": numeric_array(p.initial_margin_usd),
        "maintenance_margin_usd": numeric_array(p.maintenance_margin_usd),
    }
    if p.isolated_equity_usd is not None:
        position_columns["isolated_equity_usd"] = numeric_array(p.isolated_equity_usd)
    c = chunk.collateral
    collateral = _table(
        {
            "account_id": _owners(ids, a.collateral_count),
            "asset": _names(chunk.asset_symbols, c.asset),
            "balance": numeric_array(c.balance),
            "value_usd": numeric_array(c.value_usd),
            "haircut": numeric_array(c.haircut),
        }
    )
    return accounts, _table(position_columns), collateral


def write_margin_parquet(
    columns: MarginColumns,
    targets: tuple[Path, Path, Path],
    *,
    progress: Progress | None = None,
) -> None:
    """Write the accounts, positions and collateral tables (module docstring) to `targets`
    (temporary paths: the caller renames them into place), one row group per chunk of accounts;
    `progress(n)` after each chunk with the accounts written so far."""
    metadata = _metadata(columns)
    writers: list[pq.ParquetWriter] = []
    try:
        row_groups = chunk_bounds(columns.accounts.position_count, ROW_GROUP_ROWS)
        for start, stop in row_groups or [(0, 0)]:
            tables = _tables(columns.chunk(start, stop))
            if not writers:
                for target, table in zip(targets, tables, strict=True):
                    # Dictionary columns go to disk as Parquet dictionary pages (no string per
                    # row) and read back as plain strings: the Arrow schema is not stored (so the
                    # header goes in as the file's key-value metadata, below).
                    schema = table.schema
                    writers.append(
                        pq.ParquetWriter(
                            target,
                            schema,
                            compression=COMPRESSION,
                            use_dictionary=[c for c in DICTIONARY_COLUMNS if c in schema.names],
                            store_schema=False,
                        )
                    )
            for writer, table in zip(writers, tables, strict=True):
                writer.write_table(table)
            if progress is not None:
                progress(stop)
        for writer in writers:
            writer.add_key_value_metadata(metadata)
    finally:
        for writer in writers:
            writer.close()
