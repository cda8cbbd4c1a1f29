"""The ledger feeds the long-lived engine: after every event of a simulation the engine's cross
margin of the traders equals a full recompute of the ledger's state and the ledger's own view
(`risk_view`, the margin checks of every withdrawal, transfer and fill), bit for bit: one cross
kernel everywhere; each event re-margins only the traders it touched."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from crossmargin.adapters.files import load_book
from crossmargin.core.ledger.events import PriceUpdate
from crossmargin.core.ledger.state import risk_view
from crossmargin.core.margin import CrossMargin
from crossmargin.engine.risk_engine import RiskEngine
from crossmargin.engine.simulation import Simulation, simulation_from_book

DESK = Path(__file__).resolve().parents[2] / "examples" / "desk.yaml"
# Hourly BTC/ETH/SOL index prices of a crash (USD), as tests/adapters/eventlog uses.
CRASH = [(85_000.0, 2_900.0, 120.0), (72_000.0, 2_400.0, 95.0), (65_000.0, 2_100.0, 80.0)]
HOUR_NS = 3_600 * 10**9
ARRAYS = ("equity_usd", "initial_margin_usd", "maintenance_margin_usd", "margin_ratio", "bankrupt")


def _check_engine_matches_the_ledger(sim: Simulation) -> None:
    engine = sim.risk_engine()
    view = risk_view(sim.state, sim.config)
    fresh = RiskEngine(view.book, view.market, CrossMargin(sim.config.margin)).result
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(engine.result, name), getattr(fresh, name), err_msg=name)
        np.testing.assert_array_equal(getattr(view.result, name), getattr(fresh, name), err_msg=name)


def test_the_engine_fed_by_the_ledger_equals_a_full_recompute_after_every_event() -> None:
    sim = simulation_from_book(load_book(DESK), adl_policy="pro_rata", insurance_fund_usd=1_000.0)
    _check_engine_matches_the_ledger(sim)
    start = sim.state.time_ns
    for n, (btc, eth, sol) in enumerate(CRASH, start=1):
        sim.step(PriceUpdate(index_prices={"BTC": btc, "ETH": eth, "SOL": sol}, as_of_ns=start + n * HOUR_NS))
        _check_engine_matches_the_ledger(sim)
    # The crash liquidated someone: the engine followed fills, a waterfall and socialised losses.
    assert sum(r.kind == "liquidation_fill" for r in sim.records) > 0


def test_an_event_re_margins_only_the_traders_it_touched() -> None:
    sim = simulation_from_book(load_book(DESK), adl_policy="queue")
    engine = sim.risk_engine()
    before = {name: np.array(getattr(engine.result, name)) for name in ARRAYS}
    # SOL moves: only SOL holders (and SOL collateral holders) may change.
    sim.submit(PriceUpdate(index_prices={"SOL": 110.0}, as_of_ns=sim.state.time_ns + HOUR_NS))
    book = engine.book
    sol = book.instruments.underlyings.index("SOL")
    holders = set(
        book.position_account[book.instruments.underlying_index[book.positions.indices] == sol].tolist()
    )
    others = [r for r in range(book.n_accounts) if r not in holders]
    assert holders and others
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(engine.result, name)[others], before[name][others])
    _check_engine_matches_the_ledger(sim)
