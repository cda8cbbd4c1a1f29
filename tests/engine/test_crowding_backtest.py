"""The crowding add-on's event-study back-test: hand-built history, no look-ahead, and the real
shared history (the add-on is raised before large liquidation days, a volatility margin after)."""

from __future__ import annotations

import numpy as np
import pytest

from crossmargin.adapters.history.market_series import shared_funding, shared_open_interest
from crossmargin.adapters.history.prices import shared_price_history
from crossmargin.core.margin.crowding import CrowdingParams
from crossmargin.core.market_history import DailyPanel, funding_apr, open_interest_ratio
from crossmargin.engine.crowding_backtest import (
    CrowdingBacktestParams,
    pick_events,
    run_crowding_backtest,
    symbol_series,
)
from crossmargin.engine.memory import ArrayPriceHistory, GivenFunding, GivenOpenInterest
from tests.conftest import shared_data_dir

N_DAYS = 200
CRASH_ROW = 150


def synthetic_crash() -> tuple[ArrayPriceHistory, GivenOpenInterest, GivenFunding]:
    """OI flat at 100 until day 140, then 150 (1.5x its trailing mean) up to the crash on day 150,
    when it falls to 90 and the price drops 20 %; funding 0.01 %/8h (10.95 % a year) throughout."""
    days = np.arange(np.datetime64("2024-01-01"), np.datetime64("2024-01-01") + N_DAYS)
    rng = np.random.default_rng(3)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, N_DAYS)))
    close[CRASH_ROW:] *= 0.8
    oi = np.full(N_DAYS, 100.0)
    oi[140:CRASH_ROW] = 150.0
    oi[CRASH_ROW:] = 90.0
    funding = np.full(N_DAYS, 0.0001)
    prices = ArrayPriceHistory.from_arrays(days=days, symbols=("BTC",), close_usd=close[:, None])
    return (
        prices,
        GivenOpenInterest(panel=DailyPanel(days=days, symbols=("BTC",), values=oi[:, None])),
        GivenFunding(panel=DailyPanel(days=days, symbols=("BTC",), values=funding[:, None])),
    )


def test_crowding_backtest_hand_built_crash() -> None:
    """The evening before the crash (day 149) OI / mean(days 119..148) = 150 / ((21·100 + 9·150)
    / 30) = 1.3043: ramp (1.3043 - 1.15) / 0.45 = 0.3430; funding 10.95 % a year: ramp 0.0238.
    Long score (0.3·0.0238 + 0.3·0.3430) / 0.6 = 0.1834, rate 0.05·0.1834 = 0.917 % in force on
    the crash day; after it OI is below its mean: 0.05·0.0238/2 = 0.0594 %."""
    prices, oi, funding = synthetic_crash()
    params = CrowdingBacktestParams(events_per_symbol=1, permutations=200)
    run = run_crowding_backtest(prices=prices, open_interest=oi, funding=funding, params=params)
    (event,) = run.events
    assert event.row == CRASH_ROW and event.side == "long"
    ratio = 150.0 / ((21 * 100.0 + 9 * 150.0) / 30.0)
    oi_ramp = (ratio - 1.15) / 0.45
    funding_ramp = (0.0001 * 3 * 365 - 0.10) / 0.40
    expected = 0.05 * (0.3 * funding_ramp + 0.3 * oi_ramp) / 0.6
    assert event.addon_rate_in_force == pytest.approx(expected, rel=1e-9)
    assert event.addon_rate_after == pytest.approx(0.05 * funding_ramp / 2.0, rel=1e-9)
    assert run.addon.raised_before == 1 and run.addon.lowered_before == 0
    assert run.addon.peak_offset_days <= 0


def test_crowding_rates_use_no_future_data() -> None:
    """Changing every value after day t leaves every rate in force up to day t + 1 unchanged."""
    prices, oi, funding = synthetic_crash()
    days = oi.panel.days
    params = CrowdingBacktestParams()
    history = prices.price_history()
    base = symbol_series("BTC", history, oi.panel.values[:, 0], funding.panel.values[:, 0], days, params)
    t = 120
    oi_changed = oi.panel.values[:, 0].copy()
    oi_changed[t + 1 :] *= 3.0
    funding_changed = funding.panel.values[:, 0].copy()
    funding_changed[t + 1 :] = 0.01
    moved = symbol_series("BTC", history, oi_changed, funding_changed, days, params)
    np.testing.assert_array_equal(moved.addon_rate_long[: t + 2], base.addon_rate_long[: t + 2])
    assert not np.array_equal(moved.addon_rate_long[t + 2 :], base.addon_rate_long[t + 2 :])


def test_crowding_signals_hand_computed() -> None:
    """OI ratio: 4 / mean(1, 2, 3) = 2; funding EWMA with half-life 1 day of (0, 0.001):
    0.5·0 + 0.5·0.001 = 0.0005 per 8 h = 0.5475 a year."""
    ratio = open_interest_ratio(np.array([1.0, 2.0, 3.0, 4.0]), window_days=3)
    np.testing.assert_array_equal(np.isnan(ratio), [True, True, True, False])
    assert ratio[3] == pytest.approx(2.0)
    annual = funding_apr(np.array([0.0, 0.001]), halflife_days=1.0)
    assert annual[1] == pytest.approx(0.0005 * 3 * 365)


def test_crowding_pick_events_declusters() -> None:
    measure = np.array([0.0, -5.0, -4.0, 0.0, 0.0, -3.0, 0.0])
    rows = pick_events(measure, np.ones(7, dtype=bool), count=2, separation_days=3)
    np.testing.assert_array_equal(rows, [1, 5])


def test_crowding_backtest_on_real_history_leads_liquidation_days() -> None:
    """Binance coin-margined open interest 2021-09..2025-02 (7 coins), 10 largest OI falls each:
    the add-on in force on the event days is above its unconditional mean and above what follows
    (sign test and permutation test), while an EWMA volatility margin rises after them."""
    data = shared_data_dir("open_interest_binance_coinm_perp_daily_coinalyze.csv")
    run = run_crowding_backtest(
        prices=shared_price_history(data),
        open_interest=shared_open_interest(data),
        funding=shared_funding(data),
        params=CrowdingBacktestParams(crowding=CrowdingParams()),
    )
    assert len(run.events) == 70
    lead = run.addon
    assert lead.in_force_mean > 1.5 * lead.unconditional_mean
    assert lead.before_mean > 3.0 * lead.after_mean
    assert lead.raised_before > 5 * lead.lowered_before
    assert lead.sign_test_p_value < 0.001
    assert lead.permutation_p_value < 0.05
    assert lead.peak_offset_days <= 0
    vol = run.volatility
    assert vol.after_mean > vol.before_mean
    assert vol.lowered_before > vol.raised_before
    assert run.exceeded_with_addon <= run.exceeded_base


def test_crowding_ewma_forward_fills_missing_days() -> None:
    """Half-life 1 day (λ = 1/2) on (NaN, 0, 1, NaN): NaN, 0, 0.5, then the last value 1 again:
    0.5·1 + 0.5·0.5 = 0.75 (funding in 8-hour units, annualised × 1095)."""
    got = funding_apr(np.array([np.nan, 0.0, 1.0, np.nan]), halflife_days=1.0) / (3 * 365)
    assert np.isnan(got[0])
    np.testing.assert_allclose(got[1:], [0.0, 0.5, 0.75], rtol=1e-12)
