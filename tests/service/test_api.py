"""The HTTP API over the real venue (SQLite and PostgreSQL): exact money at the edge, idempotency,
problem+json naming the field, margin under every model, what-if, explain, the event log, the
insurance fund, metrics, readiness."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.service.conftest import Running

HOLDER = "basis-trader"
PERP = "BTC-USDC-PERP"


def _account(service: Running, account: str = HOLDER) -> dict:  # type: ignore[type-arg]
    response = service.client.get(f"/v1/accounts/{account}", headers=service.as_(service.risk))
    assert response.status_code == 200, response.text
    return dict(response.json())


def _units(view: dict, asset: str, key: str = "balances") -> int:  # type: ignore[type-arg]
    return next((int(b["units"]) for b in view[key] if b["asset"] == asset), 0)


def test_deposit_and_withdrawal_move_exact_units_and_withdrawable_is_the_limit(service: Running) -> None:
    holder = service.as_(service.holder(HOLDER))
    before = _account(service)
    deposit = service.client.post(
        f"/v1/accounts/{HOLDER}/deposits", json={"asset": "BTC", "amount": "0.12345678"}, headers=holder
    )
    assert deposit.status_code == 201, deposit.text
    ack = deposit.json()
    assert ack["kind"] == "deposit" and ack["sequence"] == before["sequence"] + 1 and not ack["duplicate"]
    after = _account(service)
    assert _units(after, "BTC") - _units(before, "BTC") == 12_345_678  # 8 decimals, exact
    assert after["sequence"] == ack["sequence"]
    # Withdrawable sits beside equity and available, per asset, exact in units and decimals.
    usdc = next(w for w in after["withdrawable"] if w["asset"] == "USDC")
    assert Decimal(usdc["amount"]) * 10**6 == usdc["units"] > 0
    assert after["available_usd"] == pytest.approx(
        after["equity_usd"] - after["initial_margin_usd"] - after["reserved_usd"]
    )
    too_much = str(Decimal(usdc["units"] + 1) / 10**6)
    refused = service.client.post(
        f"/v1/accounts/{HOLDER}/withdrawals", json={"asset": "USDC", "amount": too_much}, headers=holder
    )
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert service.context.venue_sequence() == ack["sequence"]  # a refusal appends nothing
    exact = service.client.post(
        f"/v1/accounts/{HOLDER}/withdrawals", json={"asset": "USDC", "amount": usdc["amount"]}, headers=holder
    )
    assert exact.status_code == 201, exact.text
    assert _units(after, "USDC") - _units(_account(service), "USDC") == usdc["units"]


BAD_MONEY = [
    ({"asset": "BTC", "amount": "0.123456789"}, "body.amount"),  # 9 decimals: never rounded
    ({"asset": "BTC", "amount": "-1"}, "body.amount"),
    ({"asset": "BTC", "amount": "1e3"}, "body.amount"),
    ({"asset": "BTC", "amount": 1}, "body.amount"),
    ({"asset": "DOGE", "amount": "1"}, "body.asset"),
    ({"asset": "BTC", "amount": "1", "memo": "x"}, "body.memo"),
    ({"amount": "1"}, "body.asset"),
]


def test_bad_money_is_a_problem_naming_the_field_and_appends_nothing(service: Running) -> None:
    sequence = service.context.venue_sequence()
    for body, field in BAD_MONEY:
        response = service.client.post(
            f"/v1/accounts/{HOLDER}/deposits", json=body, headers=service.as_(service.holder(HOLDER))
        )
        assert response.status_code == 422, response.text
        problem = response.json()
        assert response.headers["content-type"] == "application/problem+json"
        assert problem["field"] == field and problem["status"] == 422 and problem["detail"], (body, problem)
    assert service.context.venue_sequence() == sequence


def test_idempotency_key_repeated_has_one_effect_and_another_body_is_a_conflict(service: Running) -> None:
    holder = service.as_(service.holder(HOLDER)) | {"Idempotency-Key": "deposit-7f3a"}
    body = {"asset": "USDC", "amount": "250.5"}
    before = _units(_account(service), "USDC")
    acks = [
        service.client.post(f"/v1/accounts/{HOLDER}/deposits", json=body, headers=holder) for _ in range(3)
    ]
    assert [a.status_code for a in acks] == [201, 201, 201]
    assert len({a.json()["sequence"] for a in acks}) == 1
    assert [a.json()["duplicate"] for a in acks] == [False, True, True]
    assert _units(_account(service), "USDC") - before == 250_500_000
    conflict = service.client.post(
        f"/v1/accounts/{HOLDER}/deposits", json={"asset": "USDC", "amount": "250.6"}, headers=holder
    )
    assert conflict.status_code == 409 and conflict.json()["field"] == "header.idempotency-key"


def test_orders_reserve_margin_and_cancelling_frees_it(service: Running) -> None:
    holder = service.as_(service.holder(HOLDER))
    # basis-trader is short 10 perps: selling 2 more adds risk, so the order reserves IM.
    placed = service.client.post(
        f"/v1/accounts/{HOLDER}/orders",
        json={"order_id": "bid-1", "instrument": PERP, "quantity": -2, "price": 90_000.0},
        headers=holder,
    )
    assert placed.status_code == 201, placed.text
    view = _account(service)
    assert view["reserved_usd"] > 0 and view["open_orders"][0]["order_id"] == "bid-1"
    cancelled = service.client.delete(f"/v1/accounts/{HOLDER}/orders/bid-1", headers=holder)
    assert cancelled.status_code == 200, cancelled.text
    assert _account(service)["reserved_usd"] == 0
    missing = service.client.delete(f"/v1/accounts/{HOLDER}/orders/bid-1", headers=holder)
    assert missing.status_code == 422 and missing.json()["field"] == "path.order_id"


def test_fill_moves_positions_of_both_sides(service: Running) -> None:
    risk = service.as_(service.risk)
    fill = service.client.post(
        "/v1/fills",
        json={"taker": "directional", "maker": HOLDER, "instrument": PERP, "quantity": 1, "price": 88_500.0},
        headers=risk,
    )
    assert fill.status_code == 201, fill.text
    positions = {p["instrument"]: p["quantity"] for p in _account(service)["positions"]}
    assert positions[PERP] == -11  # was -10, sold one more
    taker = {p["instrument"]: p["quantity"] for p in _account(service, "directional")["positions"]}
    assert taker[PERP] == 1


def test_margin_under_every_model_what_if_and_explain(service: Running) -> None:
    holder = service.as_(service.holder("vol-seller"))
    view = _account(service, "vol-seller")
    margins = {}
    for model in ("cross", "isolated", "portfolio", "sensitivity"):
        response = service.client.get(f"/v1/accounts/vol-seller/margin?model={model}", headers=holder)
        assert response.status_code == 200, response.text
        margins[model] = response.json()
    assert margins["cross"]["initial_margin_usd"] == pytest.approx(view["initial_margin_usd"], rel=1e-12)
    assert margins["portfolio"]["preset"] == "deribit-pm"
    assert margins["portfolio"]["initial_margin_usd"] < margins["isolated"]["initial_margin_usd"]
    bad = service.client.get("/v1/accounts/vol-seller/margin?model=portfolio&preset=nope", headers=holder)
    assert bad.status_code == 422 and bad.json()["field"] == "query.preset"

    what_if = service.client.post(
        "/v1/accounts/vol-seller/what-if",
        json={"trades": [{"instrument": "BTC-30JAN26-80000-P", "quantity": -5, "price": 0.0165}]},
        headers=holder,
    )
    assert what_if.status_code == 200, what_if.text
    result = what_if.json()
    assert result["before"]["initial_margin_usd"] == pytest.approx(view["initial_margin_usd"], rel=1e-12)
    assert result["after"]["initial_margin_usd"] > result["before"]["initial_margin_usd"]  # more short puts
    unknown = service.client.post(
        "/v1/accounts/vol-seller/what-if",
        json={"trades": [{"instrument": "NOPE", "quantity": 1}]},
        headers=holder,
    )
    assert unknown.status_code == 422 and unknown.json()["field"] == "body.trades[0].instrument"

    explain = service.client.get("/v1/accounts/vol-seller/explain", headers=holder)
    assert explain.status_code == 200, explain.text
    parts = explain.json()
    assert sum(p["initial_margin_usd"] for p in parts["positions"]) == pytest.approx(
        view["initial_margin_usd"], rel=1e-9
    )
    assert {c["asset"] for c in parts["collateral"]} == {"BTC", "ETH", "USDC"}
    gone = service.client.get("/v1/accounts/nobody/explain", headers=service.as_(service.risk))
    assert gone.status_code == 404 and gone.json()["field"] == "path.account"


def test_margin_at_a_past_sequence_reproduces_it(service: Running) -> None:
    risk = service.as_(service.risk)
    sequence = service.context.venue_sequence()
    then = service.client.get(f"/v1/accounts/{HOLDER}/margin?model=cross", headers=risk).json()
    tick = service.client.post("/v1/prices", json={"index_prices": {"BTC": 80_000.0}}, headers=risk)
    assert tick.status_code == 201, tick.text
    now = service.client.get(f"/v1/accounts/{HOLDER}/margin?model=cross", headers=risk).json()
    assert now["equity_usd"] != then["equity_usd"]
    past = service.client.get(f"/v1/accounts/{HOLDER}/margin-at?sequence={sequence}", headers=risk).json()
    assert past["equity_usd"] == pytest.approx(then["equity_usd"], rel=1e-12)
    assert past["initial_margin_usd"] == pytest.approx(then["initial_margin_usd"], rel=1e-12)


def test_event_log_pages_are_contiguous_and_hash_chained(service: Running) -> None:
    risk = service.as_(service.risk)
    for n in range(3):
        service.client.post(
            f"/v1/accounts/{HOLDER}/deposits",
            json={"asset": "USDC", "amount": str(n + 1)},
            headers=service.as_(service.holder(HOLDER)),
        )
    seen = []
    after = 0
    while True:
        page = service.client.get(f"/v1/events?after={after}&limit=2", headers=risk).json()
        if not page["entries"]:
            break
        seen.extend(page["entries"])
        after = page["next_after"]
    assert [e["sequence"] for e in seen] == list(range(1, page["last_sequence"] + 1))
    assert seen[0]["kind"] == "genesis" and [e["kind"] for e in seen[-3:]] == ["deposit"] * 3
    assert len({e["record_hash"] for e in seen}) == len(seen)


def test_insurance_fund_health_readiness_and_metrics(service: Running) -> None:
    fund = service.client.get("/v1/insurance-fund", headers=service.as_(service.holder(HOLDER)))
    assert fund.status_code == 200 and {b["asset"] for b in fund.json()["balances"]} >= {"USDC", "BTC"}
    assert service.client.get("/healthz").json() == {"status": "ok"}
    ready = service.client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["sequence"] == service.context.venue_sequence()
    assert ready["log_audit"] == "not_needed"  # the whole chain verified at start-up (the default)
    tick = service.client.post(
        "/v1/prices", json={"index_prices": {"BTC": 80_000.0}}, headers=service.as_(service.risk)
    )
    assert tick.status_code == 201
    text = service.client.get("/metrics").text
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line and not line.startswith("#") and "{" not in line
    }
    assert values["crossmargin_log_sequence"] == service.context.venue_sequence()
    assert values["crossmargin_events_committed_total"] >= 1
    assert values["crossmargin_command_queue_depth"] == 0
    # Fresh keys only so far: none looked up in the log; every key still in memory, so the filter
    # (of the keys memory let go, and those of the log at start-up: none here) is still empty.
    assert values["crossmargin_idempotency_lookups_total"] == 0
    assert values["crossmargin_idempotency_keys_in_memory"] >= 1
    assert values["crossmargin_idempotency_filter_bytes"] == 0
    # The liquidation engine runs before the ack: what is left under MM is what it could not cure.
    risk = service.as_(service.risk)
    statuses = [a["status"] for a in service.client.get("/v1/accounts", headers=risk).json()["accounts"]]
    assert values["crossmargin_accounts_below_maintenance"] == sum(
        s in ("liquidation", "bankrupt") for s in statuses
    )
    assert values["crossmargin_margin_cycle_last_seconds"] > 0
    assert 'crossmargin_http_requests_total{method="GET",route="/v1/insurance-fund",status="200"} 1.0' in text
