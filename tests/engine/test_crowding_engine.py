"""The crowding add-on inside the long-lived engine: incremental re-margining after ticks and
account events equals a full recompute bit for bit (the frozen state makes it per-account)."""

from __future__ import annotations

import numpy as np
import pytest

from crossmargin.core.margin import CrossMargin
from crossmargin.core.margin.crowding import CrowdedMargin
from crossmargin.engine.risk_engine import AccountUpdate, PriceTick, RiskEngine
from tests.core.margin.test_crowding import HISTORY, MARKET, PARAMS, crowded_book


def test_crowding_engine_incremental_equals_full_recompute() -> None:
    book = crowded_book()
    model = CrowdedMargin.measured(CrossMargin(), book, MARKET, PARAMS, HISTORY)
    engine = RiskEngine(book, MARKET, model, full_recompute_fraction=1.0)
    engine.on_tick(PriceTick(prices_usd={"BTC": 45_000.0}))
    engine.on_account(
        AccountUpdate(
            account_id="b",
            instrument_ids=["BTC-PERP"],
            quantity=[1.5],
            entry_price=[45_000.0],
            balances={"USDC": 20_000.0},
        )
    )
    incremental = engine.result.initial_margin_usd.copy()
    full = model.evaluate(engine.book, engine.market).initial_margin_usd
    np.testing.assert_array_equal(incremental, full)
    # The add-on moved with the price: a's long exposure is now 2 BTC · 45k = 90k, rate unchanged.
    base = CrossMargin().evaluate(engine.book, engine.market).initial_margin_usd
    # Shares are in BTC, so a's is still 2 / 4 = 0.5 after the price move.
    state = model.state
    assert state is not None
    assert incremental[0] - base[0] == pytest.approx(90_000.0 * 0.05 * state.score_long[0] * 2.0, rel=1e-12)
