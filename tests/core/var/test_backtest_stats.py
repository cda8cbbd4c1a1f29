"""Kupiec and Christoffersen statistics against hand-computed values; procyclicality measures."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import chi2

from crossmargin.core.var.backtest import (
    backtest_stats,
    christoffersen_independence,
    kupiec_pof,
    largest_increase,
)

HAND_TOLERANCE = 1e-5  # the hand values below are rounded to 6 decimals


def test_kupiec_matches_a_hand_computed_value() -> None:
    # x = 5 exceedances in n = 250 days at p = 1 %:
    # null  = 245·ln 0.99 + 5·ln 0.01 = -2.462332 - 23.025851 = -25.488183
    # alt   = 245·ln 0.98 + 5·ln 0.02 = -4.949663 - 19.560115 = -24.509778
    # LR    = -2·(null - alt) = 1.956810
    statistic, p_value = kupiec_pof(5, 250, 0.01)
    assert statistic == pytest.approx(1.956810, abs=HAND_TOLERANCE)
    assert p_value == pytest.approx(chi2.sf(1.956810, 1), abs=HAND_TOLERANCE)
    # No exceedance: LR = -2·n·ln(1 - p).
    assert kupiec_pof(0, 250, 0.01)[0] == pytest.approx(-2.0 * 250 * math.log(0.99))
    # Exactly the expected rate: LR = 0, p = 1.
    assert kupiec_pof(10, 1000, 0.01) == pytest.approx((0.0, 1.0))


def test_christoffersen_matches_a_hand_computed_value() -> None:
    # 0 1 1 1 0 0 0 0 0 0: n00 = 5, n01 = 1, n10 = 1, n11 = 2; π01 = 1/6, π11 = 2/3, π = 1/3
    # null = 6·ln(2/3) + 3·ln(1/3) = -5.728627;  alt = 5·ln(5/6) + ln(1/6) + ln(1/3) + 2·ln(2/3) = -4.612910
    hits = np.array([0, 1, 1, 1, 0, 0, 0, 0, 0, 0], dtype=bool)
    statistic, _ = christoffersen_independence(hits)
    assert statistic == pytest.approx(2.231435, abs=HAND_TOLERANCE)
    # Hits exactly as likely after a hit as after a quiet day: no evidence of clustering.
    even = np.array([0, 0, 1, 1, 0, 0, 0, 1, 0, 0], dtype=bool)  # π01 = π11 = π = 1/3
    assert christoffersen_independence(even) == pytest.approx((0.0, 1.0))
    assert christoffersen_independence(np.zeros(10, dtype=bool)) == (0.0, 1.0)


def test_procyclicality_and_shortfall() -> None:
    margin = np.array([100.0, 100.0, 120.0, 150.0, 150.0, 200.0, 90.0, 100.0])
    assert largest_increase(margin, 5) == pytest.approx(1.0)  # 200 / 100 - 1
    assert largest_increase(margin, 30) == 0.0
    loss = np.array([0.0, 110.0, 0.0, 0.0, 0.0, 0.0, 95.0, 0.0])
    stats = backtest_stats(margin, loss, coverage=0.99)
    assert stats.exceedances == 2
    assert stats.worst_shortfall_usd == pytest.approx(10.0)
    assert stats.peak_to_trough == pytest.approx(200.0 / 90.0)
