"""Pure stress maths: square-root impact and depth curves, the round's integer rules, the
waterfall's conservation, and the bracketing search."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossmargin.core.stress.impact import MIN_PRICE_FACTOR, DepthCurve, MarketDepth, SquareRootImpact
from crossmargin.core.stress.liquidation import LiquidationRule, close_fraction, segment_sum, split_deficit
from crossmargin.core.stress.reverse import smallest_breaking_scale
from crossmargin.core.stress.waterfall import Candidates, DeficitTotals, deleverage, fund_stage
from crossmargin.errors import InputError

FACTORS = ("BTC", "ETH")


def test_price_impact_square_root_law_numbers() -> None:
    # Y·σ·√(Q/V): 1 · 2 % · √(25e6 / 1e9) = 0.316 %; depth down 90 %: √10 times more.
    impact = SquareRootImpact(depth={"BTC": MarketDepth(daily_volume_usd=1e9, daily_volatility=0.02)})
    factor = impact.factor(FACTORS, np.array([-25e6, -25e6]))
    assert factor[0] == pytest.approx(1 - 0.02 * math.sqrt(0.025), rel=1e-15)
    assert factor[1] == 1.0  # no depth given for ETH: no impact
    thin = SquareRootImpact(depth=impact.depth, depth_multiplier=0.1).factor(FACTORS, np.array([-25e6, 0.0]))
    assert 1 - thin[0] == pytest.approx(math.sqrt(10) * (1 - factor[0]), rel=1e-12)
    assert impact.factor(FACTORS, np.array([25e6, 0.0]))[0] == pytest.approx(
        2 - factor[0], rel=1e-15
    )  # buys lift


def test_price_impact_depth_curve_and_floor() -> None:
    curve = DepthCurve(notional_usd=(0.0, 1e6, 1e7), impact_fraction=(0.0, 0.01, 0.05))
    impact = SquareRootImpact(
        depth={"BTC": MarketDepth(daily_volume_usd=1.0, daily_volatility=0.0, curve=curve)}
    )
    assert impact.factor(FACTORS, np.array([-5.5e6, 0.0]))[0] == pytest.approx(0.97)
    assert impact.factor(FACTORS, np.array([-1e9, 0.0]))[0] == pytest.approx(0.95)  # flat beyond the curve
    huge = SquareRootImpact(depth={"BTC": MarketDepth(daily_volume_usd=1.0, daily_volatility=1.0)})
    assert huge.factor(FACTORS, np.array([-1e12, 0.0]))[0] == MIN_PRICE_FACTOR
    with pytest.raises(InputError, match="depth_curve"):
        DepthCurve(notional_usd=(0.0, 1.0), impact_fraction=(0.1, 0.2))


def test_close_fraction_partial_restores_exit_coverage() -> None:
    rule = LiquidationRule(partial=True, exit_coverage=1.25, fee_rate=0.01)
    equity, mm, notional = (
        np.array([50.0, -1.0, 200.0]),
        np.array([100.0, 10.0, 100.0]),
        np.array([2000.0, 1.0, 1.0]),
    )
    f = close_fraction(equity, mm, notional, rule)
    # (E - φ·f·N) = c·(1 - f)·MM at f = (c·MM - E) / (c·MM - φ·N)
    assert f[0] == pytest.approx((125 - 50) / (125 - 20))
    assert (equity[0] - 0.01 * f[0] * 2000) / ((1 - f[0]) * 100) == pytest.approx(1.25)
    assert f[1] == 1.0 and f[2] == 0.0  # bankrupt: everything; healthy: nothing


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(0, 5), min_size=1, max_size=12),
    data=st.data(),
)
def test_split_deficit_sums_exactly(counts: list[int], data: st.DataObject) -> None:
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    n = int(indptr[-1])
    weight = np.array(data.draw(st.lists(st.floats(0.0, 1e9), min_size=n, max_size=n)))
    deficit = np.array(
        data.draw(st.lists(st.integers(0, 10**15), min_size=len(counts), max_size=len(counts))),
        dtype=np.int64,
    )
    units = split_deficit(deficit, weight, indptr)
    attributed = segment_sum(units, indptr)
    has_weight = (
        np.bincount(np.repeat(np.arange(len(counts)), counts), weights=weight, minlength=len(counts)) > 0
    )
    assert np.array_equal(attributed[has_weight], deficit[has_weight])
    assert np.all(attributed[~has_weight] == 0)
    assert np.all(units >= 0)


def test_fund_stage_pays_unattributed_then_instruments() -> None:
    totals = DeficitTotals(
        fee_units=5,
        instrument_deficit_units=np.array([0, 30, 40]),
        unattributed_deficit_units=10,
        bankrupt_closed_lots=np.array([0, 3, -4]),
    )
    stage = fund_stage(50, totals)
    assert stage.fund_units == 0 and stage.fund_paid_units == 55
    assert stage.remaining_units.tolist() == [0, 0, 25] and stage.unattributed_bad_debt_units == 0


@settings(max_examples=40, deadline=None)
@given(
    lots=st.lists(st.integers(0, 10**9), min_size=1, max_size=20),
    profit=st.lists(st.integers(0, 10**9), min_size=20, max_size=20),
    deficit=st.integers(1, 10**10),
    bankrupt=st.integers(1, 10**9),
    paid=st.floats(0.0, 1.0),
    policy=st.sampled_from(["queue", "random_start", "pro_rata", "risk_aware"]),
)
def test_deleverage_accounts_for_every_unit(lots, profit, deficit, bankrupt, paid, policy) -> None:
    n = len(lots)
    cands = Candidates(
        account_row=np.arange(n, dtype=np.int64),
        lots=np.array(lots, dtype=np.int64),
        profit_units=np.array(profit[:n], dtype=np.int64),
        profit_fraction=np.linspace(0.1, 1, n),
        leverage=np.linspace(5, 1, n),
    )
    remaining = deficit - int(deficit * paid)
    out = deleverage(
        cands,
        remaining_units=remaining,
        deficit_units=deficit,
        bankrupt_lots=bankrupt,
        policy=policy,
        rng=np.random.default_rng(0),
    )
    assert np.all(out.lots <= cands.lots) and np.all(out.haircut_units <= cands.profit_units)
    assert out.covered_units == int(out.haircut_units.sum())
    assert out.covered_units - out.overshoot_units + out.bad_debt_units == remaining
    assert int(out.lots.sum()) <= bankrupt


def test_reverse_search_brackets_a_jump_within_tolerance() -> None:
    calls = []

    def outcome(k: float) -> float:
        calls.append(k)
        return 1.0 if k >= 0.7312 else -1.0  # a step: the fund is exhausted from k = 0.7312 on

    found = smallest_breaking_scale(outcome, tolerance=1e-4)
    assert found.found and found.lower < 0.7312 <= found.upper and found.upper - found.lower <= 2e-4
    never = smallest_breaking_scale(lambda k: -1.0, max_scale=4.0)
    assert not never.found and never.scale == 4.0
