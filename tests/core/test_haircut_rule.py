"""Volatility-adjusted haircuts: hand-computed target, dead band and tier shift."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crossmargin.core.assets import Asset, AssetTable, HaircutTier
from crossmargin.core.collateral import value_collateral
from crossmargin.core.haircut_rule import VolHaircutParams, hysteresis, target_haircut, with_base_haircuts
from crossmargin.errors import InputError

Z_99 = 2.3263478740408408  # standard normal 99 % quantile


def test_vol_haircut_target_hand_computed() -> None:
    """σ 3 %/day, 2 days, 99 %: 1 - exp(-2.32635 · 0.03 · √2) = 1 - exp(-0.098698) = 9.398 %;
    σ 40 %/day is capped at 50 %; σ 0 is floored at 2 %."""
    params = VolHaircutParams(floor=0.02, cap=0.5)
    got = target_haircut(np.array([0.03, 0.40, 0.0]), params)
    assert got[0] == pytest.approx(1.0 - math.exp(-Z_99 * 0.03 * math.sqrt(2.0)), rel=1e-12)
    assert got[0] == pytest.approx(0.093984, abs=1e-6)
    assert got[1] == 0.5
    assert got[2] == 0.02


def test_vol_haircut_hysteresis_hand_computed() -> None:
    """Band 2 points: 0.11 stays at 0.10; 0.125 (2.5 away) moves; 0.13 stays; 0.09 (3.5 away)
    moves; 0.095 stays."""
    targets = np.array([[0.10], [0.11], [0.125], [0.13], [0.09], [0.095]])
    got = hysteresis(targets, 0.02)[:, 0]
    np.testing.assert_array_equal(got, [0.10, 0.10, 0.125, 0.125, 0.09, 0.09])


def test_vol_haircut_shifts_tiers_and_values_collateral() -> None:
    """Tiers 10 % then 30 % above 10 units; base set to 20 %: tiers 20 %, 40 %. 20 units at 1 USD
    are worth 10·0.8 + 10·0.6 = 14 USD."""
    table = AssetTable.from_assets(
        [
            Asset(
                symbol="ETH",
                haircut_tiers=(HaircutTier(above=0.0, haircut=0.1), HaircutTier(above=10.0, haircut=0.3)),
            )
        ]
    )
    moved = with_base_haircuts(table, np.array([0.2]))
    np.testing.assert_allclose(moved.tier_haircut[0], [0.2, 0.4])
    value = value_collateral(np.array([[20.0]]), moved, np.array([1.0])).value_usd[0, 0]
    assert value == pytest.approx(14.0, rel=1e-12)
    with pytest.raises(InputError, match="haircut"):
        with_base_haircuts(table, np.array([1.0]))


def test_vol_haircut_params_reject_bad_values() -> None:
    with pytest.raises(InputError, match=r"haircut\.cap"):
        VolHaircutParams(floor=0.3, cap=0.2)
    with pytest.raises(InputError, match="volatility_daily"):
        target_haircut(np.array([-0.01]), VolHaircutParams())
