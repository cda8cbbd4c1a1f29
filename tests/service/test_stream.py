"""The WebSocket stream: resumable from a sequence number with no gap, in (sequence, index) order,
nothing before what it depends on (a liquidation after the status change that started it), a
holder's stream holding only its own account, and new commits arriving live."""

from __future__ import annotations

import random
from typing import Any

from starlette.testclient import WebSocketTestSession

from tests.service.conftest import Running

LIQUIDATION_KINDS = {"liquidation_fill", "collateral_sale", "waterfall", "adl"}


def _drive_the_market_down(service: Running) -> int:
    """Ticks that take near-liquidation through a margin call into liquidation, with deposits
    between; returns the last sequence."""
    risk = service.as_(service.risk)
    holder = service.as_(service.holder("basis-trader"))
    for n, btc in enumerate((87_000.0, 86_000.0, 84_000.0, 82_000.0, 80_000.0)):
        assert (
            service.client.post("/v1/prices", json={"index_prices": {"BTC": btc}}, headers=risk).status_code
            == 201
        )
        deposit = {"asset": "USDC", "amount": f"{n + 1}.5"}
        assert (
            service.client.post(
                "/v1/accounts/basis-trader/deposits", json=deposit, headers=holder
            ).status_code
            == 201
        )
    return service.context.venue_sequence()


def _read_until(
    ws: WebSocketTestSession, last: int, *, stop_after: int | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Notifications until a checkpoint says everything up to `last` was sent, or until
    `stop_after` messages (a client cut off mid-batch); and the last checkpoint's cursor."""
    out: list[dict[str, Any]] = []
    cursor = -1
    for _ in range(100_000):
        message = ws.receive_json()
        if message["type"] == "checkpoint":
            cursor = message["cursor"]
            if cursor >= last:
                break
        else:
            assert message["type"] == "notification"
            out.append(message)
        if stop_after is not None and len(out) + (cursor >= 0) >= stop_after:
            break
    return out, cursor


def _key(message: dict[str, Any]) -> tuple[int, int]:
    return message["sequence"], message["index"]


def test_stream_resumes_with_no_gap_and_in_dependency_order(service: Running) -> None:
    last = _drive_the_market_down(service)
    risk = service.as_(service.risk)
    with service.client.websocket_connect("/v1/stream?after=0", headers=risk) as ws:
        reference, cursor = _read_until(ws, last)
    assert cursor == last
    keys = [_key(m) for m in reference]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    kinds = {m["kind"] for m in reference}
    assert "status" in kinds and kinds & LIQUIDATION_KINDS, kinds

    # Nothing before what it depends on: every liquidation record of an account comes after a
    # status notification that put that account into liquidation (or bankruptcy).
    entered: dict[str, tuple[int, int]] = {}
    for message in reference:
        if message["kind"] == "status" and message["detail"].get("status") in ("liquidation", "bankrupt"):
            entered.setdefault(message["account"], _key(message))
        if message["kind"] in LIQUIDATION_KINDS:
            assert message["account"] in entered and entered[message["account"]] < _key(message), message

    # Sessions cut off at random points, each resumed from the last checkpoint received: the
    # union is the reference exactly, no gap, and what a session repeats is only what came after
    # its checkpoint.
    rng = random.Random(16)
    received: list[dict[str, Any]] = []
    after = 0
    for _ in range(200):
        with service.client.websocket_connect(f"/v1/stream?after={after}", headers=risk) as ws:
            part, cursor = _read_until(ws, last, stop_after=rng.randint(1, 10))
        assert all(m["sequence"] > after for m in part)
        received = [m for m in received if m["sequence"] <= after] + part
        if cursor >= 0:
            after = cursor
        if after >= last:
            break
    assert after == last
    assert [_key(m) for m in received] == keys
    assert received == reference


def test_stream_of_a_holder_is_its_own_account_and_live(service: Running) -> None:
    last = _drive_the_market_down(service)
    holder = service.as_(service.holder("near-liquidation"))
    with service.client.websocket_connect("/v1/stream?after=0", headers=holder) as ws:
        own, cursor = _read_until(ws, last)
        assert cursor == last and own and {m["account"] for m in own} == {"near-liquidation"}
        # Live: a commit made now reaches the open stream after its ack, at its sequence.
        ack = service.client.post(
            "/v1/prices", json={"index_prices": {"BTC": 60_000.0}}, headers=service.as_(service.risk)
        ).json()
        while True:
            message = ws.receive_json()
            if message["type"] == "checkpoint" and message["cursor"] >= ack["sequence"]:
                break
            assert message["type"] == "checkpoint" or message["sequence"] >= ack["sequence"]
