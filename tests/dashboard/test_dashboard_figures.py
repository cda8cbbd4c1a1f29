"""The dashboard's figures against independent answers (no browser): the liquidation curve against
the liquidation prices of the root search, the what-if against the instrument's P&L formula, the
stress shock and cascade against the ledger, the warnings against hand-made cases."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from crossmargin.adapters.files import load_book
from crossmargin.core.book import Book
from crossmargin.core.ledger.postings import INSURANCE
from crossmargin.dashboard import figures, stress
from crossmargin.dashboard.source import EngineSnapshot, OraclePrice, VenueView, snapshot
from crossmargin.dashboard.standalone import BookVenue
from crossmargin.engine.margin_run import MarginRun, price_levels
from crossmargin.engine.risk_engine import RiskEngine
from crossmargin.engine.simulation import Simulation
from crossmargin.errors import InputError
from tests.dashboard.conftest import DESK


@pytest.fixture(scope="module")
def view() -> VenueView:
    return BookVenue(load_book(DESK)).view()


def test_dashboard_liquidation_curve_agrees_with_the_liquidation_prices(view: VenueView) -> None:
    """An account is under maintenance at a move of u exactly when the move is at or past its
    nearest liquidation price of u (the root search of `price_levels`, another path). The desk's
    accounts do not recover past their nearest root within ±50 %, so the two must agree point for
    point."""
    curve = figures.liquidation_curve(view)
    engine = view.engine
    run = MarginRun(
        loaded=figures.live_loaded(view),
        model="cross",
        result=engine.result,
        breakdown=engine.breakdown(),
        margin_model=engine.model,
        model_book=engine.book,
    )
    levels = price_levels(run)
    index = engine.market.index_price_usd
    below = np.nan_to_num(levels.liquidation_below / index - 1.0, nan=-np.inf)  # (accounts, U)
    above = np.nan_to_num(levels.liquidation_above / index - 1.0, nan=np.inf)
    moves = np.array(curve["moves"])
    for u, series in enumerate(curve["series"]):
        predicted = (moves[None, :] <= below[:, u : u + 1]) | (moves[None, :] >= above[:, u : u + 1])
        assert series["accounts"] == predicted.sum(axis=0).tolist(), series["underlying"]
    assert curve["series"][0]["accounts"][0] == 2  # BTC -50 %: near-liquidation and vol-seller


def test_dashboard_what_if_follows_the_inverse_pnl_formula(view: VenueView) -> None:
    """near-liquidation holds 60,000 BTC-PERPETUAL (inverse, 10 USD face): buying q more at price E
    changes equity by q · cs · (1/E − 1/M) · S (the trade's own P&L at today's mark M and index S)
    and nothing else; a trade at the mark changes equity by nothing."""
    engine = view.engine
    i = engine.book.instruments.position("BTC-PERPETUAL")
    mark = float(engine.valuation.mark_price[i])
    spot = float(engine.market.index_price_usd[0])
    at_mark = figures.what_if(
        view, "near-liquidation", instrument_id="BTC-PERPETUAL", quantity=1000, price=None
    )
    assert at_mark["after"]["equity_usd"] == pytest.approx(at_mark["before"]["equity_usd"], rel=1e-12)
    assert at_mark["after"]["maintenance_margin_usd"] > at_mark["before"]["maintenance_margin_usd"]
    entry = 90_000.0
    traded = figures.what_if(
        view, "near-liquidation", instrument_id="BTC-PERPETUAL", quantity=1000, price=entry
    )
    pnl = 1000 * 10.0 * (1 / entry - 1 / mark) * spot
    assert traded["after"]["equity_usd"] - traded["before"]["equity_usd"] == pytest.approx(pnl, rel=1e-9)
    with pytest.raises(InputError, match="quantity"):
        figures.what_if(view, "near-liquidation", instrument_id="BTC-PERPETUAL", quantity=-60_000, price=None)
    with pytest.raises(InputError, match="instrument"):
        figures.what_if(view, "near-liquidation", instrument_id="NOPE", quantity=1, price=None)


def test_dashboard_shock_of_zero_is_today_and_cascade_is_the_ledgers(view: VenueView) -> None:
    still = stress.run_shock(view, stress.uniform_shock(view, 0.0))
    result = view.engine.result
    assert still["under_maintenance"] == int(np.count_nonzero(result.below_maintenance))
    assert still["shortfall_usd"] == 0.0
    # A one-step cascade is one ledger price update and its risk cycle, on a copy.
    shock = stress.uniform_shock(view, -0.3)
    cascade = stress.run_cascade(snapshot(view), shock, steps=1)
    assert view.ledger is not None
    state, config = view.ledger()
    sim = Simulation(config=config, state=state)
    prices = {s: state.prices[s] * f for s, f in shock.factors.items()}
    sim.step(stress.price_update(state, config, prices, as_of_ns=state.time_ns))
    assert cascade["steps"][0]["insurance_fund_usd"] == stress.ledger_usd(sim.state, config, INSURANCE)
    assert stress.ledger_usd(state, config, INSURANCE) == 1_000_000.0  # the view's ledger untouched
    with pytest.raises(InputError, match="steps"):
        stress.run_cascade(view, shock, steps=0)
    with pytest.raises(InputError, match="move"):
        stress.uniform_shock(view, -1.5)


def test_dashboard_warnings_name_oracle_gates_and_tiers(view: VenueView) -> None:
    oracle = (
        OraclePrice(asset="BTC", price_usd=88_000.0, status="STALE", age_ms=42_000.0,
                    band_low_usd=87_990.0, band_high_usd=88_010.0, n_sources=1),
        OraclePrice(asset="ETH", price_usd=3_000.0, status="HELD", age_ms=100.0,
                    band_low_usd=2_999.0, band_high_usd=3_001.0, n_sources=3),
        OraclePrice(asset="SOL", price_usd=125.0, status="VALID", age_ms=100.0,
                    band_low_usd=120.0, band_high_usd=130.0, n_sources=3),
    )  # fmt: skip
    # directional's ETH perpetual grown to 95 % of its instrument's next tier floor (50,000 USD).
    book = view.engine.book
    row = book.account_row("directional")
    eth = book.instruments.position("ETH-USDC-PERP")
    per_contract = float(view.engine.valuation.notional_usd[eth])
    quantity = book.positions.toarray().astype(float)
    quantity[row, eth] = 0.95 * 50_000.0 / per_contract
    coords = np.nonzero(quantity)
    grown = Book.from_arrays(
        account_ids=book.account_ids,
        assets=book.assets,
        instruments=book.instruments,
        account_index=coords[0],
        instrument_index=coords[1],
        quantity=quantity[coords],
        entry_price=np.full(coords[0].size, 1.0),
        balances=book.balances,
    )
    engine = EngineSnapshot.of(RiskEngine(grown, view.engine.market, view.engine.model))
    found = figures.warnings(
        dataclasses.replace(view, engine=engine, oracle=oracle, withdrawals_gated_reason="bad debt 5 USD")
    )
    kinds = {(w["kind"], w["subject"]) for w in found}
    assert ("oracle_stale", "BTC") in kinds
    assert ("circuit_breaker", "ETH") in kinds
    assert ("oracle_disagree", "SOL") in kinds and ("oracle_disagree", "BTC") not in kinds
    assert ("withdrawals_gated", "venue") in kinds
    assert ("withdrawals_gated", "near-liquidation") in kinds  # in margin call
    assert ("limit_near", "directional") in kinds
    assert next(w for w in found if w["kind"] == "limit_near")["message"].startswith("ETH-USDC-PERP")
    assert ("oracle_absent", "venue") not in kinds
    plain = figures.warnings(view)
    assert not any(w["kind"] == "limit_near" for w in plain)
    assert ("oracle_absent", "venue") in {(w["kind"], w["subject"]) for w in plain}


def test_dashboard_heatmap_arranges_the_grid_and_leaves_the_rest() -> None:
    heat = figures.scenario_heatmap(
        [
            {"label": "BTC -16.0%, vol up", "pnl_usd": -5.0},
            {"label": "BTC +16.0%, vol up", "pnl_usd": 3.0},
            {"label": "BTC -16.0%", "pnl_usd": -4.0},
            {"label": "BTC +500.0%, vol up, extreme (0.032 of loss)", "pnl_usd": 9.0},
            {"label": "USDC depeg -5.0%", "pnl_usd": -1.0},
        ]
    )
    assert heat["columns"] == ["-16.0%", "+16.0%"]
    assert heat["rows"] == ["BTC vol flat", "BTC vol up"]
    assert heat["pnl_usd"] == [[-4.0, None], [-5.0, 3.0]]
