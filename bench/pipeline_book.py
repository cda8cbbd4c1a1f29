"""A seeded synthetic book as Parquet tables, for bench_pipeline.py and the pipeline tests.

    write_book(directory, accounts=200_000, positions_per_account=4, seed=7) -> book.yaml path

The book file takes the assets, instruments, market and model of examples/desk.yaml (Deribit
snapshot 2025-12-30, 12 instruments: spot, linear and inverse perpetuals, a dated future, six
inverse options on BTC and ETH; 4 collateral assets) and names two Parquet tables:

    positions.parquet   account (string), instrument (string), quantity (float64),
                        entry_price (float64, null for ~30 % of rows = today's mark)
    balances.parquet    account, asset, balance (1-2 assets per account)

Each account holds `positions_per_account` distinct instruments (<= 12), long or short, sized for
1,000-200,000 USD of notional each; collateral is 0.5 %-30 % of its gross notional, and entry prices
sit within ±5 % of the mark, so the book holds healthy, below-maintenance and bankrupt accounts.
Vectorised throughout (1 M accounts x 10 positions in a few seconds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

ROOT = Path(__file__).resolve().parents[1]
DESK = ROOT / "examples" / "desk.yaml"


def _desk() -> dict[str, Any]:
    desk: dict[str, Any] = yaml.safe_load(DESK.read_text(encoding="utf-8"))
    return desk


def _contract_value_usd(instrument: dict[str, Any], index_usd: dict[str, float]) -> float:
    """USD notional of one contract: inverse delta-one contracts are a USD face, the rest
    underlying units (options included)."""
    size = float(instrument.get("contract_size", 1.0))
    inverse_delta_one = instrument.get("settlement") == "inverse" and instrument["kind"] != "option"
    return size if inverse_delta_one else size * index_usd[instrument["underlying"]]


def _mark(instrument: dict[str, Any], index_usd: dict[str, float]) -> float:
    """Settlement-unit mark: given for options and the future, the index for the rest."""
    return float(instrument.get("mark_price", index_usd[instrument["underlying"]]))


def book_document(*, positions_file: str, balances_file: str) -> dict[str, Any]:
    desk = _desk()
    document = {
        key: desk[key] for key in ("valuation_time", "source", "market", "assets", "instruments", "model")
    }
    document["positions_file"] = positions_file
    document["balances_file"] = balances_file
    return document


def account_ids(n_accounts: int) -> pa.Array:
    """`acct-0000000`, ... as an Arrow string array (built by Arrow compute, no Python loop)."""
    import pyarrow.compute as pc

    numbers = pc.cast(pa.array(np.arange(n_accounts, dtype=np.int64)), pa.string())
    padded = pc.utf8_lpad(numbers, width=7, padding="0")
    return pc.binary_join_element_wise(pa.scalar("acct"), padded, "-")


def book_tables(*, accounts: int, positions_per_account: int, seed: int) -> tuple[pa.Table, pa.Table]:
    """(positions, balances) Arrow tables of the seeded book (module docstring)."""
    desk = _desk()
    instruments = desk["instruments"]
    n_instruments = len(instruments)
    if not 1 <= positions_per_account <= n_instruments:
        raise ValueError(f"positions_per_account must lie in [1, {n_instruments}]")
    index_usd = {str(k): float(v) for k, v in desk["market"]["index_prices"].items()}
    contract_usd = np.array([_contract_value_usd(i, index_usd) for i in instruments])
    mark = np.array([_mark(i, index_usd) for i in instruments])
    ids = np.array([i["id"] for i in instruments], dtype=object)
    rng = np.random.default_rng(seed)

    # Distinct instruments per account: the first k of a random permutation of the 12.
    chosen = np.argsort(rng.random((accounts, n_instruments)), axis=1)[:, :positions_per_account]
    instrument = chosen.ravel()
    owner = np.repeat(np.arange(accounts, dtype=np.int64), positions_per_account)
    n = instrument.size
    notional_usd = np.exp(rng.uniform(np.log(1_000.0), np.log(200_000.0), n))
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    quantity = np.round(sign * notional_usd / contract_usd[instrument], 3)
    quantity[quantity == 0.0] = 1.0
    entry = mark[instrument] * (1.0 + rng.uniform(-0.05, 0.05, n))
    entry_price = pa.array(entry, mask=rng.random(n) < 0.3)
    ids_arrow = account_ids(accounts)
    positions = pa.table(
        {
            "account": ids_arrow.take(pa.array(owner)),
            "instrument": pa.DictionaryArray.from_arrays(
                pa.array(instrument.astype(np.int32)), pa.array(ids.tolist())
            ).cast(pa.string()),
            "quantity": pa.array(quantity),
            "entry_price": entry_price,
        }
    )

    gross_usd = np.bincount(owner, weights=notional_usd, minlength=accounts)
    collateral_usd = gross_usd * np.exp(rng.uniform(np.log(0.005), np.log(0.3), accounts))
    symbols = [a["symbol"] for a in desk["assets"]]
    price = np.array([float(a.get("price_usd", index_usd.get(a["symbol"], 1.0))) for a in desk["assets"]])
    two = rng.random(accounts) < 0.5
    first = rng.integers(0, len(symbols), accounts)
    second = (first + rng.integers(1, len(symbols), accounts)) % len(symbols)
    holder = np.concatenate([np.arange(accounts), np.flatnonzero(two)])
    asset = np.concatenate([first, second[two]])
    share = np.where(two, 0.5, 1.0)
    usd = np.concatenate([collateral_usd * share, (collateral_usd * share)[two]])
    balance = np.round(usd / price[asset], 6)
    balances = pa.table(
        {
            "account": ids_arrow.take(pa.array(holder)),
            "asset": pa.DictionaryArray.from_arrays(pa.array(asset.astype(np.int32)), pa.array(symbols)).cast(
                pa.string()
            ),
            "balance": pa.array(balance),
        }
    )
    return positions, balances


def write_book(directory: Path, *, accounts: int, positions_per_account: int, seed: int) -> Path:
    """Write book.yaml, positions.parquet and balances.parquet into `directory`; return book.yaml."""
    directory.mkdir(parents=True, exist_ok=True)
    positions, balances = book_tables(
        accounts=accounts, positions_per_account=positions_per_account, seed=seed
    )
    pq.write_table(positions, directory / "positions.parquet")
    pq.write_table(balances, directory / "balances.parquet")
    book = directory / "book.yaml"
    document = book_document(positions_file="positions.parquet", balances_file="balances.parquet")
    book.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return book
