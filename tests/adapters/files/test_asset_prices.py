"""An asset priced twice in one book (assets[X].price_usd and market.index_prices.X) must agree:
a disagreement is refused naming both fields, never resolved silently."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossmargin.adapters.files import load_book
from crossmargin.errors import BookFileError
from tests.adapters.files.bad_books import asset, desk, write_book

BTC_INDEX_USD = 88528.93  # examples/desk.yaml market.index_prices.BTC


def test_asset_price_disagreeing_with_the_index_price_is_refused_naming_both(tmp_path: Path) -> None:
    book = desk()
    assert book["market"]["index_prices"]["BTC"] == BTC_INDEX_USD
    asset(book, "BTC")["price_usd"] = 88000.0
    path = write_book(tmp_path, book)
    with pytest.raises(BookFileError) as caught:
        load_book(path)
    assert caught.value.path == str(path)
    assert caught.value.field == "assets[BTC].price_usd"
    assert str(caught.value) == (
        f"{path}: assets[BTC].price_usd: 88000 disagrees with market.index_prices.BTC 88528.93"
    )


def test_asset_price_equal_to_the_index_price_is_accepted(tmp_path: Path) -> None:
    book = desk()
    asset(book, "BTC")["price_usd"] = BTC_INDEX_USD
    loaded = load_book(write_book(tmp_path, book))
    reference = load_book(write_book(tmp_path, desk(), name="reference.yaml"))
    btc = loaded.book.assets.index["BTC"]
    assert float(loaded.market.asset_prices(loaded.book.assets)[btc]) == BTC_INDEX_USD
    assert float(reference.market.asset_prices(reference.book.assets)[btc]) == BTC_INDEX_USD


def test_one_price_per_asset_is_taken_from_wherever_it_is_given(tmp_path: Path) -> None:
    """The example prices USDC by price_usd only and BTC by the index only: both load as written."""
    book = desk()
    assert "USDC" not in book["market"]["index_prices"]
    assert "price_usd" not in asset(book, "BTC")
    loaded = load_book(write_book(tmp_path, book))
    assets = loaded.book.assets
    prices = loaded.market.asset_prices(assets)
    assert float(prices[assets.index["USDC"]]) == 1.0
    assert float(prices[assets.index["BTC"]]) == BTC_INDEX_USD
