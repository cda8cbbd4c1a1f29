"""VaR models on the real daily history (../shared/data): the worst historical scenarios are the
known crashes, and filtered HS reacts to a volatility jump faster than plain HS."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from crossmargin.adapters.history.prices import load_price_history
from crossmargin.core.instruments import Instrument, InstrumentKind
from crossmargin.core.margin.var import VarMargin, explain_var_account, var_preset
from crossmargin.core.market import MarketState
from crossmargin.core.var.history import NS_PER_DAY
from tests.builders import at_par, book_from_rows, usd_asset
from tests.conftest import shared_data_dir


def _end_of(day: str) -> int:
    return (int(np.datetime64(day, "D").astype(np.int64)) + 1) * NS_PER_DAY


def _long_btc(day: str, price: float):  # type: ignore[no-untyped-def]
    book = book_from_rows(
        assets=[usd_asset("USDC")],
        instruments=[Instrument(id="BTC-PERP", kind=InstrumentKind.PERPETUAL, underlying="BTC")],
        balances={"long": {"USDC": 10_000.0}},
        positions=[("long", "BTC-PERP", 1.0, price)],
    )
    market = MarketState.build(book.instruments, valuation_ns=_end_of(day), index_prices={"BTC": price})
    market = at_par(market, book)
    return book, market


@pytest.fixture(scope="module")
def history():  # type: ignore[no-untyped-def]
    return load_price_history(shared_data_dir() / "prices_daily_yahoo.csv")


def test_march_2020_is_the_worst_historical_scenario(history) -> None:  # type: ignore[no-untyped-def]
    book, market = _long_btc("2020-12-31", 29_000.0)
    model = VarMargin(dataclasses.replace(var_preset("hs-es975"), window_days=1_000), history)
    e = explain_var_account(model, book, market, 0)
    worst_days = [e.scenarios.labels[s].rsplit(" ", 1)[-1] for s in e.tail[:3]]
    assert worst_days[0] in ("2020-03-12", "2020-03-13"), worst_days
    # The 2-day windows ending 12 and 13 March 2020 (BTC -39 % over two days) both lead the tail.
    assert {"2020-03-12", "2020-03-13"} <= set(worst_days)
    worst = e.tail[0]
    assert e.scenarios.price_factor[worst, e.scenarios.factor_index("BTC")] < 0.7


def test_filtered_hs_reacts_faster_than_hs_to_the_march_2020_jump(history) -> None:  # type: ignore[no-untyped-def]
    """Long 1 BTC: requirement on 2020-03-16 over that on 2020-03-06 (before the crash)."""
    ratios = {}
    for preset in ("hs-es975", "fhs-es975"):
        model = VarMargin(var_preset(preset), history)
        before_book, before = _long_btc("2020-03-06", 9_100.0)
        after_book, after = _long_btc("2020-03-16", 5_000.0)
        # Per USD of exposure, so the lower price after the crash does not hide the reaction.
        im_before = model.evaluate(before_book, before).initial_margin_usd[0] / 9_100.0
        im_after = model.evaluate(after_book, after).initial_margin_usd[0] / 5_000.0
        ratios[preset] = im_after / im_before
    assert ratios["fhs-es975"] > 1.5 * ratios["hs-es975"], ratios
    assert ratios["fhs-es975"] > 2.0, ratios
