"""Calibration core on hand-built closes: each number is the covered order statistic, and every
calibrated number covers the target on its fit window (seeded random walk)."""

from __future__ import annotations

import numpy as np
import pytest

from crossmargin.core.calibration import CalibrationParams, calibrate_asset
from crossmargin.errors import InputError

FIVE_DAYS = np.ones(6, dtype=bool)


def test_calibration_hand_computed_order_statistics() -> None:
    """Closes 100, 95, 95, 76, 76, 95: one-day moves -5 %, 0, -20 %, 0, +25 %.
    Long losses 0.05, 0, 0.2, 0, -0.25 → sorted -0.25, 0, 0, 0.05, 0.2; at 75 % the "higher"
    order statistic is index ceil(0.75·4) = 3: haircut 5 % (4 of 5 covered = 80 %). Worse-side
    losses 0.05, 0, 0.2, 0, 0.25 → IM = MM = 20 %."""
    params = CalibrationParams(coverage=0.75, horizon_days=1, liquidation_days=1, haircut_band=0.0)
    close = np.array([100.0, 95.0, 95.0, 76.0, 76.0, 95.0])
    test = np.zeros(6, dtype=bool)
    result = calibrate_asset(
        "X",
        close_usd=close,
        volatility_daily=np.full(6, 0.01),
        volume_usd=np.full(6, np.nan),
        fit=FIVE_DAYS,
        test=test,
        params=params,
    )
    assert result.haircut == pytest.approx(0.05, rel=1e-12)
    assert result.haircut_evidence.fit.days == 5
    assert result.haircut_evidence.fit.exceedances == 1
    assert result.initial_rate == pytest.approx(0.2, rel=1e-12)
    assert result.maintenance_rate == pytest.approx(0.2, rel=1e-12)
    assert result.tiers == ()  # no volume, no tiers


def test_calibration_reaches_target_on_fit_window_and_reports_test() -> None:
    rng = np.random.default_rng(11)
    n = 1_500
    vol = np.where(np.arange(n) < 700, 0.02, 0.05)  # a calm then a stormy regime
    returns = rng.standard_t(4, n) * vol / np.sqrt(2.0)
    close = 100.0 * np.exp(np.cumsum(returns))
    fit = np.arange(n) < 1_000
    test = np.arange(n) >= 1_000
    params = CalibrationParams(coverage=0.99, horizon_days=2)
    result = calibrate_asset(
        "X",
        close_usd=close,
        volatility_daily=vol,
        volume_usd=np.full(n, 1e8),
        fit=fit,
        test=test,
        params=params,
    )
    for evidence in (
        result.haircut_evidence,
        result.haircut_evidence_dynamic,
        result.initial_evidence,
        result.maintenance_evidence,
        *(t.evidence for t in result.tiers),
    ):
        assert evidence.fit.coverage >= 0.99
        assert evidence.test.days >= 490
    # Tier ceilings from the square-root law: Q = V (b / σ̄)² with V = 10 % of 1e8 and the fit
    # window's median vol 0.02 (700 calm days of 999 usable).
    assert result.tiers[0].ceiling_usd == pytest.approx(1e7 * (0.005 / 0.02) ** 2, rel=1e-12)
    rates = [t.initial_rate for t in result.tiers]
    assert rates == sorted(rates) and rates[0] >= result.initial_rate


def test_calibration_rejects_overlapping_windows() -> None:
    with pytest.raises(InputError, match="overlap"):
        calibrate_asset(
            "X",
            close_usd=np.full(6, 100.0),
            volatility_daily=np.full(6, 0.01),
            volume_usd=np.full(6, np.nan),
            fit=FIVE_DAYS,
            test=FIVE_DAYS,
            params=CalibrationParams(),
        )
