"""Authorisation: every endpoint tried with a holder's key against another account is refused and
changes nothing; a revoked key is refused everywhere; the route table is covered case by case (a
new route without a case here fails the test). Select with `pytest -k authorisation`."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import APIWebSocketRoute
from starlette.websockets import WebSocketDisconnect

from tests.service.conftest import Running


@pytest.fixture
def service(module_service: Running) -> Running:
    """The module's service: these tests refuse things, so they share one (the revocation test
    mints and revokes a key of its own)."""
    return module_service


OWN = "basis-trader"
OTHER = "vol-seller"
PERP = "BTC-USDC-PERP"


def account_cases(account: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    """(method, path, json body) of every route about one account, with a valid body."""
    base = f"/v1/accounts/{account}"
    return [
        ("GET", base, None),
        ("POST", f"{base}/deposits", {"asset": "USDC", "amount": "1"}),
        ("POST", f"{base}/withdrawals", {"asset": "USDC", "amount": "1"}),
        ("POST", f"{base}/transfers", {"asset": "USDC", "amount": "1", "to_account": OWN}),
        ("POST", f"{base}/orders", {"order_id": "o-1", "instrument": PERP, "quantity": 1, "price": 80000.0}),
        ("DELETE", f"{base}/orders/o-1", None),
        ("GET", f"{base}/margin?model=portfolio", None),
        ("GET", f"{base}/margin-at?sequence=1", None),
        ("POST", f"{base}/what-if", {"trades": [{"instrument": PERP, "quantity": 1}]}),
        ("GET", f"{base}/explain", None),
    ]


VENUE_CASES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/v1/accounts", None),
    ("POST", "/v1/accounts", {"account": "newcomer"}),
    (
        "POST",
        "/v1/fills",
        {"taker": OWN, "maker": OTHER, "instrument": PERP, "quantity": 1, "price": 88000.0},
    ),
    ("POST", "/v1/prices", {"index_prices": {"BTC": 1.0}}),
    ("POST", "/v1/funding", {"instrument": PERP, "funding_rate": 0.0001}),
    ("POST", "/v1/interest", {"elapsed_ns": 3_600_000_000_000}),
    ("POST", "/v1/expiries", {"instrument": "BTC-27MAR26", "settlement_price": 90_000.0}),
    ("POST", "/v1/stress", {"shocks": [{"moves": {"BTC": -0.1}}]}),
    ("GET", "/v1/events", None),
    (
        "POST",
        "/v1/events/batch",
        {
            "events": [
                {"kind": "deposit", "idempotency_key": "a-1", "account": OWN, "asset": "USDC", "amount": "1"}
            ]
        },
    ),
    ("POST", "/v1/admin/keys", {"role": "admin"}),
    ("GET", "/v1/admin/keys", None),
    ("DELETE", "/v1/admin/keys/0123456789ab", None),
    ("GET", "/v1/admin/audit", None),
    ("POST", "/v1/admin/risk-parameters/preview", {"margin_call": {}}),
    ("PUT", "/v1/admin/risk-parameters", {"margin_call": {}, "override": True}),
]
# Open to every key (insurance fund, prices: venue-level, published by venues) or to nobody's key
# at all. By (method, path): POST /v1/prices stays a venue case above.
OPEN_ROUTES = {"/v1/insurance-fund", "/healthz", "/readyz", "/metrics"}
OPEN_TO_ANY_KEY = {("GET", "/v1/prices")}


def _template(path: str) -> str:
    return path.split("?")[0]


def test_authorisation_cases_cover_every_route(service: Running) -> None:
    covered = {
        (m, _template(p).replace(OTHER, "{account}").replace("o-1", "{order_id}"))
        for m, p, _ in account_cases(OTHER)
    }
    covered |= {(m, _template(p).replace("0123456789ab", "{key_id}")) for m, p, _ in VENUE_CASES}
    covered |= OPEN_TO_ANY_KEY
    # The served OpenAPI schema lists every HTTP operation however the routers are nested
    # (FastAPI 0.16x keeps included routers as objects of their own in `app.routes`).
    paths = service.client.app.openapi()["paths"]  # type: ignore[attr-defined]
    checked = 0
    for path, operations in paths.items():
        if path in OPEN_ROUTES or path.startswith("/dashboard"):
            continue
        for method in operations:
            assert (method.upper(), path) in covered, f"no authorisation case for {method.upper()} {path}"
            checked += 1
    assert checked >= 20, f"only {checked} operations found: the route walk is broken"
    websockets = [r for r in service.client.app.routes if isinstance(r, APIWebSocketRoute)]  # type: ignore[attr-defined]
    assert all(r.path == "/v1/stream" for r in websockets)  # covered by test_authorisation_stream_*


def _state(service: Running) -> tuple[int, Any]:
    risk = service.as_(service.risk)
    other = service.client.get(f"/v1/accounts/{OTHER}", headers=risk).json()
    return service.context.venue_sequence(), other


def _refusals(service: Running, key: str) -> int:
    entries = service.client.get("/v1/admin/audit?limit=10000", headers=service.as_(service.admin)).json()[
        "entries"
    ]
    return sum(e["status"] == 403 and e["key_id"] == key.split("_")[1] for e in entries)


def test_authorisation_holder_refused_on_another_account_and_nothing_changes(service: Running) -> None:
    before = _state(service)
    audited_before = _refusals(service, service.holder(OWN))
    holder = service.as_(service.holder(OWN))
    for method, path, body in account_cases(OTHER) + VENUE_CASES:
        response = service.client.request(method, path, json=body, headers=holder)
        assert response.status_code == 403, f"{method} {path}: {response.status_code} {response.text}"
        assert response.headers["content-type"].startswith("application/problem+json")
    assert _state(service) == before
    # every refused mutating request is audited, with the key that tried
    refused = _refusals(service, service.holder(OWN)) - audited_before
    assert refused == sum(m != "GET" for m, _, _ in account_cases(OTHER) + VENUE_CASES)


def test_authorisation_holder_allowed_on_its_own_account(service: Running) -> None:
    """The refusals above are about the account, not the requests: the same requests on the
    holder's own account pass the access check (they may still be refused on their merits: 422/404)."""
    holder = service.as_(service.holder(OWN))
    for method, path, body in account_cases(OWN):
        response = service.client.request(method, path, json=body, headers=holder)
        assert response.status_code not in (401, 403), f"{method} {path}: {response.text}"
    assert service.client.get("/v1/insurance-fund", headers=holder).status_code == 200
    for method, path in OPEN_TO_ANY_KEY:
        assert service.client.request(method, path, headers=holder).status_code == 200


def test_authorisation_revoked_key_refused_everywhere(service: Running) -> None:
    key = service.mint("holder", OWN)["key"]
    key_id = key.split("_")[1]
    holder = service.as_(key)
    assert service.client.get(f"/v1/accounts/{OWN}", headers=holder).status_code == 200
    revoked = service.client.delete(f"/v1/admin/keys/{key_id}", headers=service.as_(service.admin))
    assert revoked.status_code == 200 and revoked.json()["revoked_ns"] is not None
    before = _state(service)
    opens = [("GET", "/v1/insurance-fund", None), *((m, p, None) for m, p in OPEN_TO_ANY_KEY)]
    for method, path, body in account_cases(OWN) + VENUE_CASES + opens:
        response = service.client.request(method, path, json=body, headers=holder)
        # 401 naming the revocation; past the per-address budget for bad keys, 429.
        assert response.status_code in (401, 429), f"{method} {path}: {response.status_code}"
        assert response.status_code == 429 or "revoked" in response.json()["detail"]
    assert _state(service) == before
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        service.client.websocket_connect("/v1/stream", headers=holder) as ws,
    ):
        ws.receive_text()
    assert closed.value.code in (1008, 1013)  # refused, or over the address's budget for bad keys


def test_authorisation_missing_or_forged_keys_refused(service: Running) -> None:
    forged = service.holder(OWN)[:-4] + "AAAA"
    for headers in ({}, {"Authorization": "Bearer nonsense"}, service.as_(forged), {"X-API-Key": forged}):
        response = service.client.get(f"/v1/accounts/{OWN}", headers=headers)
        assert response.status_code == 401
        assert response.json()["field"] == "header.authorization"


def test_authorisation_stream_of_another_account_refused(service: Running) -> None:
    holder = service.as_(service.holder(OWN))
    for query in (f"?account={OTHER}", ""):
        url = "/v1/stream" + query
        if query:
            with (
                pytest.raises(WebSocketDisconnect) as closed,
                service.client.websocket_connect(url, headers=holder) as ws,
            ):
                ws.receive_text()
            assert closed.value.code == 1008
    # Without account= a holder streams its own account (not the venue).
    with service.client.websocket_connect("/v1/stream", headers=holder) as ws:
        message = ws.receive_json()
        assert message["type"] in ("notification", "checkpoint")
        if message["type"] == "notification":
            assert message["account"] == OWN


def test_authorisation_risk_key_cannot_move_money_or_mint_keys(service: Running) -> None:
    risk = service.as_(service.risk)
    assert (
        service.client.post(
            f"/v1/accounts/{OWN}/withdrawals", json={"asset": "USDC", "amount": "1"}, headers=risk
        ).status_code
        == 403
    )
    assert service.client.post("/v1/admin/keys", json={"role": "admin"}, headers=risk).status_code == 403
    assert service.client.get(f"/v1/accounts/{OTHER}", headers=risk).status_code == 200
