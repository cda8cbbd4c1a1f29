"""Positions and balances tables read columnar: Parquet dictionaries and CSV text give the same
book; unused dictionary entries create no account; numeric ids stay text; errors name the row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from crossmargin.adapters.files import load_book
from crossmargin.core.book import Book
from crossmargin.errors import BookFileError
from tests.adapters.files.bad_books import DESK_CSV

EXAMPLES = DESK_CSV.parent


def _desk_with(tmp_path: Path, positions: pa.Table, balances: pa.Table, suffix: str) -> Path:
    for table, name in ((positions, "positions"), (balances, "balances")):
        path = tmp_path / f"{name}{suffix}"
        if suffix == ".parquet":
            pq.write_table(table, path)
        else:
            pacsv.write_csv(table, path)
    text = DESK_CSV.read_text().replace("desk_positions.csv", f"positions{suffix}")
    book = tmp_path / "book.yaml"
    book.write_text(text.replace("desk_balances.csv", f"balances{suffix}"))
    return book


def _desk_tables() -> tuple[pa.Table, pa.Table]:
    options = pacsv.ConvertOptions(strings_can_be_null=True)
    return (
        pacsv.read_csv(EXAMPLES / "desk_positions.csv", convert_options=options),
        pacsv.read_csv(EXAMPLES / "desk_balances.csv"),
    )


def _same_book(a: Book, b: Book) -> None:
    assert a.account_ids == b.account_ids
    np.testing.assert_array_equal(a.positions.indptr, b.positions.indptr)
    np.testing.assert_array_equal(a.positions.indices, b.positions.indices)
    np.testing.assert_array_equal(a.positions.data, b.positions.data)
    np.testing.assert_array_equal(a.entry_price, b.entry_price)
    np.testing.assert_array_equal(a.balances, b.balances)


def test_parquet_dictionaries_and_csv_text_give_the_same_book(tmp_path: Path) -> None:
    positions, balances = _desk_tables()
    csv_book = load_book(DESK_CSV).book
    for suffix in (".parquet", ".csv"):
        shuffled = positions.take(pa.array(np.random.default_rng(3).permutation(positions.num_rows)))
        directory = tmp_path / suffix.strip(".")
        directory.mkdir()
        _same_book(load_book(_desk_with(directory, shuffled, balances, suffix)).book, csv_book)
    # Categorical columns (Parquet dictionary pages, with unused categories) too.
    accounts = pa.DictionaryArray.from_arrays(
        pa.array(_codes(positions)), pa.array([*_names(positions), "ghost-account"])
    )
    categorical = positions.set_column(0, "account", accounts)
    directory = tmp_path / "categorical"
    directory.mkdir()
    book = load_book(_desk_with(directory, categorical, balances, ".parquet")).book
    assert "ghost-account" not in book.account_ids
    _same_book(book, csv_book)


def _names(positions: pa.Table) -> list[str]:
    return sorted(set(positions.column("account").to_pylist()))


def _codes(positions: pa.Table) -> np.ndarray:
    names = _names(positions)
    return np.array([names.index(a) for a in positions.column("account").to_pylist()], dtype=np.int32)


def test_numeric_account_ids_stay_text(tmp_path: Path) -> None:
    positions = pa.table(
        {"account": [1001, 1002], "instrument": ["BTC-PERPETUAL"] * 2, "quantity": [1.0, -2.0]}
    )
    balances = pa.table({"account": [1001], "asset": ["USDC"], "balance": [5000.0]})
    book = load_book(_desk_with(tmp_path, positions, balances, ".parquet")).book
    assert book.account_ids == ("hedger", "1001", "1002")


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_an_unknown_instrument_is_named_with_its_row(tmp_path: Path, suffix: str) -> None:
    positions = pa.table(
        {
            "account": ["a", "b", "c"],
            "instrument": ["BTC-PERPETUAL", "BTC-PERPETUAL", "DOGE-PERP"],
            "quantity": [1.0] * 3,
        }
    )
    balances = pa.table({"account": ["a"], "asset": ["USDC"], "balance": [1.0]})
    with pytest.raises(BookFileError) as error:
        load_book(_desk_with(tmp_path, positions, balances, suffix))
    assert error.value.field == "instrument"
    assert error.value.problem == "unknown instrument 'DOGE-PERP' (data row 3)"


def test_a_null_account_in_parquet_is_an_empty_value(tmp_path: Path) -> None:
    positions = pa.table(
        {"account": ["a", None], "instrument": ["BTC-PERPETUAL"] * 2, "quantity": [1.0, 2.0]}
    )
    balances = pa.table({"account": ["a"], "asset": ["USDC"], "balance": [1.0]})
    with pytest.raises(BookFileError, match=r"empty value \(data row 2\)"):
        load_book(_desk_with(tmp_path, positions, balances, ".parquet"))


def test_books_built_from_shuffled_rows_are_identical() -> None:
    """Book.from_arrays sorts one (account, instrument) key, or skips the sort when in order."""
    book = load_book(DESK_CSV).book
    rows = np.repeat(np.arange(book.n_accounts), np.diff(book.positions.indptr))
    order = np.random.default_rng(5).permutation(rows.size)
    for take in (np.arange(rows.size), order):  # in canonical order, and shuffled
        rebuilt = Book.from_arrays(
            account_ids=book.account_ids,
            assets=book.assets,
            instruments=book.instruments,
            account_index=rows[take],
            instrument_index=book.positions.indices[take],
            quantity=book.positions.data[take],
            entry_price=book.entry_price[take],
            balances=book.balances,
        )
        _same_book(rebuilt, book)
