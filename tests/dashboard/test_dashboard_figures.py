"""The dashboard's figures against independent answers (no browser): the liquidation curve against
the liquidation prices of the root search, the what-if against the instrument's P&L formula, the
stress page against the stress engine run directly, the warnings against hand-made cases."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from crossmargin.adapters.files import load_book
from crossmargin.adapters.history.stress_windows import historical_moves, market_depth
from crossmargin.core.book import Book
from crossmargin.core.stress.impact import MarketDepth, SquareRootImpact
from crossmargin.dashboard import figures, stress
from crossmargin.dashboard.source import EngineSnapshot, VenueView
from crossmargin.dashboard.standalone import BookVenue
from crossmargin.engine.margin_run import MarginRun, price_levels
from crossmargin.engine.risk_engine import RiskEngine
from crossmargin.engine.stress import (
    LocalShards,
    forward_stress,
    hypothetical_shock,
    policy_named,
    prepare_venue,
    run_cascade,
    screen,
    shocks_scenario_set,
    split_path,
    window_shock,
)
from crossmargin.engine.venue import PriceState
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


def test_dashboard_stress_is_the_stress_engine_on_the_venue(view: VenueView) -> None:
    """Every mode of the page equals `engine.stress` run directly, as the CLI runs it, on the
    venue's book, market, model and insurance fund; a move of zero is today's venue."""
    engine = view.engine
    venue = prepare_venue(engine.book, engine.market)
    fund = view.insurance_fund_usd
    full_queue = policy_named("full/queue")
    moves = dict.fromkeys(engine.market.underlyings, -0.3)
    shock = hypothetical_shock(venue.book, label="every underlying -30%", moves=moves)
    page = stress.run(view, stress.StressRequest(mode="shock", move=-0.3))
    direct = forward_stress(venue, engine.model, shock, policy=full_queue, insurance_fund_usd=fund)
    assert page["report"] == direct.summary()
    assert page["report"]["under_maintenance"] >= 2 and page["report"]["shortfall_usd"] > 0.0
    pnl = screen(venue, shocks_scenario_set([shock]))[:, 0]
    assert {r["account_id"]: r["pnl_usd"] for r in page["rows"]} == {
        a: float(pnl[n]) for n, a in enumerate(venue.book.account_ids) if pnl[n] < 0.0
    }
    # A cascade: the path in steps, with square-root impact from the data's depth, partial/pro_rata.
    asked = stress.StressRequest(
        mode="cascade", move=-0.3, steps=3, policy="partial/pro_rata", volume_share=0.02, depth_multiplier=0.1
    )
    page = stress.run(view, asked)
    depth = {
        s: MarketDepth(daily_volume_usd=d.daily_volume_usd * 0.02, daily_volatility=d.daily_volatility)
        for s, d in market_depth().items()
    }
    direct = run_cascade(
        LocalShards.of(venue, engine.model),
        venue,
        split_path(shock, 3),
        policy=policy_named("partial/pro_rata"),
        insurance_fund_usd=fund,
        impact=SquareRootImpact(depth=depth, depth_multiplier=0.1),
    )
    assert page["report"] == direct.summary()
    assert (
        page["report"]["policy"] == "partial/pro_rata"
        and len({r["step"] for r in page["report"]["path"]}) == 3
    )
    # A historical window: the engine's window shock of the shared data's FTX collapse.
    page = stress.run(view, stress.StressRequest(mode="historical", window="ftx-2022-11"))
    (ftx,) = [m for m in historical_moves() if m.window.name == "ftx-2022-11"]
    window, proxied = window_shock(venue, ftx)
    direct = forward_stress(venue, engine.model, window, policy=full_queue, insurance_fund_usd=fund)
    assert page["report"] == direct.summary() and page["proxied"] == list(proxied)
    assert page["moves"]["BTC"] == pytest.approx(-0.241, abs=0.001)  # docs/stress.md's FTX row
    still = stress.run(view, stress.StressRequest(mode="shock", move=0.0))
    assert still["rows"] == [] and still["report"]["shortfall_usd"] == 0.0
    assert still["report"]["fund_end_usd"] == fund == 1_000_000.0  # the venue's fund, untouched
    for field, request in (
        ("mode", stress.StressRequest(mode="sideways")),
        ("move", stress.StressRequest(move=-1.5)),
        ("steps", stress.StressRequest(mode="cascade", steps=0)),
        ("policy", stress.StressRequest(policy="full/whatever")),
        ("window", stress.StressRequest(mode="historical", window="1929")),
        ("volume_share", stress.StressRequest(mode="cascade", volume_share=0.0)),
    ):
        with pytest.raises(InputError) as raised:
            stress.run(view, request)
        assert raised.value.field == field


def test_dashboard_warnings_name_stale_prices_gates_and_tiers(view: VenueView) -> None:
    now = view.as_of_ns
    prices = (
        PriceState.at("BTC", 88_000.0, quoted_ns=now - 42 * 10**9, exact=True, now_ns=now, max_age_s=10.0),
        PriceState.at("ETH", 3_000.0, quoted_ns=now - 7_200 * 10**9, exact=False, now_ns=now, max_age_s=10.0),
        PriceState.at("SOL", 125.0, quoted_ns=now - 10**9, exact=True, now_ns=now, max_age_s=10.0),
    )
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
        dataclasses.replace(
            view, engine=engine, prices=lambda: prices, withdrawals_gated_reason="bad debt 5 USD"
        )
    )
    kinds = {(w["kind"], w["subject"]) for w in found}
    stale = {w["subject"]: w["message"] for w in found if w["kind"] == "price_stale"}
    assert set(stale) == {"BTC", "ETH"}  # SOL quoted 1 s ago
    assert stale["BTC"].startswith("stale: 88,000.00 USD, last quoted") and "42.0 s ago" in stale["BTC"]
    assert "held since before the venue last opened" in stale["ETH"] and "2.0 h ago" in stale["ETH"]
    assert ("withdrawals_gated", "venue") in kinds
    assert ("withdrawals_gated", "near-liquidation") in kinds  # in margin call
    assert ("limit_near", "directional") in kinds
    assert next(w for w in found if w["kind"] == "limit_near")["message"].startswith("ETH-USDC-PERP")
    plain = figures.warnings(view)
    assert not any(w["kind"] in ("limit_near", "price_stale", "prices_absent") for w in plain)
    none = figures.warnings(dataclasses.replace(view, prices=lambda: ()))
    assert ("prices_absent", "venue") in {(w["kind"], w["subject"]) for w in none}


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


def test_dashboard_warnings_say_the_oracle_holds_a_move_or_its_sources_disagree(view: VenueView) -> None:
    """The oracle's word reaches the page through the venue's price states: a held move is a
    circuit-breaker warning, a source band above 2 % of the price a disagreement; a quiet
    oracle (ok, 0.2 % band) raises neither."""
    now = view.as_of_ns
    recent = {"quoted_ns": now - 10**9, "exact": True, "now_ns": now, "max_age_s": 120.0}
    prices = (
        PriceState.at("BTC", 88_000.0, oracle="ok", band_fraction=0.002, **recent),
        PriceState.at("ETH", 3_000.0, oracle="held", band_fraction=0.01, **recent),
        PriceState.at("SOL", 125.0, oracle="ok", band_fraction=0.08, **recent),
    )
    assert [p.status for p in prices] == ["valid", "held", "valid"]
    found = figures.warnings(dataclasses.replace(view, prices=lambda: prices))
    oracle = {(w["kind"], w["subject"]): w["message"] for w in found if w["kind"].startswith("oracle")}
    assert set(oracle) == {("oracle_held", "ETH"), ("oracle_disagree", "SOL")}
    assert (
        oracle[("oracle_held", "ETH")].startswith("circuit breaker tripped")
        and "3,000.00 USD" in oracle[("oracle_held", "ETH")]
    )
    assert "8.00% of the price" in oracle[("oracle_disagree", "SOL")]
