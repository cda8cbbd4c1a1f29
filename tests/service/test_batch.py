"""POST /v1/events/batch over the real venue (SQLite and PostgreSQL): every event keeps its own
idempotency key and is validated, authorised and decided on its own; the accepted ones share one
commit and are acknowledged after it; a refused one appends nothing and says why."""

from __future__ import annotations

from typing import Any

from tests.service.conftest import Running

HOLDER = "basis-trader"
OTHER = "vol-seller"
PERP = "BTC-USDC-PERP"


def _usdc(service: Running, account: str) -> int:
    view = service.client.get(f"/v1/accounts/{account}", headers=service.as_(service.risk)).json()
    return next((int(b["units"]) for b in view["balances"] if b["asset"] == "USDC"), 0)


def _post(service: Running, key: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    response = service.client.post("/v1/events/batch", json={"events": events}, headers=service.as_(key))
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_batch_shares_one_commit_and_refuses_each_bad_event_on_its_own(service: Running) -> None:
    before = {a: _usdc(service, a) for a in (HOLDER, OTHER)}
    commits_before = service.context.venue.stats()["batches"]
    sequence = service.context.venue_sequence()
    events: list[dict[str, Any]] = [
        {"kind": "deposit", "idempotency_key": "b-1", "account": HOLDER, "asset": "USDC", "amount": "10"},
        {
            "kind": "deposit",
            "idempotency_key": "b-2",
            "account": HOLDER,
            "asset": "USDC",
            "amount": "0.0000001",
        },
        {
            "kind": "transfer",
            "idempotency_key": "b-3",
            "account": HOLDER,
            "to_account": OTHER,
            "asset": "USDC",
            "amount": "4.5",
        },
        {
            "kind": "withdrawal",
            "idempotency_key": "b-4",
            "account": OTHER,
            "asset": "USDC",
            "amount": "1000000000000",
        },
        {"kind": "deposit", "idempotency_key": "b-5", "account": "nobody", "asset": "USDC", "amount": "1"},
        {
            "kind": "fill",
            "idempotency_key": "b-6",
            "taker": HOLDER,
            "maker": OTHER,
            "instrument": PERP,
            "quantity": 1,
            "price": 60000.0,
        },
        {"kind": "deposit", "idempotency_key": "b-1", "account": HOLDER, "asset": "USDC", "amount": "10"},
        {"kind": "deposit", "idempotency_key": "b-1", "account": HOLDER, "asset": "USDC", "amount": "11"},
        {"kind": "teleport", "idempotency_key": "b-9"},
    ]
    result = _post(service, service.admin, events)
    status = [r["status"] for r in result["results"]]
    assert status == [201, 422, 201, 422, 422, 201, 201, 409, 422], result
    assert [r["index"] for r in result["results"]] == list(range(len(events)))
    fields = {r["index"]: r["problem"]["field"] for r in result["results"] if r["status"] != 201}
    assert fields == {
        1: "body.events[1].amount",  # 7 decimals on a 6-decimal asset: never rounded
        3: "body.events[3].amount",  # above what the account may withdraw
        4: "body.events[4].account",
        7: "header.idempotency-key",  # same key, another body: a conflict, as on the single route
        8: "body.events[8].kind",
    }, result
    acks = [r["ack"] for r in result["results"] if r["status"] == 201]
    new = [a for a in acks if not a["duplicate"]]
    # Gap-free sequence, one commit for every accepted event; the repeated key is the same ack.
    assert [a["sequence"] for a in new] == [sequence + 1, sequence + 2, sequence + 3]
    assert acks[3] == {**acks[0], "duplicate": True}
    assert service.context.venue.stats()["batches"] == commits_before + 1
    assert result["accepted"] == 4 and result["rejected"] == 5
    assert _usdc(service, HOLDER) - before[HOLDER] == 10_000_000 - 4_500_000 - _fee_units(service, new[2])
    assert _usdc(service, OTHER) - before[OTHER] == 4_500_000 - _fee_units(service, new[2], OTHER)
    # The same batch again: nothing new, every accepted event its original ack.
    again = _post(service, service.admin, events)
    assert [r["status"] for r in again["results"]] == status
    assert all(r["ack"]["duplicate"] for r in again["results"] if r["status"] == 201)
    assert service.context.venue_sequence() == sequence + 3


def _fee_units(service: Running, ack: dict[str, Any], account: str = HOLDER) -> int:
    """USDC units the fill at `ack` took from `account` (fees and the PnL of opening at a price
    off the mark settle in USDC), read from its log record's postings."""
    page = service.client.get(
        f"/v1/events?after={ack['sequence'] - 1}&limit=1", headers=service.as_(service.risk)
    ).json()
    postings = page["entries"][0]["payload"]["effects"].get("postings", [])
    out = sum(int(u) for d, _, k, u, _ in postings if d == account and k == "USDC")
    into = sum(int(u) for _, c, k, u, _ in postings if c == account and k == "USDC")
    return out - into


def test_batch_applies_each_events_access_rule(service: Running) -> None:
    sequence = service.context.venue_sequence()
    events: list[dict[str, Any]] = [
        {"kind": "deposit", "idempotency_key": "h-1", "account": HOLDER, "asset": "USDC", "amount": "1"},
        {
            "kind": "fill",
            "idempotency_key": "h-2",
            "taker": HOLDER,
            "maker": OTHER,
            "instrument": PERP,
            "quantity": 1,
            "price": 60000.0,
        },
    ]
    # A holder key is refused as a whole, even for its own account: batches are the venue's path.
    holder = service.client.post(
        "/v1/events/batch", json={"events": events}, headers=service.as_(service.holder(HOLDER))
    )
    assert holder.status_code == 403, holder.text
    # A risk key feeds fills but moves no account's money: refused event by event.
    risk = _post(service, service.risk, events)
    assert [r["status"] for r in risk["results"]] == [403, 201], risk
    assert risk["results"][0]["problem"]["field"] == "body.events[0].account"
    assert service.context.venue_sequence() == sequence + 1


def test_batch_shape_is_refused_whole(service: Running) -> None:
    headers = service.as_(service.admin)
    bodies: tuple[dict[str, Any], ...] = ({"events": []}, {"events": {}}, {}, {"events": [{}] * 1001})
    for body in bodies:
        response = service.client.post("/v1/events/batch", json=body, headers=headers)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["field"].startswith("body.events")
