"""Cascades (select with `pytest -k price_impact`): a hand-built three-account book whose rounds
are computed by hand, and the cascade's invariants."""

from __future__ import annotations

import numpy as np
import pytest

from crossmargin.core.assets import Asset
from crossmargin.core.instruments import Instrument, InstrumentKind, MarginSchedule
from crossmargin.core.margin import CrossMargin
from crossmargin.core.market import MarketState
from crossmargin.core.stress.impact import MarketDepth, SquareRootImpact
from crossmargin.core.stress.liquidation import LiquidationRule
from crossmargin.engine.stress import (
    LocalShards,
    Policy,
    hypothetical_shock,
    prepare_venue,
    run_cascade,
)
from tests.builders import VALUATION_NS, book_from_rows

USD = 1e-6  # one cash unit: the hand numbers are exact to it


def three_accounts() -> tuple[object, MarketState]:
    """BTC perpetual at 100 USD, flat 10 % IM / 5 % MM, collateral in USD cash:
    A long 10 with 60 USD, B long 10 with 98 USD, C short 20 with 1,000 USD."""
    perp = Instrument(
        id="BTC-PERP",
        kind=InstrumentKind.PERPETUAL,
        underlying="BTC",
        margin=MarginSchedule.flat(initial_rate=0.10, maintenance_rate=0.05),
    )
    book = book_from_rows(
        assets=[Asset(symbol="USD")],
        instruments=[perp],
        balances={"A": {"USD": 60.0}, "B": {"USD": 98.0}, "C": {"USD": 1000.0}},
        positions=[
            ("A", "BTC-PERP", 10.0, 100.0),
            ("B", "BTC-PERP", 10.0, 100.0),
            ("C", "BTC-PERP", -20.0, 100.0),
        ],
    )
    market = MarketState.build(
        book.instruments,
        valuation_ns=VALUATION_NS,
        index_prices={"BTC": 100.0},
        asset_symbols=book.assets.symbols,
        asset_prices={"USD": 1.0},
    )
    return book, market


# Y = 1, σ = 10 %, V = 1,000 USD (10 BTC at today's 100): round 1's 10 BTC sold moves BTC by -10 %.
IMPACT = SquareRootImpact(depth={"BTC": MarketDepth(daily_volume_usd=1000.0, daily_volatility=0.10)})


def cascade(policy: Policy, impact: SquareRootImpact = IMPACT, move: float = -0.05, fund: float = 20.0):
    book, market = three_accounts()
    venue = prepare_venue(book, market)
    runner = LocalShards.of(venue, CrossMargin())
    shock = hypothetical_shock(venue.book, label="BTC", moves={"BTC": move})
    return run_cascade(runner, venue, [shock], policy=policy, insurance_fund_usd=fund, impact=impact), runner


def test_price_impact_three_accounts_hand_computed_rounds() -> None:
    # Round 1 at 95: A (equity 10 < MM 47.5) is closed: 950 USD sold, no deficit. B (48 ≥ 47.5)
    # and C survive. Impact: 1 · 0.1 · √(10 BTC / 10 BTC) = 10 % → round 2 at 85.5: B's equity
    # 98 - 145 = -47, closed for 855 USD, deficit 47: the fund pays its 20, queue ADL
    # deleverages B's whole 10 contracts from C at gap 4.7 → haircut 47, overshoot 20 back to
    # the fund. Round 3 at 95·(1 - 0.1·√(20/10)) = 81.56...: nobody is liquidated.
    rule = LiquidationRule(partial=False, fee_rate=0.0)
    result, runner = cascade(Policy(name="full/queue", rule=rule, adl_policy="queue"))
    rounds = result.rounds
    assert result.active_rounds == 2 and len(rounds) == 3 and result.converged
    assert rounds[0].price_factor[0] == pytest.approx(0.95, abs=1e-15)
    assert rounds[1].price_factor[0] == pytest.approx(0.95 * 0.9, rel=1e-15)
    assert rounds[2].price_factor[0] == pytest.approx(0.95 * (1 - 0.1 * np.sqrt(2.0)), rel=1e-15)
    assert [r.liquidated_accounts for r in rounds] == [1, 1, 0]
    assert rounds[0].liquidated_notional_usd == pytest.approx(950.0, abs=USD)
    assert rounds[1].liquidated_notional_usd == pytest.approx(855.0, abs=USD)
    assert rounds[0].deficit_usd == 0.0 and rounds[1].deficit_usd == pytest.approx(47.0, abs=USD)
    assert rounds[1].fund_paid_usd == pytest.approx(20.0, abs=USD)
    assert rounds[1].adl_contracts == pytest.approx(10.0, abs=1e-8)
    assert rounds[1].adl_haircut_usd == pytest.approx(47.0, abs=USD)
    assert result.fund_end_usd == pytest.approx(20.0, abs=USD)  # the overshoot refilled it
    assert result.bad_debt_usd == 0.0
    assert result.under_maintenance == 1 and result.under_zero == 0
    assert dict(result.adl_bearers) == pytest.approx({"C": 47.0}, abs=USD)
    shard = runner.shards[0]
    h = shard.holdings
    assert h.lots.tolist() == [0, 0, -10 * 10**8]
    # A: 60 - 50; B: reset to 0 after its deficit; C: 1000 + 10 · 14.5 realised - 47 haircut.
    assert h.cash_units.tolist() == [10 * 10**6, 0, 1098 * 10**6]


def test_price_impact_pro_rata_deleverages_only_what_the_deficit_needs() -> None:
    # Remaining 27 USD after the fund's 20, at a gap of 4.7 USD per contract = 47e6 units per
    # 1e9 lots: ceil(27e6 · 1e9 / 47e6) = 574,468,086 lots (5.745 contracts), haircut
    # ceil(574,468,086 · 47e6 / 1e9) = 27,000,001 units; the 1-unit overshoot goes to the fund.
    rule = LiquidationRule(partial=False, fee_rate=0.0)
    result, runner = cascade(Policy(name="full/pro_rata", rule=rule, adl_policy="pro_rata"))
    r2 = result.rounds[1]
    assert r2.adl_contracts == 5.74468086
    assert r2.adl_haircut_usd == pytest.approx(27.000001, abs=USD / 10)
    assert result.fund_end_usd == pytest.approx(0.000001, abs=USD / 10)
    assert runner.shards[0].holdings.lots.tolist() == [0, 0, -20 * 10**8 + 574_468_086]


def test_price_impact_without_adl_leaves_bad_debt() -> None:
    rule = LiquidationRule(partial=False, fee_rate=0.0)
    result, _ = cascade(Policy(name="full/no-adl", rule=rule, adl_policy=None))
    assert result.bad_debt_usd == pytest.approx(27.0, abs=USD)
    assert result.fund_end_usd == 0.0


def test_price_impact_zero_impact_is_one_round() -> None:
    rule = LiquidationRule(partial=False, fee_rate=0.005)
    result, _ = cascade(Policy(name="full/queue", rule=rule), impact=SquareRootImpact())
    assert result.active_rounds == 1
    assert result.rounds[0].liquidated_accounts == 1


def test_price_impact_partial_restores_exit_coverage() -> None:
    # A at 95: equity 10, MM 47.5; f = (1.25·47.5 - 10) / (1.25·47.5) closes 83.16 % of 10.
    rule = LiquidationRule(partial=True, exit_coverage=1.25, fee_rate=0.0)
    result, runner = cascade(Policy(name="partial/queue", rule=rule), impact=SquareRootImpact())
    assert result.active_rounds == 1
    lots_a = runner.shards[0].holdings.lots[0]
    assert lots_a == 10 * 10**8 - int(np.ceil(10 * 10**8 * (1.25 * 47.5 - 10) / (1.25 * 47.5)))
    engine = runner.shards[0].engine
    coverage = engine.result.equity_usd[0] / engine.result.maintenance_margin_usd[0]
    assert coverage >= 1.0


def test_price_impact_collateral_sale_moves_the_collateral_price() -> None:
    # A is long 10 BTC perpetuals at 100 on 1 ETH of collateral (ETH at 100, no haircut). BTC -8 %:
    # equity 100 - 80 = 20 < MM 46, closed; cash -80 is repaid by selling 0.8 ETH for 80 USD, which
    # with V = 80, σ = 10 % moves ETH by 1 · 0.1 · √(80/80) = -10 % for round 2 (BTC, no depth, stays).
    perp = Instrument(
        id="BTC-PERP",
        kind=InstrumentKind.PERPETUAL,
        underlying="BTC",
        margin=MarginSchedule.flat(initial_rate=0.10, maintenance_rate=0.05),
    )
    book = book_from_rows(
        assets=[Asset(symbol="USD"), Asset(symbol="ETH")],
        instruments=[perp],
        balances={"A": {"ETH": 1.0}, "B": {"ETH": 2.0}},
        positions=[("A", "BTC-PERP", 10.0, 100.0)],
    )
    market = MarketState.build(
        book.instruments,
        valuation_ns=VALUATION_NS,
        index_prices={"BTC": 100.0, "ETH": 100.0},
        asset_symbols=book.assets.symbols,
        asset_prices={"USD": 1.0},
    )
    venue = prepare_venue(book, market)
    runner = LocalShards.of(venue, CrossMargin())
    impact = SquareRootImpact(depth={"ETH": MarketDepth(daily_volume_usd=80.0, daily_volatility=0.10)})
    shock = hypothetical_shock(venue.book, label="BTC -8 %", moves={"BTC": -0.08})
    rule = LiquidationRule(partial=False, fee_rate=0.0)
    result = run_cascade(
        runner,
        venue,
        [shock],
        policy=Policy(name="full/no-adl", rule=rule, adl_policy=None),
        insurance_fund_usd=0.0,
        impact=impact,
    )
    eth = result.factors.index("ETH")
    assert result.rounds[0].collateral_sold_usd == pytest.approx({"ETH": 80.0}, abs=USD)
    assert result.rounds[1].price_factor[eth] == pytest.approx(0.9, rel=1e-15)
    # B only holds ETH: it loses 10 % of it, needs no margin, is not liquidated.
    assert result.rounds[1].liquidated_accounts == 0
    assert runner.shards[0].holdings.collateral_units[:, book.assets.index["ETH"]].tolist() == [
        20_000_000,
        200_000_000,
    ]


def test_price_impact_depeg_spreads_through_stablecoin_sales() -> None:
    # A and B are long 10 BTC perpetuals at 100 on 100 and 110 USDC. BTC -5 % and USDC -10 %:
    # A (equity 90 - 50 = 40 < MM 47.5) is closed, its cash -50 repaid by selling 50/0.9 USDC,
    # which moves USDC by 1 · 0.1 · √((50/0.9)/V) = -5 % with V = 4·50/0.9: B's equity
    # 110 · 0.855 - 50 = 44.05 < 47.5, so B goes in round 2 and sells 50/0.855 USDC more.
    perp = Instrument(
        id="BTC-PERP",
        kind=InstrumentKind.PERPETUAL,
        underlying="BTC",
        margin=MarginSchedule.flat(initial_rate=0.10, maintenance_rate=0.05),
    )
    book = book_from_rows(
        assets=[Asset(symbol="USD"), Asset(symbol="USDC")],
        instruments=[perp],
        balances={"A": {"USDC": 100.0}, "B": {"USDC": 110.0}},
        positions=[("A", "BTC-PERP", 10.0, 100.0), ("B", "BTC-PERP", 10.0, 100.0)],
    )
    market = MarketState.build(
        book.instruments,
        valuation_ns=VALUATION_NS,
        index_prices={"BTC": 100.0, "USDC": 1.0},
        asset_symbols=book.assets.symbols,
        asset_prices={"USD": 1.0},
    )
    venue = prepare_venue(book, market)
    impact = SquareRootImpact(
        depth={"USDC": MarketDepth(daily_volume_usd=200.0 / 0.9, daily_volatility=0.10)}
    )
    shock = hypothetical_shock(venue.book, label="BTC -5 %, USDC -10 %", moves={"BTC": -0.05, "USDC": -0.10})
    rule = LiquidationRule(partial=False, fee_rate=0.0)
    result = run_cascade(
        LocalShards.of(venue, CrossMargin()),
        venue,
        [shock],
        policy=Policy(name="full/no-adl", rule=rule, adl_policy=None),
        insurance_fund_usd=0.0,
        impact=impact,
    )
    usdc = result.factors.index("USDC")
    assert [r.liquidated_accounts for r in result.rounds] == [1, 1, 0]
    assert result.rounds[0].collateral_sold_usd["USDC"] == pytest.approx(50.0, abs=1e-5)
    assert result.rounds[1].price_factor[usdc] == pytest.approx(0.9 * 0.95, rel=1e-6)
    sold = 50 / 0.9 + 50 / 0.855  # USDC units, valued at today's 1 USD like V
    assert result.rounds[2].price_factor[usdc] == pytest.approx(
        0.9 * (1 - 0.1 * np.sqrt(sold / (200 / 0.9))), rel=1e-6
    )
