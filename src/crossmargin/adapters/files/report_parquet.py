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

from crossmargin.adapters.files.report_json import chunk_bounds
from crossmargin.engine.report_columns import MarginColumns

Progress = Callable[[int], None]
# Snappy (Parquet's usual default): the float columns are mostly incompressible mantissas; zstd
# saved ~13 % of the positions file for ~40 % more CPU (1M-account bench book).
COMPRESSION = "snappy"
# Dictionary pages for the id columns only: trying them on float columns hashes every value
# before falling back to plain pages (~35 % of the write time).
DICTIONARY_COLUMNS = ["account_id", "instrument_id", "asset"]


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
    return pa.DictionaryArray.from_arrays(
        pa.array(codes.astype(np.int32)), pa.array(list(values), pa.string())
    )


def _tables(chunk: MarginColumns) -> tuple[pa.Table, pa.Table, pa.Table]:
    a = chunk.accounts
    ids = pa.array(list(a.account_id), pa.string())
    accounts = pa.table(
        {
            "account_id": ids,
            "equity_usd": a.equity_usd,
            "initial_margin_usd": a.initial_margin_usd,
            "maintenance_margin_usd": a.maintenance_margin_usd,
            "available_usd": a.available_usd,
            "margin_ratio": pa.array(a.margin_ratio, from_pandas=True),  # NaN (bankrupt) -> null
            "bankrupt": a.bankrupt,
            "below_maintenance": a.below_maintenance,
            "collateral_value_usd": a.collateral_value_usd,
            "n_positions": a.position_count,
            "n_collateral": a.collateral_count,
        }
    )
    p = chunk.positions
    owner = np.repeat(np.arange(a.n_accounts, dtype=np.int32), a.position_count)
    position_columns: dict[str, pa.Array | np.ndarray] = {
        "account_id": pa.DictionaryArray.from_arrays(pa.array(owner), ids),
        "instrument_id": _names(chunk.instrument_ids, p.instrument),
        "quantity": p.quantity,
        "entry_price": p.entry_price,
        "value_usd": p.value_usd,
        "unrealised_pnl_usd": p.unrealised_pnl_usd,
        "initial_margin_usd": p.initial_margin_usd,
        "maintenance_margin_usd": p.maintenance_margin_usd,
    }
    if p.isolated_equity_usd is not None:
        position_columns["isolated_equity_usd"] = p.isolated_equity_usd
    c = chunk.collateral
    holder = np.repeat(np.arange(a.n_accounts, dtype=np.int32), a.collateral_count)
    collateral = pa.table(
        {
            "account_id": pa.DictionaryArray.from_arrays(pa.array(holder), ids),
            "asset": _names(chunk.asset_symbols, c.asset),
            "balance": c.balance,
            "value_usd": c.value_usd,
            "haircut": c.haircut,
        }
    )
    return accounts, pa.table(position_columns), collateral


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
        for start, stop in chunk_bounds(columns.accounts.position_count) or [(0, 0)]:
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
