"""core.pricing.normal_cdf: N(x) from erfc, in place of scipy.special.ndtr (whose import costs
~0.3 s of every command): as accurate, and the very N of the scenario kernel, so an option that
does not move reprices to its value up to the last ulps of log and exp (with ndtr ~40 % of
options were off in more bits). Exactly its value where it matters, in scenario revaluation:
tests/core/test_scenario_revaluation.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import ndtr

from crossmargin.core.pricing import black76, black76_scenario_values, black76_value, normal_cdf


@settings(max_examples=2_000, deadline=None)
@given(st.floats(-37.5, 40.0))
def test_normal_cdf_is_scipys_ndtr_to_1e13(x: float) -> None:
    # Both lose ~2x²·eps relative in the left tail (x/√2 rounds before erfc); against a 200-bit
    # reference (mpmath) the worst over [-37.5, 8.5] was 1,468 ulp here, 1,923 for ndtr.
    ours = float(normal_cdf(np.array([x]))[0])
    assert ours == pytest.approx(float(ndtr(x)), rel=1e-13, abs=0.0)


def test_normal_cdf_keeps_shape_tails_and_symmetry() -> None:
    x = np.linspace(-10.0, 10.0, 2_001).reshape(3, 667)
    n = normal_cdf(x)
    assert n.shape == x.shape
    assert normal_cdf(np.array(0.0)) == 0.5
    np.testing.assert_allclose(n + normal_cdf(-x), 1.0, rtol=0.0, atol=2e-16)
    assert float(normal_cdf(np.array([-38.0]))[0]) > 0.0  # erfc: no 1 - N(38) cancellation
    assert float(normal_cdf(np.array([-40.0]))[0]) == 0.0 == float(ndtr(-40.0))
    assert math.isnan(float(normal_cdf(np.array([np.nan]))[0]))


@pytest.mark.parametrize("rate", [0.0, 0.03])
def test_an_unmoved_option_reprices_to_its_value_to_the_last_ulps(rate: float) -> None:
    """The same formula term for term: equal up to the last ulps of log and exp, which numpy
    (vectorised: its own AVX-512 code on such CPUs) and a scalar or compiled call may take from
    different implementations (230 of 5,000 differed by an ulp at rate 0.03 on an Intel Xeon,
    family 6 model 167)."""
    rng = np.random.default_rng(5)
    n = 5_000
    forward = rng.uniform(1_000.0, 120_000.0, n)
    strike = forward * rng.uniform(0.3, 3.0, n)
    years = rng.uniform(1.0 / 365.0, 2.0, n)
    vol = rng.uniform(0.05, 2.5, n)
    sign = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    value = black76_value(forward=forward, strike=strike, years=years, vol=vol, rate=rate, sign=sign)
    with_greeks = black76(forward=forward, strike=strike, years=years, vol=vol, rate=rate, sign=sign)
    unmoved = black76_scenario_values(
        forward=forward,
        factor=np.ones((n, 2)),
        strike=strike,
        years=years,
        vol=np.repeat(vol[:, None], 2, axis=1),
        rate=rate,
        sign=sign,
    )
    np.testing.assert_array_equal(with_greeks.value, value)
    for column in (0, 1):  # a few ulps of the forward: the scale a last-ulp log moves a price by
        np.testing.assert_allclose(unmoved[:, column], value, rtol=1e-14, atol=1e-15 * float(forward.max()))
