"""Calibration on the real shared history: every number reaches the target coverage on the window
it was fitted on, and is reported on a later window it was not fitted on."""

from __future__ import annotations

import numpy as np
import pytest

from crossmargin.adapters.history.market_series import shared_implied_vol, shared_volume
from crossmargin.adapters.history.prices import shared_price_history
from crossmargin.core.calibration import CalibrationParams
from crossmargin.engine.calibration import Windows, calibration_json, run_calibration, trailing_mean
from crossmargin.errors import InputError
from tests.conftest import shared_data_dir

WINDOWS = Windows(
    fit_first="2018-01-01", fit_last="2022-12-31", test_first="2023-01-01", test_last="2025-02-09"
)


def test_calibration_real_history_fit_and_out_of_sample() -> None:
    data = shared_data_dir()
    report = run_calibration(
        prices=shared_price_history(data),
        windows=WINDOWS,
        params=CalibrationParams(coverage=0.99, horizon_days=2),
        symbols=("BTC", "ETH", "SOL"),
        volume=shared_volume(data),
        implied=shared_implied_vol(shared_data_dir("dvol_*.csv")),
    )
    assert report.implied_vol_symbols == ("BTC",)
    for asset in report.assets:
        evidence = [
            asset.haircut_evidence,
            asset.haircut_evidence_dynamic,
            asset.initial_evidence,
            asset.maintenance_evidence,
            *(t.evidence for t in asset.tiers),
        ]
        for e in evidence:
            assert e.fit.coverage >= 0.99, asset.symbol
            assert e.test.days >= 760, asset.symbol  # 2023-01-01 .. 2025-02-07 starts
            assert e.test.coverage >= 0.97, asset.symbol  # out of sample: reported, and not far off
        # The band keeps the vol haircut from flapping: several times fewer changes.
        assert asset.haircut_changes * 5 < asset.haircut_changes_without_band
        assert asset.tiers and asset.position_limit_usd > 0.0
    btc = report.assets[0]
    # 2018-2022 holds March 2020, May 2021, LUNA and FTX: BTC's 99 % 2-day fall is 10-20 %.
    assert 0.10 < btc.haircut < 0.20
    assert btc.maintenance_rate < btc.initial_rate
    payload = calibration_json(report)
    assert payload["assets"][0]["symbol"] == "BTC"
    assert payload["assets"][0]["haircut_evidence"]["fit"]["coverage"] >= 0.99


def test_calibration_windows_checked() -> None:
    with pytest.raises(InputError, match="overlaps"):
        Windows(
            fit_first="2020-01-01", fit_last="2022-12-31", test_first="2022-06-01", test_last="2023-01-01"
        )
    with pytest.raises(InputError, match="fit_first"):
        Windows(
            fit_first="2020-13-01", fit_last="2022-12-31", test_first="2023-01-01", test_last="2024-01-01"
        )


def test_calibration_trailing_mean_needs_full_windows() -> None:
    got = trailing_mean(np.array([1.0, 2.0, np.nan, 4.0, 5.0, 6.0]), 2)
    np.testing.assert_array_equal(np.isnan(got), [True, False, True, True, False, False])
    np.testing.assert_allclose(got[[1, 4, 5]], [1.5, 4.5, 5.5])
