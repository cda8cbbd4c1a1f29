"""The dashboard served on its own: a FastAPI app over an in-memory venue (`standalone.BookVenue`)
with a fixed set of API keys, for `crossmargin dashboard BOOK` and for the browser tests.

The margin service serves the same router (`web.dashboard_router`) over its own venue and keys;
this app adds only what a venue without the service needs: a price endpoint for the risk role
(`POST /api/prices`, the oracle's tick) and `/healthz`.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.requests import HTTPConnection

from crossmargin.dashboard.standalone import BookVenue
from crossmargin.dashboard.web import DashboardConfig, dashboard_router
from crossmargin.engine.inputs import LoadedBook
from crossmargin.errors import InputError


@dataclass(frozen=True, slots=True)
class KeyHolder:
    """Who a key belongs to: role "holder" (with its account), "risk" or "admin"."""

    role: str
    account: str | None = None


def issue_keys(account_ids: tuple[str, ...]) -> dict[str, KeyHolder]:
    """One risk key and one holder key per account, 256 random bits each (shown once at start)."""
    keys = {f"risk_{secrets.token_urlsafe(32)}": KeyHolder(role="risk")}
    keys.update(
        {f"holder_{secrets.token_urlsafe(32)}": KeyHolder(role="holder", account=a) for a in account_ids}
    )
    return keys


class PricesRequest(BaseModel):
    index_prices: dict[str, float] = Field(min_length=1, max_length=256)


def create_app(
    venue: BookVenue, keys: Mapping[str, KeyHolder], *, backtest_book: LoadedBook | None = None
) -> FastAPI:
    """The dashboard over `venue`, with `keys` (key -> holder) as its only credentials."""
    app = FastAPI(title="crossmargin dashboard", docs_url=None, redoc_url=None)
    known = dict(keys)

    def authenticate(_connection: HTTPConnection, key: str) -> KeyHolder | None:
        # Constant-time comparison against every key: a key's prefix leaks nothing by timing.
        found = None
        for candidate, holder in known.items():
            if secrets.compare_digest(candidate.encode(), key.encode()):
                found = holder
        return found

    app.include_router(
        dashboard_router(
            DashboardConfig(
                source=lambda _connection: venue,
                authenticate=authenticate,
                backtest_book=lambda _connection: backtest_book,
            )
        )
    )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/prices")
    async def prices(request: Request, body: PricesRequest) -> JSONResponse:
        header = request.headers.get("authorization", "")
        key = header.removeprefix("Bearer ").strip()
        holder = authenticate(request, key) if header.startswith("Bearer ") else None
        if holder is None:
            raise HTTPException(status_code=401, detail="Authorization: Bearer <risk or admin key>")
        if holder.role not in ("risk", "admin"):
            raise HTTPException(
                status_code=403, detail="prices come from the venue's oracle (risk or admin keys)"
            )
        try:
            sequence = venue.move_prices(body.index_prices)
        except InputError as error:
            raise HTTPException(
                status_code=422, detail={"field": error.field, "problem": error.problem}
            ) from error
        return JSONResponse({"sequence": sequence})

    return app
