"""The dashboard as the margin service serves it (/dashboard beside /v1): logged in with the
service's own API keys, reading the service's venue (SQLite event log, real uvicorn on loopback),
driven by Debian's Chromium. The figures equal the service's API; a price posted to the service's
API moves the page's call queue without a reload; a holder key stays on its own account."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.dashboard.conftest import DESKTOP, login, screenshot
from tests.service.conftest import Database, Served, serve_in_thread, settings_for, stop

# How long the page may take to show a liquidation the venue made after a price posted to its API:
# a bound on a push that never comes, not a latency claim: this test shares two cores with
# another pytest worker, and on 2026-12-07 one CI run (Intel Xeon) missed a 1 s bound here while
# the next passed (the tick that liquidates, then the push). 5 s still fails a push lost or
# waiting for a reload.
LIVE_UPDATE_MS = 5_000
# The service's account view re-margins one account on its own (numpy reference path); the
# dashboard reads the venue's whole-book engine (fused kernel): equal to rounding.
KERNEL_AGREEMENT = 1e-9


class LoggedIn:
    def __init__(self, served: Served) -> None:
        self.served = served
        self.http = httpx.Client(base_url=served.url, timeout=30)
        self.keys: dict[tuple[str, str | None], str] = {}

    def mint(self, role: str, account: str | None = None) -> str:
        body = {"role": role, "label": "dashboard test"} | ({"account": account} if account else {})
        response = self.http.post(
            "/v1/admin/keys", json=body, headers={"Authorization": f"Bearer {self.served.admin}"}
        )
        assert response.status_code == 201, response.text
        key: str = response.json()["key"]
        self.keys[(role, account)] = key
        return key

    def get(self, url: str, key: str) -> dict:  # type: ignore[type-arg]
        response = self.http.get(url, headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200, response.text
        return dict(response.json())


@pytest.fixture
def service(tmp_path: Path) -> Iterator[LoggedIn]:
    served = serve_in_thread(settings_for(Database(f"sqlite:///{tmp_path / 'venue.db'}"), tmp_path))
    running = LoggedIn(served)
    try:
        yield running
    finally:
        running.http.close()
        stop(served)


def test_dashboard_in_the_service_equals_its_api_and_follows_its_prices(
    service: LoggedIn, new_page: Callable[..., Page]
) -> None:
    risk = service.mint("risk")
    page = new_page(DESKTOP)
    login(page, service.served, risk)  # type: ignore[arg-type]
    assert page.url.endswith("/dashboard/")
    expect(page.get_by_test_id("live-status")).to_have_text("live", timeout=10_000)
    accounts = service.get("/v1/accounts", risk)["accounts"]
    by_id = {a["account"]: a for a in accounts}
    total_equity = sum(a["equity_usd"] for a in accounts)
    shown = float(page.get_attribute('[data-testid="headline-equity"]', "data-value") or "nan")
    assert shown == pytest.approx(total_equity, rel=KERNEL_AGREEMENT)
    shown_mm = float(page.get_attribute('[data-testid="headline-mm"]', "data-value") or "nan")
    assert shown_mm == pytest.approx(sum(a["maintenance_margin_usd"] for a in accounts), rel=KERNEL_AGREEMENT)
    queue = [
        (r.get_attribute("data-account"), r.get_attribute("data-status"))
        for r in page.locator('[data-testid="queue-row"]').all()
    ]
    in_queue = sorted(
        a for a, s in by_id.items() if s["status"] in ("margin_call", "liquidation", "bankrupt")
    )
    assert sorted(a for a, _ in queue) == in_queue == ["near-liquidation"]
    assert all(by_id[a]["status"] == s for a, s in queue)
    fund = service.get("/v1/insurance-fund", risk)
    assert all(b["units"] == 0 for b in fund["balances"])  # the bundled book seeds none
    assert float(page.get_attribute('[data-testid="headline-insurance"]', "data-value") or "nan") == 0.0
    sequence = service.served.context.venue.last_sequence
    assert float(page.get_attribute('[data-testid="sequence"]', "data-value") or "nan") == sequence

    # A price through the service's own API: BTC -5 % takes near-liquidation (long the BTC inverse
    # perpetual) under maintenance; the venue liquidates it and it leaves the queue, on the page
    # soon after the acknowledgement, without a reload.
    assert by_id["near-liquidation"]["status"] == "margin_call"
    account = new_page(DESKTOP)
    login(account, service.served, risk)  # type: ignore[arg-type]
    account.goto(f"{service.served.url}/dashboard/accounts/near-liquidation")
    expect(account.get_by_test_id("live-status")).to_have_text("live", timeout=10_000)
    expect(account.locator('[data-testid="position-row"]')).to_have_count(2)  # BTC and SOL perpetuals
    posted = service.http.post(
        "/v1/prices",
        json={"index_prices": {"BTC": 88528.93 * 0.95}},  # the book's BTC index, -5 %
        headers={"Authorization": f"Bearer {risk}", "Idempotency-Key": "dashboard-btc-down"},
    )
    assert posted.status_code == 201, posted.text
    expect(page.locator('[data-testid="queue-row"][data-account="near-liquidation"]')).to_have_count(
        0, timeout=LIVE_UPDATE_MS
    )
    after = service.get("/v1/accounts/near-liquidation", risk)
    assert after["positions"] == [] and after["status"] not in ("margin_call", "liquidation")
    # Its account page, open since before the event, shows the liquidation without a reload: no
    # position left, the status and the equity the service reports.
    expect(account.locator('[data-testid="position-row"]')).to_have_count(0, timeout=LIVE_UPDATE_MS)
    expect(account.get_by_test_id("account-status")).to_have_attribute(
        "data-value", after["status"], timeout=LIVE_UPDATE_MS
    )
    shown = float(account.get_attribute('[data-testid="account-equity"]', "data-value") or "nan")
    assert shown == pytest.approx(after["equity_usd"], rel=KERNEL_AGREEMENT, abs=1e-6)
    expect(page.get_by_test_id("sequence")).to_have_attribute(
        "data-value", str(service.served.context.venue.last_sequence), timeout=LIVE_UPDATE_MS
    )
    # Its deficit went past the (empty) insurance fund: bad debt on the page, withdrawals gated.
    expect(page.get_by_test_id("headline-bad-debt")).not_to_have_attribute("data-value", "0.0")
    page.goto(f"{service.served.url}/dashboard/warnings")
    gated = page.locator('[data-testid="warning-row"][data-kind="withdrawals_gated"][data-subject="venue"]')
    expect(gated).to_contain_text("bad debt")
    # The venue's own price states: BTC was just quoted through the API; ETH still carries the
    # opening book's price (30 December 2025) and the service's clock is the system's: stale,
    # and said to be.
    states = service.served.context.venue.price_states()
    assert states["BTC"].exact and states["BTC"].status == "valid"
    # ETH is the desk's opening price, set by the genesis record (2025-12-30): exact, and stale.
    assert states["ETH"].exact and states["ETH"].status == "stale"
    btc = page.locator('[data-testid="price-row"][data-asset="BTC"]')
    expect(btc).to_have_attribute("data-status", "valid")
    assert float(btc.locator("td").first.get_attribute("data-value") or "nan") == 88528.93 * 0.95
    expect(page.locator('[data-testid="price-row"][data-asset="ETH"]')).to_have_attribute(
        "data-status", "stale"
    )
    stale = page.locator('[data-testid="warning-row"][data-kind="price_stale"][data-subject="ETH"]')
    expect(stale).to_contain_text("stale: ")
    expect(stale).to_contain_text("2025-12-30")
    expect(
        page.locator('[data-testid="warning-row"][data-kind="price_stale"][data-subject="BTC"]')
    ).to_have_count(0)
    # The oracle's word through the API: SOL's move held by its circuit breaker, its sources 15 %
    # apart. The page says both, and SOL keeps its price.
    word = service.http.post(
        "/v1/prices",
        json={"oracle_status": {"SOL": "held"}, "oracle_band_fraction": {"SOL": 0.15}},
        headers={"Authorization": f"Bearer {risk}", "Idempotency-Key": "dashboard-sol-held"},
    )
    assert word.status_code == 201, word.text
    page.reload()
    held = page.locator('[data-testid="warning-row"][data-kind="oracle_held"][data-subject="SOL"]')
    expect(held).to_contain_text("circuit breaker tripped")
    expect(
        page.locator('[data-testid="warning-row"][data-kind="oracle_disagree"][data-subject="SOL"]')
    ).to_contain_text("15.00% of the price")
    expect(page.locator('[data-testid="price-row"][data-asset="SOL"]')).to_have_attribute(
        "data-status", "held"
    )
    screenshot(page, "service-overview-1280x800")

    # A holder's key from the service opens its own account (the service's numbers) and no other.
    holder = service.mint("holder", "directional")
    own = new_page(DESKTOP)
    login(own, service.served, holder)  # type: ignore[arg-type]
    assert own.url.endswith("/dashboard/accounts/directional")
    mine = service.get("/v1/accounts/directional", holder)
    equity = float(own.get_attribute('[data-testid="account-equity"]', "data-value") or "nan")
    assert equity == pytest.approx(mine["equity_usd"], rel=KERNEL_AGREEMENT)
    assert own.request.get(f"{service.served.url}/dashboard/accounts/vol-seller").status == 403
    assert own.request.get(f"{service.served.url}/dashboard/api/overview").status == 403
    # A revoked key stops working at once (the cookie holds the key; every request checks it).
    key_id = holder.split("_")[1]
    revoked = service.http.delete(
        f"/v1/admin/keys/{key_id}", headers={"Authorization": f"Bearer {service.served.admin}"}
    )
    assert revoked.status_code == 200, revoked.text
    assert own.request.get(f"{service.served.url}/dashboard/api/accounts/directional").status == 401
