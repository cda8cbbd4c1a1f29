"""Cascade invariants on seeded synthetic books (select with `pytest -k price_impact`), the
scenario pass against the engine, sharding, historical windows and reverse stress."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossmargin.core.margin import CrossMargin
from crossmargin.core.stress.historical import NAMED_WINDOWS
from crossmargin.core.stress.impact import MarketDepth, SquareRootImpact
from crossmargin.core.stress.liquidation import LiquidationRule
from crossmargin.core.synthetic import SynthSpec, synth_book, synth_market
from crossmargin.engine.stress import (
    LocalShards,
    Policy,
    StressVenue,
    hypothetical_shock,
    policies,
    prepare_venue,
    reverse_stress,
    run_cascade,
    screen,
    shocks_scenario_set,
)
from crossmargin.errors import InputError


def venue_of(seed: int, *, n: int = 400, long_only: bool = False) -> StressVenue:
    spec = SynthSpec(
        n_accounts=n,
        seed=seed,
        long_share=1.0 if long_only else 0.6,
        option_seller_share=0.0 if long_only else 0.05,
    )
    book = synth_book(spec)
    return prepare_venue(book, synth_market(book.instruments))


def impact(multiplier: float) -> SquareRootImpact:
    depth = {
        "BTC": MarketDepth(daily_volume_usd=5e7, daily_volatility=0.03),
        "ETH": MarketDepth(daily_volume_usd=3e7, daily_volatility=0.04),
        "SOL": MarketDepth(daily_volume_usd=1e7, daily_volatility=0.05),
        "BTC_": MarketDepth(daily_volume_usd=1.0, daily_volatility=0.0),
    }
    return SquareRootImpact(depth=depth, depth_multiplier=multiplier)


FULL = Policy(name="full/no-adl", rule=LiquidationRule(partial=False), adl_policy=None)


def cascade(venue: StressVenue, move: float, multiplier: float, policy: Policy = FULL):
    shock = hypothetical_shock(venue.book, label="down", moves={"BTC": move, "ETH": move, "SOL": move})
    runner = LocalShards.of(venue, CrossMargin())
    return run_cascade(
        runner, venue, [shock], policy=policy, insurance_fund_usd=1e4, impact=impact(multiplier)
    )


VENUES = {seed: venue_of(seed, long_only=True) for seed in (1, 2)}


@settings(max_examples=12, deadline=None)
@given(
    seed=st.sampled_from([1, 2]),
    move=st.floats(min_value=-0.4, max_value=-0.01),
    extra=st.floats(min_value=0.0, max_value=0.2),
)
def test_price_impact_larger_shock_never_liquidates_less(seed: int, move: float, extra: float) -> None:
    # Long-only book, full close: each account's equity - MM falls with the price, and impact only
    # adds selling, so the liquidated set grows with the shock. USD notional need not (it is
    # counted at lower prices), nor need deficits: an account closed in round 1 of the larger shock
    # may have been closed in a later, lower-priced round of the smaller one.
    venue = VENUES[seed]
    small, large = cascade(venue, move, 0.1), cascade(venue, max(move - extra, -0.6), 0.1)
    assert sum(r.liquidated_accounts for r in large.rounds) >= sum(
        r.liquidated_accounts for r in small.rounds
    )
    assert large.rounds[-1].price_factor[0] <= small.rounds[-1].price_factor[0]


@settings(max_examples=12, deadline=None)
@given(
    seed=st.sampled_from([1, 2]),
    move=st.floats(min_value=-0.35, max_value=-0.02),
    thin=st.floats(min_value=0.01, max_value=1.0),
    deeper=st.floats(min_value=1.0, max_value=20.0),
)
def test_price_impact_more_depth_never_makes_it_worse(
    seed: int, move: float, thin: float, deeper: float
) -> None:
    venue = VENUES[seed]
    shallow, deep = cascade(venue, move, thin), cascade(venue, move, thin * deeper)
    assert sum(r.liquidated_accounts for r in deep.rounds) <= sum(
        r.liquidated_accounts for r in shallow.rounds
    )
    assert deep.bad_debt_usd <= shallow.bad_debt_usd + 1e-6
    assert np.all(deep.rounds[-1].price_factor >= shallow.rounds[-1].price_factor)


def test_price_impact_sharded_equals_one_shard_exactly() -> None:
    venue = venue_of(3, n=1_500)
    shock = hypothetical_shock(venue.book, label="oct-10", moves={"BTC": -0.12, "ETH": -0.16, "SOL": -0.31})
    for policy in (
        Policy(name="full/queue"),
        Policy(name="partial/risk_aware", rule=LiquidationRule(partial=True), adl_policy="risk_aware"),
    ):
        results = []
        for n_shards in (1, 3):
            runner = LocalShards.of(venue, CrossMargin(), n_shards=n_shards)
            results.append(
                run_cascade(
                    runner, venue, [shock], policy=policy, insurance_fund_usd=5e4, impact=impact(0.1)
                ).summary()
            )
        assert results[0] == results[1]


def test_screen_is_the_engine_at_the_shocked_market() -> None:
    # The scenario pass (revalue_scenarios + sparse products) and the engine re-margined at the
    # shocked market give every account the same equity, options and collateral included.
    venue = venue_of(4, n=300)
    shocks = [
        hypothetical_shock(
            venue.book, label="crash", moves={"BTC": -0.2, "ETH": -0.25, "SOL": -0.3}, vol_shift={"BTC": 0.3}
        ),
        hypothetical_shock(venue.book, label="usdc", moves={"USDC": -0.12}),
    ]
    pnl = screen(venue, shocks_scenario_set(shocks))
    runner = LocalShards.of(venue, CrossMargin())
    shard = runner.shards[0]
    today = shard.engine.result.equity_usd.copy()
    for s, shock in enumerate(shocks):
        result = run_cascade(
            LocalShards.of(venue, CrossMargin()),
            venue,
            [shock],
            policy=FULL,
            insurance_fund_usd=0.0,
            max_rounds=1,
        )
        assert result.loss_usd == pytest.approx(
            np.maximum(-pnl[:, s], 0).sum(), rel=1e-9, abs=1e-3 * venue.book.n_accounts
        )
    assert np.all(np.isfinite(today))


@pytest.mark.data
def test_historical_windows_on_the_desk_book() -> None:
    from crossmargin.adapters.files import load_book
    from crossmargin.adapters.history.stress_windows import historical_moves
    from crossmargin.engine.stress import window_shock
    from tests.conftest import shared_data_dir

    data = shared_data_dir()
    loaded = load_book(Path(__file__).resolve().parents[2] / "examples" / "desk.yaml")
    venue = prepare_venue(loaded.book, loaded.market)
    moves = {m.window.name: m for m in historical_moves(extra_windows=2, data=str(data))}
    assert set(w.name for w in NAMED_WINDOWS) <= set(moves)
    ftx, proxied = window_shock(venue, moves["ftx-2022-11"])
    factor = dict(zip(ftx.factors, ftx.price_factor, strict=True))
    # Yahoo closes: BTC 20,926.486 on 2022-11-06, 15,880.78 on 2022-11-09 (README spot check).
    assert factor["BTC"] == pytest.approx(15_880.78 / 20_926.486, rel=1e-12)
    assert proxied == ()
    usdc, _ = window_shock(venue, moves["usdc-2023-03"], trough=True)
    assert dict(zip(usdc.factors, usdc.price_factor, strict=True))["USDC"] < 0.9  # low 0.8774 on 2023-03-11
    covid, proxied = window_shock(venue, moves["covid-2020-03"])
    assert proxied == ("SOL",)  # no SOL before 2020-04-10: moves with BTC, and says so
    factor = dict(zip(covid.factors, covid.price_factor, strict=True))
    assert factor["SOL"] == factor["BTC"]


def test_reverse_stress_finds_the_move_that_exhausts_the_fund() -> None:
    venue = VENUES[1]
    direction = hypothetical_shock(
        venue.book, label="crypto -10 %", moves={"BTC": -0.1, "ETH": -0.1, "SOL": -0.1}
    )
    fund = 2e4
    found = reverse_stress(
        venue, CrossMargin(), direction, policy=FULL, insurance_fund_usd=fund, tolerance=1e-3
    )
    assert found.search.found
    assert found.search.upper - found.search.lower <= 2e-3 + 1e-12
    # Just below the scale the fund still covers every deficit; at it, the fund is exhausted.
    assert found.holds.fund_end_usd > 0.0 and found.holds.bad_debt_usd == 0.0
    assert found.breaks.fund_end_usd == pytest.approx(0.0, abs=1e-6)
    assert found.breaks.deficit_usd >= fund


@pytest.mark.parametrize("fund_usd", [float("nan"), float("inf"), -1.0])
def test_stress_refuses_an_insurance_fund_that_is_not_an_amount(fund_usd: float) -> None:
    """NaN reached `int(floor(NaN))` (a ValueError traceback); a negative fund ran as if the
    venue owed its fund: both refused naming the field, as the reverse search's threshold."""
    venue = venue_of(3, n=50)
    shock = hypothetical_shock(venue.book, label="down", moves={"BTC": -0.2})
    runner = LocalShards.of(venue, CrossMargin())
    with pytest.raises(InputError, match="insurance_fund_usd: must be finite and >= 0"):
        run_cascade(runner, venue, [shock], policy=FULL, insurance_fund_usd=fund_usd)
    with pytest.raises(InputError, match="threshold_usd: must be finite and >= 0"):
        reverse_stress(
            venue,
            CrossMargin(),
            shock,
            policy=FULL,
            insurance_fund_usd=1e4,
            target="bad_debt",
            threshold_usd=fund_usd,
        )


def test_stress_refuses_a_vol_shift_that_is_not_finite() -> None:
    venue = venue_of(3, n=50)
    with pytest.raises(InputError, match=r"shock.vol_shift\[BTC\]: must be finite"):
        hypothetical_shock(venue.book, label="vol", moves={"BTC": -0.1}, vol_shift={"BTC": float("nan")})


ADL_POLICIES = [p for p in policies() if p.adl_policy is not None]
MIXED = {seed: venue_of(seed) for seed in (1, 2)}  # longs and shorts: ADL has counterparties


@settings(max_examples=16, deadline=None)
@given(
    seed=st.sampled_from([1, 2]),
    move=st.floats(min_value=-0.6, max_value=-0.05),
    policy=st.sampled_from(ADL_POLICIES),
)
def test_cascade_fund_columns_add_up(seed: int, move: float, policy: Policy) -> None:
    """fund left = fund given + fees + ADL surplus - fund used, to the fund's unit (its start is
    floored to one), round by round and in the summary: the report's fund columns add up."""
    result = cascade(MIXED[seed], move, 0.1, policy)
    fund = result.fund_start_usd
    for r in result.rounds:
        fund += r.fees_usd + r.adl_surplus_usd - r.fund_paid_usd
        assert r.fund_usd == pytest.approx(fund, abs=1e-5)
    summary = result.summary()
    assert summary["fund_end_usd"] == pytest.approx(
        summary["fund_start_usd"]
        + summary["fees_usd"]
        + summary["adl_surplus_usd"]
        - summary["fund_used_usd"],
        abs=1e-5,
    )
    assert result.fund_in_usd == summary["fees_usd"] + summary["adl_surplus_usd"]


def test_cascade_fund_in_counts_fees_and_adl_surplus() -> None:
    """A shock deep enough for deficits past a 10,000 USD fund: fees flow in, whole-lot ADL under
    the queue overshoots the deficit and the surplus refills the fund (docs/stress.md)."""
    result = cascade(MIXED[1], -0.2, 0.1, next(p for p in ADL_POLICIES if p.name == "full/queue"))
    assert result.fees_usd > 0.0
    assert result.adl_surplus_usd > 0.0
    assert result.fund_end_usd == pytest.approx(
        result.fund_start_usd + result.fund_in_usd - result.fund_used_usd, abs=1e-5
    )
