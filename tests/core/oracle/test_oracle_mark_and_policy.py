"""Index/mark prices, the per-action validity policy, conservative valuation and the uncertainty
add-on, each against a hand computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crossmargin.core.oracle import (
    NS_PER_SECOND,
    Action,
    OracleParams,
    OraclePolicy,
    OracleState,
    ParamTable,
    PerpMarkParams,
    PremiumState,
    PriceStatus,
    QuoteMatrix,
    Validity,
    ValidityRule,
    VolSurface,
    annualised_basis,
    binance_perp_mark,
    conservative_prices,
    futures_mark,
    option_marks,
    perp_mark,
    twap,
    update,
    valid_for,
    validity,
    value_balances_usd,
    widened_haircut,
)
from crossmargin.core.pricing import black76
from crossmargin.errors import InputError

ABS_TOLERANCE = 1e-9


def test_oracle_perp_mark_is_index_plus_clamped_premium_ema() -> None:
    params = PerpMarkParams(premium_ema_ns=30 * NS_PER_SECOND, max_premium_fraction=0.005)
    state = PremiumState.initial(2)
    index = np.array([100.0, 100.0])
    state, mark = perp_mark(
        state, index_usd=index, impact_mid_usd=np.array([100.2, 110.0]), now_ns=0, params=params
    )
    # First observation: the EMA starts at the premium; the second perp's 10 USD premium is clamped.
    np.testing.assert_allclose(mark, [100.2, 100.5], atol=ABS_TOLERANCE)
    state, mark = perp_mark(
        state,
        index_usd=index,
        impact_mid_usd=np.array([100.0, 100.0]),
        now_ns=30 * NS_PER_SECOND,
        params=params,
    )
    decay = math.exp(-1.0)  # one time constant later
    np.testing.assert_allclose(state.premium_ema_usd, [0.2 * decay, 10.0 * decay], atol=ABS_TOLERANCE)
    np.testing.assert_allclose(mark, [100.0 + 0.2 * decay, 100.5], atol=ABS_TOLERANCE)


def test_oracle_binance_mark_is_median_of_three() -> None:
    mark = binance_perp_mark(
        index_usd=np.array([100.0]),
        funding_rate=np.array([0.0001]),
        time_to_funding_fraction=np.array([0.5]),
        premium_ema_usd=np.array([0.3]),
        last_price_usd=np.array([150.0]),  # a wick on the last trade does not move the mark
    )
    np.testing.assert_allclose(mark, [100.3], atol=ABS_TOLERANCE)


def test_oracle_futures_mark_from_basis_round_trips_and_converges() -> None:
    years = np.array([0.25, 0.5])
    basis = annualised_basis(
        future_mid_usd=np.array([101.0, 103.0]), index_usd=np.array([100.0, 100.0]), years=years
    )
    np.testing.assert_allclose(basis, [0.04, 0.06], atol=ABS_TOLERANCE)
    np.testing.assert_allclose(
        futures_mark(index_usd=np.array([100.0, 100.0]), basis_annualised=basis, years=years), [101.0, 103.0]
    )
    assert (
        futures_mark(index_usd=np.array([90.0]), basis_annualised=np.array([0.5]), years=np.array([0.0]))[0]
        == 90.0
    )


def test_oracle_option_marks_from_surface_match_black76_on_grid_and_interpolate_variance() -> None:
    surface = VolSurface(
        expiry_years=np.array([0.1, 0.5]),
        log_moneyness=np.array([-0.2, 0.0, 0.2]),
        vol=np.array([[0.7, 0.6, 0.65], [0.6, 0.5, 0.55]]),
    )
    forward, strike = np.array([100.0]), np.array([100.0])
    on_grid = option_marks(
        surface, forward_usd=forward, strike_usd=strike, years=np.array([0.5]), sign=np.array([1.0])
    )
    expected = black76(
        forward=forward,
        strike=strike,
        years=np.array([0.5]),
        vol=np.array([0.5]),
        rate=0.0,
        sign=np.array([1.0]),
    )
    np.testing.assert_allclose(on_grid, expected.value, rtol=1e-12)
    # Halfway in time: total variance interpolated linearly.
    vol = surface.vol_at(years=np.array([0.3]), log_moneyness=np.array([0.0]))
    variance = 0.5 * (0.6**2 * 0.1) + 0.5 * (0.5**2 * 0.5)
    np.testing.assert_allclose(vol, [math.sqrt(variance / 0.3)], rtol=1e-12)
    # Flat beyond the strike grid, first expiry's vol before the first expiry.
    np.testing.assert_allclose(surface.vol_at(years=np.array([0.05]), log_moneyness=np.array([1.0])), [0.65])
    with pytest.raises(InputError):
        VolSurface(
            expiry_years=np.array([0.5, 0.1]), log_moneyness=np.array([0.0]), vol=np.array([[0.5], [0.5]])
        )


def test_oracle_twap_weights_each_price_by_the_time_it_held() -> None:
    times = np.array([0, 10, 40], dtype=np.int64)
    prices = np.array([[100.0, 1.0], [110.0, np.nan], [120.0, 3.0]])
    # Window [5, 50): 100 for 5, 110 for 30, 120 for 10; the NaN is skipped for asset 2.
    result = twap(time_ns=times, price_usd=prices, start_ns=5, end_ns=50)
    np.testing.assert_allclose(result, [(100 * 5 + 110 * 30 + 120 * 10) / 45, (1 * 5 + 3 * 10) / 15])
    with pytest.raises(InputError):
        twap(time_ns=times, price_usd=prices, start_ns=5, end_ns=5)


def _one_update(prices: list[float], *, now_ns: int = NS_PER_SECOND, quote_time_ns: int = NS_PER_SECOND):  # type: ignore[no-untyped-def]
    table = ParamTable.uniform(OracleParams(min_sources=2, mad_threshold=1e3), 1)
    _, result = update(
        OracleState.initial(1),
        QuoteMatrix.build([prices], [[quote_time_ns] * len(prices)]),
        now_ns=now_ns,
        params=table,
    )
    return result


def test_oracle_policy_table_per_action() -> None:
    policy = OraclePolicy()
    tight = _one_update([100.0, 100.1, 100.2])
    wide = _one_update([100.0, 101.5, 103.0])  # band 3 %: too wide to open or withdraw, fine to liquidate
    assert all(valid_for(action, tight, policy)[0] for action in Action)
    assert [bool(valid_for(action, wide, policy)[0]) for action in Action] == [False, False, True, True]
    assert validity(wide, policy.open)[0] == Validity.TOO_WIDE
    old = _one_update([100.0, 100.1, 100.2], now_ns=9 * NS_PER_SECOND)  # fresh quotes, 8 s old
    assert old.status[0] == PriceStatus.VALID
    assert old.age_ns[0] == 8 * NS_PER_SECOND
    assert [bool(valid_for(action, old, policy)[0]) for action in Action] == [False, True, True, True]
    assert validity(old, policy.open)[0] == Validity.TOO_OLD
    none = _one_update([100.0])  # one source < min_sources, never priced
    assert none.status[0] == PriceStatus.NO_PRICE
    assert not any(valid_for(action, none, policy)[0] for action in Action)
    with pytest.raises(InputError):
        ValidityRule(max_age_ns=0, max_band_fraction=0.01)


def test_oracle_collateral_at_worse_of_spot_and_smoothed_defeats_a_pump() -> None:
    # Mango, October 2022: MNGO spot pumped ~10x in minutes and was borrowed against. Valued at
    # min(spot, smoothed), the pumped collateral counts at the smoothed price.
    params = OracleParams(min_sources=3, max_move_fraction=100.0, smoothing_ns=600 * NS_PER_SECOND)
    table = ParamTable.uniform(params, 1)
    state = OracleState.initial(1)
    for second in range(600):
        price = 0.03 if second < 590 else 0.30  # pumped by every source for the last 10 s
        state, result = update(
            state,
            QuoteMatrix.build([[price] * 5], [[second * NS_PER_SECOND] * 5]),
            now_ns=second * NS_PER_SECOND,
            params=table,
        )
    assert result.price_usd[0] == 0.30
    prices = conservative_prices(spot_usd=result.price_usd, smoothed_usd=result.smoothed_usd)
    assert prices.asset_usd[0] < 0.03 * 1.5  # still close to the pre-pump price
    assert prices.liability_usd[0] == 0.30  # a short (borrowed) MNGO is owed at the pumped price
    balances = np.array([[1_000_000.0], [-1_000_000.0]])
    values = value_balances_usd(balances, spot_usd=result.price_usd, smoothed_usd=result.smoothed_usd)
    np.testing.assert_allclose(values[:, 0], [1e6 * prices.asset_usd[0], -1e6 * 0.30])


def test_oracle_uncertainty_addon_from_spread_and_age() -> None:
    params = OracleParams(
        min_sources=2,
        spread_multiplier=2.0,
        staleness_per_second=0.001,
        staleness_grace_ns=10 * NS_PER_SECOND,
        max_age_ns=5 * NS_PER_SECOND,
        max_uncertainty_addon=0.2,
    )
    table = ParamTable.uniform(params, 1)
    state, result = update(
        OracleState.initial(1), QuoteMatrix.build([[99.0, 100.0, 101.0]], [[0, 0, 0]]), now_ns=0, params=table
    )
    np.testing.assert_allclose(result.uncertainty_addon, [2.0 * 1.0 / 100.0])  # 2 × half-spread 1 %
    _, later = update(
        state, QuoteMatrix.build([[99.0, 100.0, 101.0]], [[0, 0, 0]]), now_ns=40 * NS_PER_SECOND, params=table
    )
    assert later.status[0] == PriceStatus.STALE
    np.testing.assert_allclose(later.uncertainty_addon, [0.02 + 0.001 * 30])
    np.testing.assert_allclose(widened_haircut(np.array([0.1, 0.99]), np.array([0.05, 0.05])), [0.15, 1.0])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("min_sources", 0),
        ("max_age_ns", 0),
        ("mad_threshold", 0.5),
        ("max_move_fraction", 0.0),
        ("confirm_updates", 0),
    ],
)
def test_oracle_params_reject_bad_values(field: str, value: float) -> None:
    with pytest.raises(InputError, match=field):
        OracleParams(**{field: value})  # type: ignore[arg-type]


def test_oracle_update_rejects_time_going_back_and_shape_mismatch() -> None:
    table = ParamTable.uniform(OracleParams(), 1)
    state, _ = update(OracleState.initial(1), QuoteMatrix.build([[1.0]], [[5]]), now_ns=5, params=table)
    with pytest.raises(InputError, match="now_ns"):
        update(state, QuoteMatrix.build([[1.0]], [[5]]), now_ns=4, params=table)
    with pytest.raises(InputError, match="quotes"):
        update(state, QuoteMatrix.build([[1.0], [2.0]], [[5], [5]]), now_ns=6, params=table)
