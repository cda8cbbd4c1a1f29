"""Collateral across chains and custodians: mobilisation haircuts and location failures."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossmargin.core.assets import Asset, HaircutTier
from crossmargin.core.instruments import Instrument, InstrumentKind, MarginSchedule
from crossmargin.core.locations import (
    LocatedBalances,
    Location,
    LocationTable,
    MobilisationParams,
    delay_haircut,
)
from crossmargin.core.margin.cross import CrossMargin
from crossmargin.core.market import MarketState
from crossmargin.engine.custody import CustodyPlan, custody_book, location_failure_book, location_report
from crossmargin.errors import InputError
from tests.builders import VALUATION_NS, at_par, book_from_rows

BTC = 50_000.0


@given(
    st.floats(0, 24 * 365), st.floats(0, 24 * 365), st.floats(0.01, 3.0), st.floats(0, 100), st.floats(0, 5)
)
def test_cross_chain_longer_delay_never_lowers_the_haircut(a, b, vol, horizon, z):
    params = MobilisationParams(horizon_hours=horizon, z=z)
    short, long_ = min(a, b), max(a, b)
    assert delay_haircut(long_, vol, params) >= delay_haircut(short, vol, params)
    table = LocationTable.from_locations(
        [Location(name="near", transfer_delay_hours=short), Location(name="far", transfer_delay_hours=long_)]
    )
    factors = table.factors(np.array([vol]), params)
    assert factors[0, 2] <= factors[0, 1] <= factors[0, 0] == 1.0


def _hand_book():
    """alice: 3 BTC (1 of them on a bridge) and 10,000 USDC, long 2 BTC perps entered at 48,000;
    bob: 0.5 BTC at a custodian, short 1 perp at 50,000."""
    assets = [
        Asset(symbol="USDC"),
        Asset(symbol="BTC", haircut_tiers=(HaircutTier(above=0, haircut=0.10),)),
    ]
    schedule = MarginSchedule.flat(initial_rate=0.10, maintenance_rate=0.05)
    instruments = [
        Instrument(
            id="BTC-PERP", kind=InstrumentKind.PERPETUAL, underlying="BTC", contract_size=1.0, margin=schedule
        )
    ]
    book = book_from_rows(
        assets=assets,
        instruments=instruments,
        balances={"alice": {"USDC": 10_000.0, "BTC": 3.0}, "bob": {"BTC": 0.5}},
        positions=[("alice", "BTC-PERP", 2.0, 48_000.0), ("bob", "BTC-PERP", -1.0, 50_000.0)],
    )
    market = MarketState.build(book.instruments, valuation_ns=VALUATION_NS, index_prices={"BTC": BTC})
    market = at_par(market, book)
    table = LocationTable.from_locations(
        [
            Location(
                name="bridge", transfer_delay_hours=24.0 * 7, transfer_cost_bps=10, failure_probability=0.01
            ),
            Location(name="custodian", transfer_delay_hours=1.0),
        ]
    )
    plan = CustodyPlan(
        locations=table,
        params=MobilisationParams(horizon_hours=1.0, z=2.0),
        volatility_annual=np.array([0.0, 0.6]),
        located=LocatedBalances(
            account_row=np.array([0, 1]),
            asset=np.array([1, 1]),
            location=np.array([1, 2]),
            amount=np.array([1.0, 0.5]),
        ),
        reserves_units={},
    )
    return book, market, plan


def test_cross_chain_bridge_failure_gives_hand_computed_equity():
    book, market, plan = _hand_book()
    model = CrossMargin()
    # alice as booked: 10,000 + 3 x 50,000 x 0.9 + 2 x (50,000 - 48,000) = 149,000; MM = 5 % x 100,000
    booked = model.evaluate(book, market)
    assert booked.equity_usd[0] == pytest.approx(149_000.0, abs=1e-6)
    # bridge frozen or lost: alice keeps 2 BTC -> 10,000 + 90,000 + 4,000 = 104,000
    failed = model.evaluate(location_failure_book(book, plan, "bridge"), market)
    assert failed.equity_usd[0] == pytest.approx(104_000.0, abs=1e-6)
    assert failed.maintenance_margin_usd[0] == pytest.approx(5_000.0)
    # bob is untouched by the bridge; the custodian (1 h = the horizon) costs him nothing either
    assert failed.equity_usd[1] == pytest.approx(0.5 * BTC * 0.9 + 0.0, abs=1e-6)
    custodian = model.evaluate(location_failure_book(book, plan, "custodian"), market)
    assert custodian.equity_usd[1] == pytest.approx(0.0, abs=1e-6)
    assert custodian.equity_usd[1] < custodian.maintenance_margin_usd[1]


def test_cross_chain_mobilisation_haircut_by_hand():
    book, market, plan = _hand_book()
    # the bridge: 167 h beyond the 1 h horizon at 60 % vol, z = 2; then 10 bps and 1 % failure
    h = 2.0 * 0.6 * np.sqrt(167.0 / 8760.0)
    factor = (1 - h) * (1 - 0.001) * (1 - 0.01)
    mobilised = CrossMargin().evaluate(custody_book(book, plan), market)
    assert mobilised.equity_usd[0] == pytest.approx(10_000 + (2.0 + factor) * BTC * 0.9 + 4_000, abs=1e-6)
    report = location_report(book, market, plan, CrossMargin())
    alice = report["accounts"][0]
    assert alice["collateral_usd_by_location"] == pytest.approx({"venue": 10_000 + 2 * BTC, "bridge": BTC})
    assert alice["failure_equity_usd"]["bridge"] == pytest.approx(104_000.0, abs=1e-6)
    assert report["accounts"][1]["failure_below_maintenance"] == ["custodian"]


def test_cross_chain_more_held_away_than_owned_is_an_error():
    book, _, plan = _hand_book()
    too_much = LocatedBalances(
        account_row=np.array([1]), asset=np.array([1]), location=np.array([1]), amount=np.array([0.6])
    )
    with pytest.raises(InputError, match="exceeds the balance"):
        custody_book(
            book,
            CustodyPlan(
                locations=plan.locations,
                params=plan.params,
                volatility_annual=plan.volatility_annual,
                located=too_much,
                reserves_units={},
            ),
        )
