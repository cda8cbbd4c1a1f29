"""The crowding add-on inside the long-lived engine: incremental re-margining after ticks and
account events equals a full recompute bit for bit (the frozen state makes it per-account)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from crossmargin.core.margin import CrossMargin
from crossmargin.core.margin.crowding import CrowdedMargin
from crossmargin.engine.crowding_run import crowded_model, market_crowding_at
from crossmargin.engine.risk_engine import AccountUpdate, PriceTick, RiskEngine
from tests.core.margin.test_crowding import HISTORY, MARKET, PARAMS, crowded_book
from tests.engine.test_crowding_backtest import CRASH_ROW, synthetic_crash


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


def test_crowding_market_signals_known_at_the_valuation_time() -> None:
    """Valued at noon on the crash day, the model sees day 149's close: OI 150 over the mean of
    days 119..148 (21·100 + 9·150)/30 = 115, and funding 0.01 %/8 h = 10.95 % a year. A valuation
    after the data ends sees nothing (NaN), not a stale value."""
    _, oi, funding = synthetic_crash()
    crash_day = oi.panel.days[CRASH_ROW]
    noon_ns = int(crash_day.astype("datetime64[ns]").astype(np.int64)) + 12 * 3_600 * 10**9
    seen = market_crowding_at(noon_ns, ("BTC", "ETH"), PARAMS, open_interest=oi, funding=funding)
    assert seen.open_interest_ratio[0] == pytest.approx(150.0 / 115.0, rel=1e-12)
    assert seen.funding_apr[0] == pytest.approx(0.0001 * 3 * 365, rel=1e-9)
    assert np.isnan(seen.open_interest_ratio[1]) and np.isnan(seen.funding_apr[1])
    later = market_crowding_at(
        noon_ns + 400 * 86_400 * 10**9, ("BTC",), PARAMS, open_interest=oi, funding=funding
    )
    assert np.isnan(later.open_interest_ratio[0]) and np.isnan(later.funding_apr[0])


def test_crowded_model_wires_history_into_the_state() -> None:
    book = crowded_book()
    _, oi, funding = synthetic_crash()
    market = dataclasses.replace(
        MARKET, valuation_ns=int(oi.panel.days[CRASH_ROW].astype("datetime64[ns]").astype(np.int64))
    )
    model = crowded_model(CrossMargin(), book, market, PARAMS, open_interest=oi, funding=funding)
    assert model.state is not None
    assert model.state.open_interest_ratio[0] == pytest.approx(150.0 / 115.0, rel=1e-12)
    assert (
        model.evaluate(book, market).initial_margin_usd[0]
        > CrossMargin().evaluate(book, market).initial_margin_usd[0]
    )
