"""Errors as problem details (RFC 9457, `application/problem+json`), naming the field at fault.

Every error the API returns has this body:

    {"type": "https://crossmargin.dev/problems/<slug>", "title": "...", "status": 422,
     "detail": "what is wrong, in words", "field": "body.amount", "instance": "/v1/...",
     "errors": [{"field": ..., "problem": ...}, ...]}   (errors: request validation only)

`field` is a path into the request: `body.<name>`, `query.<name>`, `path.<name>`, or a header
(`header.idempotency-key`). Engine errors (`InputError(field, problem)`) keep the engine's field.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from crossmargin.errors import InputError
from crossmargin.service.logs import service_logger

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://crossmargin.dev/problems/"

_TITLES = {
    400: "bad request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not found",
    405: "method not allowed",
    409: "conflict",
    413: "request too large",
    415: "unsupported media type",
    422: "invalid request",
    429: "rate limited",
    500: "internal error",
    501: "not implemented",
    503: "overloaded",
}


def documented_problems() -> dict[int | str, dict[str, Any]]:
    """The error responses every route may give, for the OpenAPI document (media type problem+json)."""
    from crossmargin.service.models import ProblemDetails

    schema = {"$ref": "#/components/schemas/ProblemDetails"}
    described = {
        401: "no key, an unknown or revoked key",
        403: "the key's role or account does not allow this",
        404: "no such account, key or order",
        409: "an idempotency key reused with another body, or a refused parameter change",
        413: "request body too large",
        422: "a field is invalid or the venue refused the command; `field` names it",
        429: "over the key's rate limit (Retry-After)",
        503: "overloaded, draining, or the venue stopped (Retry-After)",
    }
    out: dict[int | str, dict[str, Any]] = {
        status: {"description": text, "content": {PROBLEM_MEDIA_TYPE: {"schema": schema}}}
        for status, text in described.items()
    }
    out[422]["model"] = ProblemDetails  # registers the component schema
    return out


class Problem(Exception):  # noqa: N818 - RFC 9457 calls it a problem
    """An error the API returns on purpose: status, a slug for `type`, a detail, the field."""

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.field = field
        self.headers = dict(headers or {})


def problem_response(
    request: Request,
    status: int,
    slug: str,
    detail: str,
    *,
    field: str | None = None,
    errors: Sequence[Mapping[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": _TITLES.get(status, "error"),
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    if field is not None:
        body["field"] = field
    if errors:
        body["errors"] = list(errors)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=dict(headers or {}))


def field_path(location: Sequence[Any]) -> str:
    """pydantic's error location as a dotted path:
    ("body", "trades", 0, "quantity") -> body.trades[0].quantity"""
    out = ""
    for part in location:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def install_problem_handlers(app: FastAPI) -> None:
    """Every error leaves as problem+json; nothing leaves as a bare 500 page."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, error: Problem) -> JSONResponse:
        return problem_response(
            request, error.status, error.slug, error.detail, field=error.field, headers=error.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": field_path(e.get("loc", ())), "problem": str(e.get("msg", ""))} for e in error.errors()
        ]
        first = errors[0] if errors else {"field": None, "problem": "invalid request"}
        return problem_response(
            request,
            422,
            "invalid-request",
            f"{first['field']}: {first['problem']}",
            field=first["field"],
            errors=errors,
        )

    @app.exception_handler(InputError)
    async def _input(request: Request, error: InputError) -> JSONResponse:
        return problem_response(request, 422, "rejected", error.problem, field=error.field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        slug = _TITLES.get(error.status_code, "error").replace(" ", "-")
        return problem_response(
            request, error.status_code, slug, str(error.detail), headers=getattr(error, "headers", None)
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        service_logger().log(
            logging.ERROR, "unhandled error", exc_info=error, extra={"path": request.url.path}
        )
        return problem_response(
            request, 500, "internal-error", "internal error; the request id is in the logs"
        )
