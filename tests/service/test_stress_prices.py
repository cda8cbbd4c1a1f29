"""POST /v1/stress, GET /v1/prices and the actor of each log record, over the real app and a real
venue (the desk book as the opening state): stress on SQLite, prices and the actor on SQLite and
PostgreSQL.

Stress figures are held equal to `engine.stress` run directly on the same book and market, built
here from the desk file by the engine's own simulation (not by the service's code path)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from crossmargin.adapters.files import load_book
from crossmargin.adapters.history.prices import shared_price_history
from crossmargin.core.ledger.state import book_of, market_of
from crossmargin.core.margin import CrossMargin
from crossmargin.core.stress.historical import NAMED_WINDOWS, window_move
from crossmargin.engine.simulation import simulation_from_book
from crossmargin.engine.stress import (
    CascadeResult,
    LocalShards,
    StressVenue,
    forward_stress,
    hypothetical_shock,
    policy_named,
    prepare_venue,
    run_cascade,
    split_path,
    window_shock,
)
from crossmargin.service import models
from crossmargin.service.runtime import key_store_engine
from tests.service.conftest import DESK, Database, Running, settings_for, start

REL = 1e-9  # the service's book lists accounts in its own order: sums may differ in the last bits


@pytest.fixture(scope="module")
def stress_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("stress")
    yield from start(settings_for(Database(f"sqlite:///{tmp / 'venue.db'}"), tmp))


@pytest.fixture(scope="module")
def engine_side() -> tuple[StressVenue, CrossMargin]:
    """The desk's opening state as the stress engine sees it, built without the service."""
    sim = simulation_from_book(load_book(DESK))
    book, market = book_of(sim.state, sim.config), market_of(sim.state, sim.config)
    return prepare_venue(book, market), CrossMargin(sim.config.margin)


def _stress(service: Running, body: dict[str, Any], key: str | None = None) -> Any:
    return service.client.post("/v1/stress", json=body, headers=service.as_(key or service.risk))


def _assert_at_shock(got: dict[str, Any], want: CascadeResult) -> None:
    assert got["under_maintenance"] == want.under_maintenance
    assert got["under_zero"] == want.under_zero
    assert got["shortfall_usd"] == pytest.approx(want.shortfall_usd, rel=REL)
    assert got["loss_usd"] == pytest.approx(want.loss_usd, rel=REL)


def test_stress_cascade_equals_the_engine_on_the_same_book(
    stress_service: Running, engine_side: tuple[StressVenue, CrossMargin]
) -> None:
    venue, model = engine_side
    shocks = [
        {"label": "crash", "moves": {"BTC": -0.25, "ETH": -0.3}, "vol_shift": {"BTC": 0.3}},
        {"moves": {"USDC": -0.12}},  # a depeg
    ]
    policy, fund = "partial/pro_rata", 50_000.0
    response = _stress(
        stress_service, {"shocks": shocks, "cascade": {"policy": policy, "insurance_fund_usd": fund}}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["sequence"] == stress_service.context.venue.last_sequence
    assert body["accounts"] == venue.book.n_accounts == 4
    crash = body["results"][0]
    assert crash["price_moves"] == pytest.approx({"BTC": -0.25, "ETH": -0.3})
    for got, spec in zip(body["results"], shocks, strict=True):
        shock = hypothetical_shock(
            venue.book, label="x", moves=spec["moves"], vol_shift=spec.get("vol_shift")
        )
        want = forward_stress(venue, model, shock, policy=policy_named(policy), insurance_fund_usd=fund)
        _assert_at_shock(got, want)
        cascade = got["cascade"]
        assert cascade["policy"] == policy
        assert cascade["liquidated_notional_usd"] == pytest.approx(want.liquidated_notional_usd, rel=REL)
        assert cascade["bad_debt_usd"] == pytest.approx(want.bad_debt_usd, rel=REL)
        assert cascade["adl_notional_usd"] == pytest.approx(want.adl_notional_usd, rel=REL)
        assert cascade["fund_used_usd"] == pytest.approx(want.fund_used_usd, rel=REL)
        assert cascade["fund_left_usd"] == pytest.approx(want.fund_end_usd, rel=REL)
        assert got["insurance_fund_left_usd"] == cascade["fund_left_usd"]
        assert got["insurance_fund_usd"] == fund
        assert len(cascade["path"]) == len(want.rounds)
    # the crash is not a quiet scenario: something is liquidated and the fund is used
    assert crash["under_maintenance"] >= 1 and crash["cascade"]["liquidated_notional_usd"] > 0
    assert crash["cascade"]["fund_used_usd"] > 0


def test_stress_cascade_in_steps_equals_the_engine_path(
    stress_service: Running, engine_side: tuple[StressVenue, CrossMargin]
) -> None:
    venue, model = engine_side
    moves = {"BTC": -0.3, "ETH": -0.35}
    cascade = {"policy": "full/queue", "insurance_fund_usd": 20_000.0, "steps": 3}
    response = _stress(stress_service, {"shocks": [{"moves": moves}], "cascade": cascade})
    assert response.status_code == 200, response.text
    got = response.json()["results"][0]
    shock = hypothetical_shock(venue.book, label="x", moves=moves)
    path = split_path(shock, 3)
    want = run_cascade(
        LocalShards.of(venue, model),
        venue,
        path,
        policy=policy_named("full/queue"),
        insurance_fund_usd=20_000.0,
    )
    assert got["cascade"]["steps"] == 3
    assert [(r["step"], r["round"]) for r in got["cascade"]["path"]] == [
        (r.step + 1, r.round) for r in want.rounds
    ]
    assert got["cascade"]["liquidated_notional_usd"] == pytest.approx(want.liquidated_notional_usd, rel=REL)
    assert got["cascade"]["bad_debt_usd"] == pytest.approx(want.bad_debt_usd, rel=REL)
    assert got["cascade"]["fund_left_usd"] == pytest.approx(want.fund_end_usd, rel=REL)
    # the figures at the shock are the whole shock's, not the first step's
    whole = forward_stress(venue, model, shock, policy=policy_named("full/queue"), insurance_fund_usd=0.0)
    _assert_at_shock(got, whole)
    assert got["shortfall_usd"] > want.shortfall_usd  # the first step alone is a smaller move


def test_stress_without_cascade_is_the_figures_at_the_shock(
    stress_service: Running, engine_side: tuple[StressVenue, CrossMargin]
) -> None:
    venue, model = engine_side
    response = _stress(stress_service, {"shocks": [{"moves": {"BTC": -0.3, "SOL": -0.5}}]})
    assert response.status_code == 200, response.text
    got = response.json()["results"][0]
    shock = hypothetical_shock(venue.book, label="x", moves={"BTC": -0.3, "SOL": -0.5})
    want = forward_stress(venue, model, shock, policy=policy_named("full/no-adl"), insurance_fund_usd=0.0)
    _assert_at_shock(got, want)
    assert got["cascade"] is None
    assert got["shortfall_usd"] > 0
    # the desk's insurance fund (nothing in it at genesis) minus the shortfall, floored at 0
    assert got["insurance_fund_usd"] == 0.0 and got["insurance_fund_left_usd"] == 0.0


def test_stress_historical_window_moves_by_the_history_closes(
    stress_service: Running, engine_side: tuple[StressVenue, CrossMargin]
) -> None:
    history = shared_price_history()
    if not history.is_available():
        pytest.skip("no shared daily closes ($CROSSMARGIN_DATA)")
    venue, model = engine_side
    response = _stress(stress_service, {"windows": ["ftx-2022-11"]})
    assert response.status_code == 200, response.text
    got = response.json()["results"][0]
    daily = history.price_history()
    window = next(w for w in NAMED_WINDOWS if w.name == "ftx-2022-11")
    btc = daily.close_usd[:, daily.column("BTC")]
    days = list(daily.days.astype(str))
    before, last = days.index("2022-11-06"), days.index("2022-11-09")
    assert got["kind"] == "historical"
    assert got["price_moves"]["BTC"] == pytest.approx(btc[last] / btc[before] - 1.0, rel=1e-12)
    move = window_move(
        window, days=daily.days, symbols=daily.symbols, close_usd=daily.close_usd, low_usd=daily.close_usd
    )
    shock, _ = window_shock(venue, move)
    want = forward_stress(venue, model, shock, policy=policy_named("full/queue"), insurance_fund_usd=0.0)
    _assert_at_shock(got, want)
    assert got["under_zero"] >= 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"shocks": [{"moves": {"DOGE": -0.2}}]}, "body.shocks[0].moves.DOGE"),
        ({"shocks": [{"moves": {"BTC": -1.0}}]}, "body.shocks[0].moves.BTC"),
        ({"shocks": [{"moves": {"BTC": -0.1}}, {"moves": {"ETH": -1.5}}]}, "body.shocks[1].moves.ETH"),
        ({"shocks": [{"vol_shift": {"USDC": 0.2}}]}, "body.shocks[0].vol_shift.USDC"),
        (
            {"shocks": [{"moves": {"BTC": -0.1}}], "cascade": {"policy": "half/lottery"}},
            "body.cascade.policy",
        ),
        ({"shocks": [{"moves": {"BTC": -0.1}}] * (models.MAX_STRESS_SCENARIOS + 1)}, "body.shocks"),
        (
            {"shocks": [{"moves": {"BTC": -0.1}}] * 10, "windows": ["may-2021"] * 7},
            "body.shocks",
        ),
        ({"windows": ["tulips-1637"]}, "body.windows[0]"),
        ({}, "body.shocks"),
        ({"shocks": [{"moves": {"BTC": -0.1}}], "cascade": {"steps": 0}}, "body.cascade.steps"),
    ],
)
def test_stress_bad_input_is_a_422_naming_the_field(
    stress_service: Running, body: dict[str, Any], field: str
) -> None:
    response = _stress(stress_service, body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["field"] == field


def test_stress_refused_to_a_holder(stress_service: Running) -> None:
    response = _stress(
        stress_service, {"shocks": [{"moves": {"BTC": -0.1}}]}, key=stress_service.holder("basis-trader")
    )
    assert response.status_code == 403
    assert response.json()["type"].endswith("/forbidden")
    assert (
        _stress(stress_service, {"shocks": [{"moves": {"BTC": -0.1}}]}, key=stress_service.admin).status_code
        == 200
    )


def test_stress_windows_without_history_is_a_409(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROSSMARGIN_DATA", str(tmp_path / "no-data"))  # nothing there
    started = start(settings_for(Database(f"sqlite:///{tmp_path / 'venue.db'}"), tmp_path))
    running = next(started)
    try:
        assert running.context.price_history is None
        response = _stress(running, {"windows": ["luna-2022-05"]})
        assert response.status_code == 409
        assert response.json()["field"] == "body.windows"
        assert "none is configured" in response.json()["detail"]
        assert _stress(running, {"shocks": [{"moves": {"BTC": -0.1}}]}).status_code == 200
    finally:
        started.close()


# -- GET /v1/prices ---------------------------------------------------------------------------------


def _by_name(quotes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {q["name"]: q for q in quotes}


def test_prices_values_times_and_staleness(service: Running) -> None:
    sim = simulation_from_book(load_book(DESK))
    holder = service.as_(service.holder("basis-trader"))  # prices are public to any key
    before = service.client.get("/v1/prices", headers=holder)
    assert before.status_code == 200, before.text
    board = before.json()
    index, collateral, marks = (_by_name(board[k]) for k in ("index", "collateral", "marks"))
    assert set(index) == set(sim.config.instruments.underlyings)
    assert set(collateral) == set(sim.config.assets.symbols)
    for name, quote in (*index.items(), *collateral.items()):
        assert quote["price_usd"] == sim.state.prices[name]
    assert marks and {n: q["price_usd"] for n, q in marks.items()} == dict(sim.state.marks)
    assert board["max_age_s"] == 120.0
    # the opening prices are the desk's, from its valuation day: stale by now, and said to be
    assert index["ETH"]["stale"] and index["ETH"]["age_s"] > 86_400
    assert "ETH" in board["stale"]

    future = next(n for n in marks if n.startswith("BTC-"))  # a dated future: the desk's one mark
    ack = service.client.post(
        "/v1/prices",
        json={"index_prices": {"BTC": 91_000.0}, "mark_prices": {future: 91_050.0}},
        headers=service.as_(service.risk),
    ).json()
    context = service.context
    real_clock = context.clock_ns
    try:
        context.clock_ns = lambda: ack["as_of_ns"] + 5_000_000_000  # 5 s after the update
        fresh = service.client.get("/v1/prices", headers=holder).json()
        index, marks = _by_name(fresh["index"]), _by_name(fresh["marks"])
        assert index["BTC"]["price_usd"] == 91_000.0 and index["BTC"]["set_ns"] == ack["as_of_ns"]
        assert index["BTC"]["age_s"] == pytest.approx(5.0) and not index["BTC"]["stale"]
        assert marks[future]["price_usd"] == 91_050.0 and not marks[future]["stale"]
        assert "BTC" not in fresh["stale"] and "ETH" in fresh["stale"]
        assert fresh["sequence"] >= ack["sequence"]
        context.clock_ns = lambda: ack["as_of_ns"] + 121_000_000_000  # past the 120 s margin rule
        late = _by_name(service.client.get("/v1/prices", headers=holder).json()["index"])
        assert late["BTC"]["stale"] and late["BTC"]["age_s"] == pytest.approx(121.0)
    finally:
        context.clock_ns = real_clock


def test_the_oracle_s_word_reaches_the_price_board(service: Running) -> None:
    """POST /v1/prices may carry the oracle's status and source band without a price: SOL held by
    the circuit breaker keeps its price and says "held"; an unknown word is a 422 naming it."""
    holder = service.as_(service.holder("basis-trader"))
    sol = _by_name(service.client.get("/v1/prices", headers=holder).json()["index"])["SOL"]["price_usd"]
    posted = service.client.post(
        "/v1/prices",
        json={"oracle_status": {"SOL": "held", "BTC": "ok"}, "oracle_band_fraction": {"SOL": 0.15}},
        headers=service.as_(service.risk),
    )
    assert posted.status_code == 201, posted.text
    index = _by_name(service.client.get("/v1/prices", headers=holder).json()["index"])
    assert index["SOL"]["price_usd"] == sol and index["SOL"]["oracle"] == "held"
    assert index["SOL"]["band_fraction"] == 0.15 and index["BTC"]["oracle"] == "ok"
    assert index["ETH"]["oracle"] is None  # the oracle never spoke of it
    bad = service.client.post(
        "/v1/prices", json={"oracle_status": {"SOL": "valid"}}, headers=service.as_(service.risk)
    )
    assert bad.status_code == 422 and "oracle_status" in bad.text
    assert service.context.venue.price_states()["SOL"].status == "held"


# -- the actor of each log record -----------------------------------------------------------------------


def test_actor_is_stored_in_the_event_row(service: Running) -> None:
    key = service.holder("basis-trader")
    ack = service.client.post(
        "/v1/accounts/basis-trader/deposits", json={"asset": "USDC", "amount": "10"}, headers=service.as_(key)
    )
    assert ack.status_code == 201, ack.text
    sequence = ack.json()["sequence"]
    key_id = key.split("_")[1]
    settings = service.context.settings
    engine = key_store_engine(settings.database_url, settings.schema)
    try:
        with engine.connect() as conn:
            actor = conn.execute(
                sa.text("SELECT actor FROM events WHERE sequence = :s"), {"s": sequence}
            ).scalar_one()
            genesis_actor = conn.execute(sa.text("SELECT actor FROM events WHERE sequence = 1")).scalar_one()
    finally:
        engine.dispose()
    assert actor == key_id
    assert genesis_actor is None  # the venue's own record: no submitter
    page = service.client.get(
        "/v1/events", params={"after": sequence - 1, "limit": 1}, headers=service.as_(service.risk)
    ).json()
    assert page["entries"][0]["actor"] == key_id
