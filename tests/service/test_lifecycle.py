"""POST /v1/funding, /v1/interest and /v1/expiries on a real service over SQLite: the balances
after each are the ledger's exact units, a holder key is refused, bad input is a problem naming
the field, and an expired instrument takes no more fills. (The service's clock is the wall clock:
the desk's dated future and options expired in 2026, so their settlement is accepted now.)"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.service.conftest import Database, Running, settings_for, start

PERP = "BTC-USDC-PERP"
FUTURE = "BTC-27MAR26"
HOUR_NS = 3_600 * 10**9


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Running]:
    yield from start(settings_for(Database(f"sqlite:///{tmp_path / 'venue.db'}"), tmp_path))


def units(service: Running, account: str, asset: str) -> int:
    view = service.client.get(f"/v1/accounts/{account}", headers=service.as_(service.risk)).json()
    return next((int(b["units"]) for b in view["balances"] if b["asset"] == asset), 0)


def post(service: Running, path: str, body: dict[str, Any], key: str | None = None) -> Any:
    headers = service.as_(service.risk)
    if key is not None:
        headers["Idempotency-Key"] = key
    return service.client.post(path, json=body, headers=headers)


def test_funding_endpoint_pays_the_short_and_sweeps_the_residue(service: Running) -> None:
    before = units(service, "basis-trader", "USDC")
    response = post(service, "/v1/funding", {"instrument": PERP, "funding_rate": 0.0001}, key="funding-1")
    assert response.status_code == 201, response.text
    assert response.json()["kind"] == "settle_funding"
    # Short 10 BTC-USDC-PERP at the BTC index 88,528.93: receives 88.528930 USDC (rounded down).
    assert units(service, "basis-trader", "USDC") - before == 88_528_930
    again = post(service, "/v1/funding", {"instrument": PERP, "funding_rate": 0.0001}, key="funding-1")
    assert again.status_code == 201 and again.json()["duplicate"]
    assert units(service, "basis-trader", "USDC") - before == 88_528_930  # one effect
    wrong = post(service, "/v1/funding", {"instrument": FUTURE, "funding_rate": 0.0001})
    assert wrong.status_code == 422 and wrong.json()["field"] == "body.instrument"
    assert "not a perpetual" in wrong.json()["detail"]
    too_big = post(service, "/v1/funding", {"instrument": PERP, "funding_rate": 2.0})
    assert too_big.status_code == 422 and too_big.json()["field"] == "body.funding_rate"
    holder = service.client.post(
        "/v1/funding",
        json={"instrument": PERP, "funding_rate": 0.0001},
        headers=service.as_(service.holder("basis-trader")),
    )
    assert holder.status_code == 403


def test_interest_endpoint_charges_the_borrower(service: Running) -> None:
    # basis-trader buys back its short at 110,000 (entry 88,650): it ends up borrowing USDC.
    fill = post(
        service,
        "/v1/fills",
        {
            "taker": "basis-trader",
            "maker": "vol-seller",
            "instrument": PERP,
            "quantity": 10,
            "price": 110_000.0,
        },
    )
    assert fill.status_code == 201, fill.text
    owed = units(service, "basis-trader", "USDC")
    assert owed < 0
    fees_before = units_of_fees(service)
    response = post(service, "/v1/interest", {"elapsed_ns": HOUR_NS}, key="interest-h1")
    assert response.status_code == 201, response.text
    # 9 % APR (the desk's USDC borrow rate) for one hour of a 365-day year, rounded up.
    interest = math.ceil(-owed / 1e6 * 0.09 * HOUR_NS / (365 * 24 * HOUR_NS) * 1e6)
    assert units(service, "basis-trader", "USDC") == owed - interest
    assert units_of_fees(service) == fees_before + interest
    bad = post(service, "/v1/interest", {"elapsed_ns": 0})
    assert bad.status_code == 422 and bad.json()["field"] == "body.elapsed_ns"


def units_of_fees(service: Running) -> int:
    return service.context.venue.balances("USDC").get("@fees", 0)


def test_expiry_endpoint_settles_the_future_and_refuses_later_fills(service: Running) -> None:
    before = units(service, "basis-trader", "BTC")
    response = post(service, "/v1/expiries", {"instrument": FUTURE, "settlement_price": 90_000.0})
    assert response.status_code == 201, response.text
    # Short 45,000 × 10 USD inverse at 90,100 settles 450,000 × (1/90,000 − 1/90,100) BTC, down.
    assert units(service, "basis-trader", "BTC") - before == math.floor(
        -45_000 * 10 * (1 / 90_100 - 1 / 90_000) * 1e8
    )
    view = service.client.get("/v1/accounts/basis-trader", headers=service.as_(service.risk)).json()
    assert FUTURE not in {p["instrument"] for p in view["positions"]}
    late = post(
        service,
        "/v1/fills",
        {
            "taker": "basis-trader",
            "maker": "vol-seller",
            "instrument": FUTURE,
            "quantity": 1,
            "price": 90_000.0,
        },
    )
    assert late.status_code == 422 and late.json()["field"] == "body.instrument"
    assert "expired" in late.json()["detail"]
    perp = post(service, "/v1/expiries", {"instrument": PERP, "settlement_price": 90_000.0})
    assert perp.status_code == 422 and perp.json()["field"] == "body.instrument"
    assert "does not expire" in perp.json()["detail"]
