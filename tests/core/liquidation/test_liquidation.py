"""Liquidation engine: partial close to the exit level, bankruptcy close-out, ADL ranking, and an
insurance-fund-dry cascade checked against hand-computed numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossmargin.core.ledger.events import Liquidate, PriceUpdate, TradeFill
from crossmargin.core.ledger.postings import BAD_DEBT, INSURANCE
from crossmargin.core.ledger.state import (
    AccountStatus,
    LiquidationParams,
    WaterfallParams,
    coverage,
    risk_view,
)
from crossmargin.core.liquidation.adl import AdlCandidates, pro_rata, queue_rank, random_start
from crossmargin.engine.simulation import Simulation
from tests.ledger_venue import USDC, VALUATION_NS, open_venue, venue_config


def _long_book(contracts: int, deposit_usdc: int) -> Simulation:
    config = venue_config()
    state = open_venue(
        config, ["alice", "bob"], {"alice": {"USDC": deposit_usdc * USDC}, "bob": {"USDC": 10**6 * USDC}}
    )
    sim = Simulation(config=config, state=state)
    assert sim.submit(
        TradeFill(
            taker="alice",
            maker="bob",
            instrument="BTC-PERP",
            quantity=contracts,
            price=40_000.0,
            as_of_ns=VALUATION_NS,
        )
    )
    return sim


def test_partial_liquidation_restores_the_exit_level_with_less_than_a_full_close() -> None:
    sim = _long_book(8, 40_000)
    sim.submit(PriceUpdate(index_prices={"BTC": 36_500.0}, as_of_ns=VALUATION_NS + 1))
    assert sim.state.status["alice"] == AccountStatus.LIQUIDATION
    assert sim.submit(Liquidate(account="alice", as_of_ns=VALUATION_NS + 2))
    left = sim.state.positions[("alice", "BTC-PERP")].quantity
    result = risk_view(sim.state, sim.config, ("alice",)).result
    # Slices of ceil(8 · 25 %) = 2 contracts: two slices (4 contracts) bring equity/MM from 0.81 to >= 1.25.
    assert left == 4
    assert (
        coverage(float(result.equity_usd[0]), float(result.maintenance_margin_usd[0]))
        >= sim.config.margin_call.exit_coverage
    )
    fills = [r for r in sim.records if r.kind == "liquidation_fill"]
    assert [f.detail["quantity"] for f in fills] == [-2, -2]
    assert sim.state.balance(INSURANCE, "USDC") == sum(f.detail["fee_units"] for f in fills) > 0


def test_bankrupt_account_is_closed_out_flat_and_never_left_negative() -> None:
    sim = _long_book(8, 40_000)
    sim.step(PriceUpdate(index_prices={"BTC": 34_000.0}, as_of_ns=VALUATION_NS + 1))
    assert not any(a == "alice" for a, _ in sim.state.positions)
    assert all(v >= 0 for (a, _), v in sim.state.balances.items() if a == "alice")
    assert any(r.kind == "adl" for r in sim.records)  # bob, short and in profit, covered the deficit
    assert sim.state.balance(BAD_DEBT, "USDC") == 0


def test_liquidate_refuses_a_healthy_account() -> None:
    sim = _long_book(1, 40_000)
    assert not sim.submit(Liquidate(account="alice", as_of_ns=VALUATION_NS + 1))
    assert sim.rejected[-1]["field"] == "liquidate.account"


def test_adl_queue_ranking_hand_worked() -> None:
    # profit % × leverage: A 10 % × 5 = 0.5, B 30 % × 1 = 0.3, C 5 % × 20 = 1.0, D 10 % × 5 = 0.5 (tie: by id)
    candidates = AdlCandidates(
        accounts=("B", "D", "A", "C"),
        quantity=np.array([5, 1, 3, 2], dtype=np.int64),
        profit_fraction=np.array([0.30, 0.10, 0.10, 0.05]),
        leverage=np.array([1.0, 5.0, 5.0, 20.0]),
    )
    order = [candidates.accounts[j] for j in queue_rank(candidates)]
    assert order == ["C", "A", "D", "B"]
    rng = np.random.default_rng(0)
    assert pro_rata(candidates, 4, 11, rng).tolist() == [2, 0, 1, 1]  # 4 ∝ (5, 1, 3, 2): 1.8, .4, 1.1, .7
    taken = random_start(candidates, 4, 6, np.random.default_rng(7))
    assert taken.sum() == 6 and (taken <= candidates.quantity).all()


@pytest.mark.parametrize(
    ("policy", "bob_left", "carol_left", "insurance_usdc", "overshoot_usdc"),
    [
        ("pro_rata", -7, -4, 0, 0),
        ("queue", -2, -8, 900, 900),
    ],
)
def test_cascade_insurance_runs_dry_then_adl(
    policy: str, bob_left: int, carol_left: int, insurance_usdc: int, overshoot_usdc: int
) -> None:
    """alice long 10 @ 40,000 with 41,000 USDC; dave long 10; bob short 12, carol short 8 (100,000
    USDC each); no fees or impact. BTC to 35,000: alice's equity 41,000 − 50,000 = −9,000.
    Closed out at 35,000 → deficit 9,000 USDC; insurance pays its 900 (dry); 8,100 left.
    Bankruptcy gap = 9,000 / 10 contracts = 900 USDC per contract (bankruptcy price 35,900).
    pro rata: ceil(8,100 / 900) = 9 contracts ∝ (12, 8) = (5.4, 3.6) → (5, 4): haircuts 4,500 and
    3,600 = 8,100, overshoot 0, the fund ends at 0. queue: leverage bob 420,000/160,000 = 2.63 >
    carol 280,000/140,000 = 2.0 at the same profit %: bob gives the whole 10 contracts, haircut
    9,000: overshoot 900, refunded to the fund."""
    config = venue_config(
        taker_fee_rate=0.0,
        maker_fee_rate=0.0,
        liquidation=LiquidationParams(fee_rate=0.0, impact_bps=0.0, depth_usd=math.inf),
        waterfall=WaterfallParams(adl_policy=policy),
    )
    deposits = {
        "alice": {"USDC": 41_000 * USDC},
        "dave": {"USDC": 100_000 * USDC},
        "bob": {"USDC": 100_000 * USDC},
        "carol": {"USDC": 100_000 * USDC},
        INSURANCE: {"USDC": 900 * USDC},
    }
    sim = Simulation(config=config, state=open_venue(config, ["alice", "bob", "carol", "dave"], deposits))
    for taker, maker, q in (("alice", "bob", 10), ("dave", "bob", 2), ("dave", "carol", 8)):
        assert sim.submit(
            TradeFill(
                taker=taker,
                maker=maker,
                instrument="BTC-PERP",
                quantity=q,
                price=40_000.0,
                as_of_ns=VALUATION_NS,
            )
        )
    sim.step(PriceUpdate(index_prices={"BTC": 35_000.0}, as_of_ns=VALUATION_NS + 1))
    s = sim.state
    waterfall = next(r for r in sim.records if r.kind == "waterfall")
    assert waterfall.detail["deficit_units"] == 9_000 * USDC
    assert waterfall.detail["paid_units"]["insurance"] == 900 * USDC
    adl = next(r for r in sim.records if r.kind == "adl").detail
    assert adl["deficit_units"] == 8_100 * USDC
    assert adl["overshoot_units"] == overshoot_usdc * USDC
    assert s.positions[("bob", "BTC-PERP")].quantity == bob_left
    assert s.positions[("carol", "BTC-PERP")].quantity == carol_left
    assert s.balance("alice", "USDC") == 0 and s.balance(BAD_DEBT, "USDC") == 0
    assert s.balance(INSURANCE, "USDC") == insurance_usdc * USDC
    if policy == "pro_rata":
        assert adl["haircut_units"] == {"bob": 4_500 * USDC, "carol": 3_600 * USDC}
        assert s.balance("bob", "USDC") == (100_000 + 5 * 5_000 - 4_500) * USDC
        assert s.balance("carol", "USDC") == (100_000 + 4 * 5_000 - 3_600) * USDC
    else:
        assert adl["haircut_units"] == {"bob": 9_000 * USDC}


@settings(max_examples=60, deadline=None)
@given(
    ids=st.lists(st.text(alphabet="abc", min_size=1, max_size=3), min_size=1, max_size=30, unique=True),
    scores=st.data(),
    in_order=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_adl_orders_equal_the_sorts_they_skip(
    ids: list[str], scores: st.DataObject, in_order: bool, seed: int
) -> None:
    """Candidates already in id order (the ledger's, the cascade's) skip sorting the ids: the
    queue's ranking and random start's walk equal the full sorts, ties in score included."""
    accounts = sorted(ids) if in_order else ids
    n = len(accounts)
    score = scores.draw(st.lists(st.sampled_from([0.5, 1.0, 2.0]), min_size=n, max_size=n))
    candidates = AdlCandidates(
        accounts=np.array(accounts),
        quantity=np.ones(n, dtype=np.int64),
        profit_fraction=np.array(score),
        leverage=np.ones(n),
    )
    keys = np.array(accounts)
    assert queue_rank(candidates).tolist() == np.lexsort((keys, -np.array(score))).tolist()
    start = int(np.random.default_rng(seed).integers(n))
    walk = np.roll(np.argsort(keys, kind="stable"), -start)
    expected = np.zeros(n, dtype=np.int64)
    expected[walk[: max(n // 2, 1)]] = 1
    assert (
        random_start(candidates, 0, max(n // 2, 1), np.random.default_rng(seed)).tolist() == expected.tolist()
    )
