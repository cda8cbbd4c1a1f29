"""One ASGI middleware that sees every HTTP request once: admission (503 at once when the
request's class is full), size limit, metrics, a structured log line, and the audit row of every
mutating request (authenticated or not, accepted or refused).

Pure ASGI (not Starlette's BaseHTTPMiddleware): it wraps `receive` to hash the body as it streams
past (the audit keeps SHA-256 of the body, not the body) and `send` to catch the status, without
buffering the response.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crossmargin.service.keystore import AuditRecord
from crossmargin.service.limits import classify
from crossmargin.service.logs import service_logger
from crossmargin.service.problems import PROBLEM_BASE, PROBLEM_MEDIA_TYPE
from crossmargin.service.unique_ids import UniqueIds

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_BODY_BYTES = 1 << 20  # 1 MiB: a command is a few hundred bytes; a stress request a few KB
# Request ids unique across processes and restarts, without a uuid4 each (service.unique_ids).
_REQUEST_IDS = UniqueIds("", 8)


class RequestObserver:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from crossmargin.service.context import context_of

        context = context_of(scope["app"])
        method: str = scope["method"]
        started = time.perf_counter()
        request_id = _header(scope, b"x-request-id") or _REQUEST_IDS.new()
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        digest = hashlib.sha256()
        status = 500
        too_large = _content_length(scope) > MAX_BODY_BYTES

        async def receive_hashed() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                digest.update(message.get("body", b""))
            return message

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        request_class = classify(method, scope.get("path", ""))
        admitted = request_class is None or context.admission.try_enter(request_class)
        try:
            if too_large:
                await _send_problem(
                    scope,
                    send_observed,
                    413,
                    "request-too-large",
                    f"request bodies are limited to {MAX_BODY_BYTES} bytes",
                    field="header.content-length",
                )
            elif not admitted:
                assert request_class is not None
                context.metrics.http_refused.labels("overloaded").inc()
                await _send_problem(
                    scope,
                    send_observed,
                    503,
                    "overloaded",
                    f"the service is at its limit of {request_class.value} requests in flight; retry shortly",
                    headers=[(b"retry-after", b"1")],
                )
            else:
                await self.app(scope, receive_hashed, send_observed)
        finally:
            if admitted and request_class is not None:
                context.admission.leave(request_class)
            elapsed_s = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            context.metrics.http_requests.labels(template, method, str(status)).inc()
            context.metrics.http_seconds.labels(template, method).observe(elapsed_s)
            path = scope.get("path", "")
            service_logger().info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": method,
                    "path": path,
                    "route": template,
                    "status": status,
                    "ms": round(elapsed_s * 1e3, 3),
                    "key_id": state.get("key_id"),
                    "sequence": state.get("sequence"),
                },
            )
            if method in MUTATING:
                params = scope.get("path_params") or {}
                context.keys.audit(
                    AuditRecord(
                        time_ns=context.clock_ns(),
                        key_id=state.get("key_id"),
                        role=state.get("role"),
                        method=method,
                        path=path[:500],
                        account=state.get("account") or params.get("account"),
                        status=status,
                        sequence=state.get("sequence"),
                        idempotency_key=_header(scope, b"idempotency-key"),
                        body_sha256=digest.hexdigest(),
                    )
                )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))[:200]
    return None


def _content_length(scope: Scope) -> int:
    text = _header(scope, b"content-length")
    return int(text) if text is not None and text.isdigit() else 0


async def _send_problem(
    scope: Scope,
    send: Send,
    status: int,
    slug: str,
    detail: str,
    *,
    field: str | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """A problem+json response written straight to ASGI (no routing: the cheap refusal path)."""
    problem: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": slug.replace("-", " "),
        "status": status,
        "detail": detail,
        "instance": scope.get("path", ""),
    }
    if field is not None:
        problem["field"] = field
    body = json.dumps(problem).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
