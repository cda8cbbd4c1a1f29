"""The daily price file as a PriceHistory: spot checks from ../shared/data/README.md."""

from __future__ import annotations

import numpy as np
import pytest

from crossmargin.adapters.history.prices import CsvPriceHistory, load_price_history, shared_price_history
from crossmargin.engine.ports import PriceHistorySource
from crossmargin.errors import InputError
from tests.conftest import shared_data_dir


def test_loads_every_symbol_with_known_closes() -> None:
    history = load_price_history(shared_data_dir() / "prices_daily_yahoo.csv")
    assert {"BTC", "ETH", "SOL", "USDC", "USDT"} <= set(history.symbols)
    row = int(np.flatnonzero(history.days == np.datetime64("2020-03-12"))[0])
    assert history.close_usd[row, history.column("BTC")] == pytest.approx(4970.79, abs=0.01)
    sol = history.close_usd[:, history.column("SOL")]
    first = history.days[np.flatnonzero(~np.isnan(sol))[0]]
    assert first == np.datetime64("2020-04-10")  # SOL's listing day: NaN before
    assert history.days[-1] == np.datetime64("2025-02-11")


def test_missing_file_is_an_input_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="CROSSMARGIN_DATA"):
        load_price_history(tmp_path / "nothing.csv")


def test_the_csv_source_reads_when_asked_and_says_whether_it_is_there(tmp_path) -> None:  # type: ignore[no-untyped-def]
    missing = CsvPriceHistory(path=tmp_path / "nothing.csv")  # naming a file reads nothing
    assert isinstance(missing, PriceHistorySource) and not missing.is_available()
    with pytest.raises(InputError, match=r"^history: .*CROSSMARGIN_DATA"):
        missing.price_history()
    small = tmp_path / "closes.csv"
    small.write_text(
        "date,symbol,close_usd\n2024-01-01,BTC,42000\n2024-01-02,BTC,43000\n2024-01-02,ETH,2300\n"
    )
    source = CsvPriceHistory(path=small)
    history = source.price_history()
    assert source.is_available() and history.symbols == ("BTC", "ETH")
    assert history.close_usd[:, 0].tolist() == [42_000.0, 43_000.0]
    assert np.isnan(history.close_usd[0, 1])


def test_the_shared_source_follows_crossmargin_data(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CROSSMARGIN_DATA", str(tmp_path))
    assert shared_price_history().path == tmp_path / "prices_daily_yahoo.csv"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("date,symbol,close_usd\n2025-01-01,BTC,94000\n2025-01-02,BTC\n", r"line 3: 2 fields where the header has 3"),
        ("date,symbol,close_usd\n2025-01-01,BTC,94000\n2025-01-02,BTC,n/a\n", r"line 3: close_usd 'n/a' is not a number"),
        ("date,close_usd\n2025-01-01,94000\n", r"missing columns symbol"),
        ("date,symbol,close_usd\n", r"no rows"),
        ("date,symbol,close_usd\n2025-01-01,BTC,1\n2025-01-01,BTC,2\n", r"duplicate \(date, symbol\) rows"),
    ],
)
def test_a_bad_history_file_is_refused_naming_the_line(tmp_path, body: str, problem: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "closes.csv"
    path.write_text(body)
    with pytest.raises(InputError, match=problem):
        load_price_history(path)


def test_columns_are_found_by_name_in_any_order(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "closes.csv"
    path.write_text("close_usd,volume_usd,symbol,date\n94000.5,1,BTC,2025-01-02\n3300.25,2,ETH,2025-01-01\n")
    history = load_price_history(path)
    assert history.symbols == ("BTC", "ETH")
    assert history.days.tolist() == [np.datetime64("2025-01-01"), np.datetime64("2025-01-02")]
    np.testing.assert_array_equal(history.close_usd, [[np.nan, 3300.25], [94000.5, np.nan]])
