"""Synthetic books as Parquet (`crossmargin synth`): DIR/synth.json (the spec: instruments,
assets and market are rebuilt from it), DIR/balances.parquet (one row per account: USDC, USDT,
BTC, ETH units) and DIR/positions.parquet (account, instrument, quantity, entry_price; sorted by
account). Written block by block (a 10M-account book never sits in memory) into a temporary
directory renamed at the end; read back whole or by account range (row-group filters), which is
how a Dask worker loads only its shard."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crossmargin.adapters.files.staging import cannot_write, staging_beside
from crossmargin.core.book import Book
from crossmargin.core.synthetic import COLLATERAL, SynthArrays, SynthSpec, synth_arrays, synth_book
from crossmargin.errors import InputError

BLOCK_ACCOUNTS = 1 << 20  # accounts generated and written per row group


def write_synth(spec: SynthSpec, out: Path, *, progress: Callable[[int, int], None] | None = None) -> Path:
    """Generate the book of `spec` into `out` (replaced whole, or left untouched on error)."""
    out = Path(out)
    tmp = staging_beside(out)
    try:
        balance_schema = pa.schema([(s, pa.float64()) for s in COLLATERAL])
        position_schema = pa.schema([("account", pa.int64()), ("instrument", pa.int16()),
                                     ("quantity", pa.float64()), ("entry_price", pa.float64())])  # fmt: skip
        with (
            pq.ParquetWriter(tmp / "balances.parquet", balance_schema) as balances,
            pq.ParquetWriter(tmp / "positions.parquet", position_schema) as positions,
        ):
            for lo in range(0, spec.n_accounts, BLOCK_ACCOUNTS):
                count = min(BLOCK_ACCOUNTS, spec.n_accounts - lo)
                a = synth_arrays(spec, first_account=lo, n_accounts=count)
                balances.write_table(
                    pa.table({s: a.balances[:, k] for k, s in enumerate(COLLATERAL)}, schema=balance_schema)
                )
                table = {
                    "account": a.account_index + lo,
                    "instrument": a.instrument_index.astype(np.int16),
                    "quantity": a.quantity,
                    "entry_price": a.entry_price,
                }
                positions.write_table(pa.table(table, schema=position_schema))
                if progress is not None:
                    progress(lo + count, spec.n_accounts)
        (tmp / "synth.json").write_text(
            json.dumps(dataclasses.asdict(spec), indent=2) + "\n", encoding="utf-8"
        )
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except OSError as error:  # no permission, a full disk: refused naming --out, nothing left
        shutil.rmtree(tmp, ignore_errors=True)
        raise cannot_write(out, error) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def is_synth_dir(path: Path) -> bool:
    return Path(path).is_dir() and (Path(path) / "synth.json").is_file()


def read_spec(directory: Path) -> SynthSpec:
    path = Path(directory) / "synth.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return SynthSpec(**raw)
    except (OSError, ValueError, TypeError) as error:
        raise InputError(str(path), f"not a synthetic book spec: {error}") from None


def read_synth(directory: Path, *, first_account: int = 0, n_accounts: int | None = None) -> Book:
    """The accounts [first_account, first_account + n_accounts) of a synthetic book directory."""
    directory = Path(directory)
    spec = read_spec(directory)
    count = spec.n_accounts - first_account if n_accounts is None else n_accounts
    last = first_account + count
    balances = pq.read_table(directory / "balances.parquet").slice(first_account, count)
    positions = pq.read_table(
        directory / "positions.parquet", filters=[("account", ">=", first_account), ("account", "<", last)]
    )
    arrays = SynthArrays(
        balances=np.column_stack([balances.column(s).to_numpy() for s in COLLATERAL]),
        account_index=positions.column("account").to_numpy().astype(np.int64) - first_account,
        instrument_index=positions.column("instrument").to_numpy().astype(np.int64),
        quantity=positions.column("quantity").to_numpy(),
        entry_price=positions.column("entry_price").to_numpy(),
    )
    return synth_book(spec, arrays, first_account=first_account)
