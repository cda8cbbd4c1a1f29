"""WebSocket stream of margin updates, margin calls, liquidations and ADL.

    WS /v1/stream?after=N[&account=ID]

Authenticate with the handshake's `Authorization: Bearer cmk_...` (or `X-API-Key`) header. A holder
key streams its own account (`account` defaults to it; another is refused); a risk or admin key
streams the whole venue, or one account with `account=`.

Messages (JSON text frames):

    {"type": "notification", "sequence": 42, "index": 0, "kind": "status", "account": "alice",
     "detail": {...}}
    {"type": "checkpoint", "cursor": 42}    every notification up to sequence 42 was sent: after
                                            each sequence's notifications, and every second when
                                            nothing happens

Ordering and resumption. Notifications come in (sequence, index) order, read from the venue's
committed log through a cursor (`Venue.subscribe`, whose batches hold whole records), so a
notification is never sent before one it depends on (a call before the liquidation it leads to:
higher sequences) and never before its commit. Reconnect with `after=` the cursor of the last
checkpoint received: the stream resumes at the next sequence with no gap and no duplicate.

The service keeps no per-client buffer: a slow reader only falls behind the cursor, reading the
log at its own pace. Closing codes: 1008 refused (no key, revoked, another account), 1013 over the
rate limit or too many streams (retry later), 1012 the service is restarting (resume elsewhere).
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect

from crossmargin.engine.venue import Notification
from crossmargin.service import access
from crossmargin.service.context import context_of
from crossmargin.service.limits import RequestClass
from crossmargin.service.problems import Problem
from crossmargin.service.security import authenticate, key_text

router = APIRouter(prefix="/v1", tags=["stream"])

POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013
SERVICE_RESTART = 1012
BATCH = 1000


def _plain(value: Any) -> Any:
    """JSON-ready: non-finite floats become null (JSON has no NaN), containers recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def message_of(notification: Notification) -> str:
    return json.dumps(
        {
            "type": "notification",
            "sequence": notification.sequence,
            "index": notification.index,
            "kind": notification.kind,
            "account": notification.account,
            "detail": _plain(dict(notification.detail)),
        },
        allow_nan=False,
    )


@router.websocket("/stream")
async def stream(
    websocket: WebSocket,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    account: Annotated[str | None, Query(max_length=200)] = None,
) -> None:
    context = context_of(websocket.app)
    client = websocket.client.host if websocket.client else None
    try:
        principal = await authenticate(context, key_text(websocket.headers), client)
        if account is None and principal.account is not None:
            account = principal.account
        if account is None:
            access.see_venue(principal)
        else:
            access.see_account(principal, account, field="query.account")
    except Problem as problem:
        code = TRY_AGAIN_LATER if problem.status == 429 else POLICY_VIOLATION
        await websocket.close(code=code, reason=problem.detail[:120])
        return
    if not context.admission.try_enter(RequestClass.STREAM):
        context.metrics.http_refused.labels("overloaded").inc()
        await websocket.close(code=TRY_AGAIN_LATER, reason="too many streams open; retry later")
        return
    try:
        await websocket.accept()
        context.metrics.websocket_clients.inc()
        await _pump(websocket, context, after=after, account=account)
    except WebSocketDisconnect:
        pass
    finally:
        context.metrics.websocket_clients.dec()
        context.admission.leave(RequestClass.STREAM)


def _checkpoint(cursor: int) -> str:
    return json.dumps({"type": "checkpoint", "cursor": cursor})


async def _pump(websocket: WebSocket, context: Any, *, after: int, account: str | None) -> None:
    subscription = context.venue.subscribe(from_sequence=after, account=account)
    limiter = context.thread_limiter(RequestClass.STREAM)
    while not context.draining:
        batch: list[Notification] = await anyio.to_thread.run_sync(
            lambda: subscription.next(timeout_s=context.settings.stream_wait_s, limit=BATCH), limiter=limiter
        )
        for n, notification in enumerate(batch):
            if n and notification.sequence != batch[n - 1].sequence:
                await websocket.send_text(_checkpoint(batch[n - 1].sequence))
            await websocket.send_text(message_of(notification))
        await websocket.send_text(_checkpoint(int(subscription.cursor)))
    await websocket.close(
        code=SERVICE_RESTART, reason="service restarting; resume with after=<last sequence>"
    )
