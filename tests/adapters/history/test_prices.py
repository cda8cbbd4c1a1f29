"""The daily price file as a PriceHistory: spot checks from ../shared/data/README.md."""

from __future__ import annotations

import numpy as np
import pytest

from crossmargin.adapters.history.prices import load_price_history
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
