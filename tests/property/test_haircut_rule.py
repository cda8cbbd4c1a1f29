"""Invariants of the volatility-adjusted haircut rule (hypothesis): bounds always hold, a haircut
changes only when its target left the band, higher vol never lowers the target."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from crossmargin.core.haircut_rule import VolHaircutParams, hysteresis, target_haircut

vols = st.lists(st.floats(min_value=0.0, max_value=0.5, allow_nan=False), min_size=1, max_size=60)


@st.composite
def rules(draw: st.DrawFn) -> VolHaircutParams:
    floor = draw(st.floats(min_value=0.0, max_value=0.3))
    cap = draw(st.floats(min_value=floor, max_value=0.95))
    return VolHaircutParams(
        confidence=draw(st.floats(min_value=0.9, max_value=0.999)),
        horizon_days=draw(st.floats(min_value=0.5, max_value=10.0)),
        floor=floor,
        cap=cap,
        band=draw(st.floats(min_value=0.0, max_value=0.1)),
    )


@given(vol=vols, rule=rules())
def test_vol_haircut_bounds_and_band_hold(vol: list[float], rule: VolHaircutParams) -> None:
    target = target_haircut(np.array(vol), rule)
    held = hysteresis(target[:, None], rule.band)[:, 0]
    assert np.all(held >= rule.floor) and np.all(held <= rule.cap)
    assert np.all(np.abs(held - target) <= rule.band)
    previous = held[:-1]
    changed = held[1:] != previous
    # A change happens exactly when the target left the band around the haircut in force, and
    # then the haircut becomes the target.
    np.testing.assert_array_equal(changed, np.abs(target[1:] - previous) > rule.band)
    np.testing.assert_array_equal(held[1:][changed], target[1:][changed])


@given(
    vol=st.floats(min_value=0.0, max_value=0.5),
    more=st.floats(min_value=0.0, max_value=0.5),
    rule=rules(),
)
def test_vol_haircut_higher_vol_never_lowers_target(vol: float, more: float, rule: VolHaircutParams) -> None:
    assert target_haircut(vol + more, rule) >= target_haircut(vol, rule)
