"""Scenario generators on synthetic returns: HS sums, EWMA recursion, filtering, Monte Carlo."""

from __future__ import annotations

import numpy as np
import pytest

from crossmargin.core.var.generators import (
    ewma_volatility,
    filtered_moves,
    historical_moves,
    monte_carlo_moves,
    var_scenario_set,
)
from crossmargin.core.var.history import horizon_log_returns
from tests.core.var.synthetic import synthetic_history


def test_overlapping_horizon_returns_and_gaps() -> None:
    daily = np.array([[0.01], [0.02], [-0.03], [np.nan], [0.05]])
    two = horizon_log_returns(daily, 2)
    assert two[:2, 0] == pytest.approx([0.03, -0.01])
    assert np.isnan(two[2:4, 0]).all()  # windows touching the gap


def test_historical_moves_label_the_last_day_of_each_window() -> None:
    history = synthetic_history()
    daily = history.log_returns()
    moves = historical_moves(daily, history.days[1:], horizon_days=2)
    assert moves.n_scenarios == daily.shape[0] - 1
    assert moves.log_move[0] == pytest.approx(daily[0] + daily[1])
    assert moves.end_day[0] == history.days[2]
    assert moves.labels[0].endswith(str(history.days[2]))


def test_ewma_recursion_and_filtered_scaling() -> None:
    history = synthetic_history()
    daily = history.log_returns()[:, :2]
    vol = ewma_volatility(daily, decay=0.94)
    assert vol.shape == (daily.shape[0] + 1, 2)
    assert vol[5, 0] ** 2 == pytest.approx(0.94 * vol[4, 0] ** 2 + 0.06 * daily[4, 0] ** 2)
    moves = filtered_moves(daily, history.days[1:], vol, horizon_days=1)
    assert moves.log_move[10] == pytest.approx(daily[10] / vol[10] * vol[-1])
    # The regime switch (vol 3 % -> 7 %) shows in today's EWMA forecast.
    assert vol[-1, 0] > 0.045


def test_monte_carlo_is_seeded_and_correlated() -> None:
    history = synthetic_history()
    daily = history.log_returns()[:, :2]
    vol = ewma_volatility(daily)
    draws = [
        monte_carlo_moves(daily, vol, horizon_days=2, n_draws=4000, rng=np.random.default_rng(5), copula=c)
        for c in ("student", "student", "gaussian")
    ]
    assert np.array_equal(draws[0].log_move, draws[1].log_move)
    for d in (draws[0], draws[2]):
        assert np.corrcoef(d.log_move.T)[0, 1] == pytest.approx(0.8, abs=0.08)
        assert np.std(d.log_move[:, 0]) == pytest.approx(vol[-1, 0] * np.sqrt(2.0), rel=0.1)


def test_var_scenario_set_moves_only_named_factors() -> None:
    history = synthetic_history()
    moves = historical_moves(history.log_returns()[:, :2], history.days[1:], horizon_days=2)
    scenarios = var_scenario_set(moves, factors=("BTC", "ETH", "USD"), moving=("BTC", "ETH"), n_instruments=3)
    assert scenarios.price_factor[:, 2] == pytest.approx(1.0)
    assert scenarios.price_factor[:, 0] == pytest.approx(np.exp(moves.log_move[:, 0]))
    assert scenarios.vol_shift.shape == (moves.n_scenarios, 3)
