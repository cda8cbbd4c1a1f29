"""The FastAPI application: `create_app(context)` over an opened venue.

Life cycle. `crossmargin serve` opens the venue (recovering it from the log) and the key store,
then hands them to `create_app`; uvicorn serves the app. On SIGTERM/SIGINT uvicorn stops accepting
connections and waits for requests in flight; then the lifespan's exit marks the service as
draining (/readyz says 503, WebSocket streams close with code 1012 "service restart") and closes
the venue, which finishes the commits in flight (each acknowledged) before it returns; last the
audit writer writes what is queued.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import Depends, FastAPI

from crossmargin import __version__
from crossmargin.service.context import ServiceContext
from crossmargin.service.logs import service_logger
from crossmargin.service.observe import RequestObserver
from crossmargin.service.problems import documented_problems, install_problem_handlers
from crossmargin.service.query import refuse_unknown_query

API_DESCRIPTION = """\
The crossmargin venue risk engine: accounts, deposits and withdrawals, fills and orders, prices,
margin under any model, what-if, explain, stress, the insurance fund, the hash-chained event log,
and a resumable WebSocket stream of margin updates, calls, liquidations and ADL.

Authenticate with `Authorization: Bearer cmk_<key_id>_<secret>`. Roles: `holder` (its own account
only), `risk` (the whole venue; fills, prices, funding, interest, expiries), `admin` (also keys and
risk parameters).
Every mutating request takes an `Idempotency-Key` header: a retry with the same key and body has
one effect. Errors are `application/problem+json` (RFC 9457) with the `field` at fault.
Over its rate limit a key gets 429; a full service 503; both with `Retry-After`.
"""


def create_app(context: ServiceContext) -> FastAPI:
    """The app over `context` (its venue open); closing the venue is the lifespan's job."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service_logger().info("ready", extra={"sequence": context.venue_sequence()})
        try:
            yield
        finally:
            context.draining = True
            service_logger().info("draining: finishing commits in flight")
            await anyio.to_thread.run_sync(context.close)
            service_logger().info("stopped", extra={"sequence": context.venue_sequence()})

    app = FastAPI(
        title="crossmargin",
        version=__version__,
        description=API_DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/openapi.json",
        responses=documented_problems(),
        dependencies=[Depends(refuse_unknown_query)],
    )
    app.state.context = context
    install_problem_handlers(app)
    app.add_middleware(RequestObserver)

    from crossmargin.service.routes import (
        accounts,
        batch,
        dashboard,
        events,
        health,
        keys,
        lifecycle,
        risk,
        stream,
        trading,
    )

    for module in (health, keys, accounts, trading, lifecycle, risk, events, batch, stream, dashboard):
        app.include_router(module.router)
    return app
