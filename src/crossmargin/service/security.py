"""Authentication and admission as FastAPI dependencies.

`principal` (every /v1 route): the key from `Authorization: Bearer cmk_...` (or `X-API-Key`), found,
verified (scrypt once, `keys.Verifier`), not revoked, under its rate limit; else 401 or 429. A
request without a valid key is rate-limited per client address, so guessing keys is slow.

Admission (503 when a request class is full) happens before any of this, in `observe.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import anyio.to_thread
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from crossmargin.service.access import Principal
from crossmargin.service.context import ServiceContext, context_of
from crossmargin.service.keys import ApiKey, parse_key
from crossmargin.service.limits import retry_after_header
from crossmargin.service.problems import Problem

# Declared so the OpenAPI document states the schemes (and schemathesis sends the key).
bearer_scheme = HTTPBearer(auto_error=False, description="Authorization: Bearer cmk_<key_id>_<secret>")
header_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="the same key, as a header")


def _unauthenticated(context: ServiceContext, address: str, detail: str) -> Problem:
    wait_s = context.limiter.take(f"addr:{address}", None)
    if wait_s > 0.0:
        context.metrics.http_refused.labels("rate_limited").inc()
        return Problem(
            429,
            "rate-limited",
            "too many unauthenticated requests",
            headers={"Retry-After": retry_after_header(wait_s)},
        )
    return Problem(
        401, "unauthenticated", detail, field="header.authorization", headers={"WWW-Authenticate": "Bearer"}
    )


async def principal(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    header_key: Annotated[str | None, Depends(header_scheme)],
) -> Principal:
    text = bearer.credentials if bearer is not None else header_key
    found = await authenticate(context_of(request.app), text, request.client.host if request.client else None)
    request.state.key_id = found.key_id
    request.state.role = found.role.value
    return found


def key_text(headers: Mapping[str, str]) -> str | None:
    """The key from `Authorization: Bearer ...` or `X-API-Key` (the WebSocket handshake's headers)."""
    authorization = headers.get("authorization")
    if authorization is not None and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return headers.get("x-api-key")


async def authenticate(context: ServiceContext, text: str | None, client_host: str | None) -> Principal:
    """The principal a key text names, or the 401/429 problem (module docstring).

    A key not yet verified in this process costs one scrypt (~0.1 s of CPU): it runs in a worker
    thread (the event loop keeps serving), and only within the client address's budget for such
    checks, so a stream of made-up secrets cannot buy CPU."""
    address = client_host or "unknown"
    if text is None:
        raise _unauthenticated(context, address, "an API key is required (Authorization: Bearer cmk_...)")
    presented = parse_key(text)
    row = None if presented is None else context.keys.get(presented.key_id)
    if presented is None or row is None:
        raise _unauthenticated(context, address, "unknown or malformed API key")
    verdict = context.verifier.quick(row, presented.secret)
    if verdict is None:
        # One scrypt per key at a time: concurrent first requests of one key wait for it.
        async with context.verification_lock(row.key_id):
            verdict = context.verifier.quick(row, presented.secret)
            if verdict is None:
                verdict = await _verify_slowly(context, address, row, presented.secret)
    if not verdict:
        raise _unauthenticated(context, address, "unknown or malformed API key")
    if row.revoked:
        raise _unauthenticated(context, address, f"API key {row.key_id} is revoked")
    wait_s = context.limiter.take(row.key_id, row.role)
    if wait_s > 0.0:
        context.metrics.http_refused.labels("rate_limited").inc()
        rate = context.limiter.limit_of(row.role)
        raise Problem(
            429,
            "rate-limited",
            f"key {row.key_id} is limited to {rate.rate_per_s:g} requests/s (burst {rate.burst})",
            headers={"Retry-After": retry_after_header(wait_s)},
        )
    return Principal(row.key_id, row.role, row.account)


async def _verify_slowly(context: ServiceContext, address: str, row: ApiKey, secret: str) -> bool:
    """scrypt in a worker thread, within the address's budget of first-time verifications."""
    wait_s = context.limiter.take(f"verify:{address}", None)
    if wait_s > 0.0:
        context.metrics.http_refused.labels("rate_limited").inc()
        raise Problem(
            429,
            "rate-limited",
            "too many first-time key verifications from this address",
            headers={"Retry-After": retry_after_header(wait_s)},
        )
    return bool(await anyio.to_thread.run_sync(context.verifier.matches, row, secret))


Caller = Annotated[Principal, Depends(principal)]
