"""Bad book files, shared by the loader and CLI tests: each case writes one broken book into a
directory and says which file and field the error must name.

Every case starts from the bundled example (examples/desk.yaml) and breaks one thing, so a case
fails for exactly the reason it names.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
DESK = EXAMPLES / "desk.yaml"
DESK_CSV = EXAMPLES / "desk_csv.yaml"


def desk() -> dict[str, Any]:
    """A fresh copy of the example book as a plain dict."""
    document: dict[str, Any] = yaml.safe_load(DESK.read_text(encoding="utf-8"))
    return document


def instrument(book: dict[str, Any], instrument_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(i for i in book["instruments"] if i["id"] == instrument_id)
    return found


def account(book: dict[str, Any], account_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(a for a in book["accounts"] if a["id"] == account_id)
    return found


def asset(book: dict[str, Any], symbol: str) -> dict[str, Any]:
    found: dict[str, Any] = next(a for a in book["assets"] if a["symbol"] == symbol)
    return found


def write_book(directory: Path, book: dict[str, Any], name: str = "book.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(book, sort_keys=False), encoding="utf-8")
    return path


@dataclass(frozen=True)
class BadBook:
    """write(directory) -> (book path to load, path of the file the error must name)."""

    name: str
    write: Callable[[Path], tuple[Path, Path]]
    field: str
    problem: str  # a fragment of the problem text


def _yaml_case(name: str, mutate: Mutation, field: str, problem: str) -> BadBook:
    def write(directory: Path) -> tuple[Path, Path]:
        book = desk()
        mutate(book)
        path = write_book(directory, book)
        return path, path

    return BadBook(name, write, field, problem)


Mutation = Callable[[dict[str, Any]], None]


def _set(target: Callable[[dict[str, Any]], dict[str, Any]], key: str, value: Any) -> Mutation:
    def mutate(book: dict[str, Any]) -> None:
        target(book)[key] = value

    return mutate


def _append(target: Callable[[dict[str, Any]], list[Any]], item: Any) -> Mutation:
    def mutate(book: dict[str, Any]) -> None:
        target(book).append(copy.deepcopy(item))

    return mutate


def _nan_price(directory: Path) -> tuple[Path, Path]:
    book = desk()
    instrument(book, "BTC-27MAR26")["mark_price"] = math.nan
    path = write_book(directory, book)
    assert "mark_price: .nan" in path.read_text(encoding="utf-8")  # YAML's NaN spelling
    return path, path


def _malformed_yaml(directory: Path) -> tuple[Path, Path]:
    path = directory / "book.yaml"
    text = DESK.read_text(encoding="utf-8").replace(
        "- {id: BTC-USDC, kind: spot, underlying: BTC}", "- {id: BTC-USDC, kind: spot, underlying: BTC"
    )
    assert text != DESK.read_text(encoding="utf-8")
    path.write_text(text, encoding="utf-8")
    return path, path


def _csv_case(name: str, table: str, field: str, problem: str, *, kind: str = "positions") -> BadBook:
    """The CSV example with its positions (or balances) table replaced by `table`."""

    def write(directory: Path) -> tuple[Path, Path]:
        book: dict[str, Any] = yaml.safe_load(DESK_CSV.read_text(encoding="utf-8"))
        for other in ("desk_positions.csv", "desk_balances.csv"):
            (directory / other).write_text((EXAMPLES / other).read_text(encoding="utf-8"), encoding="utf-8")
        bad = directory / f"bad_{kind}.csv"
        bad.write_text(table, encoding="utf-8")
        book[f"{kind}_file"] = bad.name
        return write_book(directory, book), bad

    return BadBook(name, write, field, problem)


BAD_BOOKS: tuple[BadBook, ...] = (
    BadBook("nan-price", _nan_price, "instruments[BTC-27MAR26].mark_price", "finite"),
    _yaml_case(
        "negative-mark-price",
        _set(lambda b: instrument(b, "BTC-27MAR26"), "mark_price", -5.0),
        "instruments[BTC-27MAR26].mark_price",
        "greater than or equal to 0",
    ),
    _yaml_case(
        "negative-index-price",
        _set(lambda b: b["market"]["index_prices"], "SOL", -125.0),
        "market.index_prices.SOL",
        "must be at least 1e-12 (got -125.0)",
    ),
    _yaml_case(
        "unknown-collateral-asset",
        _set(lambda b: account(b, "directional")["collateral"], "DOGE", 10.0),
        "accounts[directional].collateral",
        "unknown asset 'DOGE'",
    ),
    _yaml_case(
        "unknown-position-instrument",
        _append(lambda b: account(b, "directional")["positions"], {"instrument": "XRP-PERP", "quantity": 1}),
        "accounts[directional].positions[2].instrument",
        "unknown instrument 'XRP-PERP'",
    ),
    _yaml_case(
        "expired-option",
        _set(lambda b: instrument(b, "BTC-30JAN26-80000-P"), "expiry", "2025-12-26T08:00:00Z"),
        "instruments[BTC-30JAN26-80000-P].expiry",
        "expired",
    ),
    _yaml_case(
        "duplicate-instrument-id",
        _append(lambda b: b["instruments"], {"id": "BTC-USDC", "kind": "spot", "underlying": "BTC"}),
        "instruments.id",
        "duplicate instrument 'BTC-USDC'",
    ),
    _yaml_case(
        "duplicate-account-id",
        _append(lambda b: b["accounts"], {"id": "vol-seller"}),
        "accounts.id",
        "duplicate account 'vol-seller'",
    ),
    _yaml_case(
        "negative-implied-vol",
        _set(lambda b: instrument(b, "ETH-30JAN26-2600-P"), "implied_vol", -0.2),
        "instruments[ETH-30JAN26-2600-P].implied_vol",
        "greater than 0",
    ),
    _yaml_case(
        "haircut-one",
        _set(lambda b: asset(b, "BTC")["haircut_tiers"][1], "haircut", 1.0),
        "assets[BTC].haircut_tiers[1].haircut",
        "less than 1",
    ),
    _yaml_case(
        "haircut-negative",
        _set(lambda b: asset(b, "BTC")["haircut_tiers"][0], "haircut", -0.1),
        "assets[BTC].haircut_tiers[0].haircut",
        "greater than or equal to 0",
    ),
    _yaml_case(
        "nan-quantity",
        _set(lambda b: account(b, "directional")["positions"][0], "quantity", math.nan),
        "accounts[directional].positions[0].quantity",
        "finite",
    ),
    _yaml_case(
        "zero-entry-price-perp",
        _set(lambda b: account(b, "directional")["positions"][0], "entry_price", 0.0),
        "accounts[directional].positions[0].entry_price",
        "> 0",
    ),
    _yaml_case(
        "naive-valuation-time",
        _set(lambda b: b, "valuation_time", "2025-12-30T17:31:15"),
        "valuation_time",
        "timezone",
    ),
    _yaml_case(
        "unknown-key",
        _set(lambda b: instrument(b, "BTC-USDC"), "strik", 1.0),
        "instruments[BTC-USDC].strik",
        "Extra inputs are not permitted",
    ),
    BadBook("malformed-yaml", _malformed_yaml, "line 89", "malformed"),
    _csv_case(
        "csv-missing-column", "account,instrument,qty\nhedger,BTC-PERPETUAL,1\n", "quantity", "missing column"
    ),
    _csv_case(
        "csv-unknown-instrument",
        "account,instrument,quantity\nhedger,XRP-PERP,1\n",
        "instrument",
        "unknown instrument 'XRP-PERP'",
    ),
    _csv_case(
        "csv-empty-account",
        "account,instrument,quantity\nhedger,BTC-PERPETUAL,1\n,BTC-USDC-PERP,2\n",
        "account",
        "empty value (data row 2)",
    ),
    _csv_case(
        "csv-nan-quantity",
        "account,instrument,quantity\nhedger,BTC-PERPETUAL,NaN\n",
        "quantity",
        "must be finite",
    ),
    _csv_case(
        "csv-text-quantity",
        "account,instrument,quantity\nhedger,BTC-PERPETUAL,1\nhedger,BTC-USDC-PERP,lots\n",
        "quantity",
        "not a number: 'lots' (data row 2)",
    ),
    _csv_case(
        "csv-negative-entry-price",
        "account,instrument,quantity,entry_price\nhedger,BTC-PERPETUAL,1,-5\n",
        "entry_price",
        "> 0",
    ),
    _csv_case(
        "csv-ragged-row",
        "account,instrument,quantity\nhedger,BTC-PERPETUAL,1,2\n",
        "file",
        "Expected 3 columns",
    ),
    _csv_case(
        "csv-unknown-balance-asset",
        "account,asset,balance\nhedger,DOGE,1\n",
        "asset",
        "unknown asset 'DOGE'",
        kind="balances",
    ),
    _csv_case(
        "csv-missing-balance-column",
        "account,asset\nhedger,BTC\n",
        "balance",
        "missing column",
        kind="balances",
    ),
)
