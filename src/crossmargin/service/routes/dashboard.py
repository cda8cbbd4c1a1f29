"""The web dashboard (`crossmargin.dashboard`) mounted in the service at /dashboard: its pages read
this app's venue and log in with this service's API keys and roles (a holder sees its own account;
risk and admin the whole venue), checked by the same `security.authenticate` as every API route.

The dashboard's source (`dashboard.venue_source.VenueSource`) is built on first use and kept on
`app.state`: the venue, the opening book (its model parameters, for compare and explain) and the
shared daily closes when present (VaR rows, historical stresses, back-tests).
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from crossmargin.dashboard.venue_source import VenueSource
from crossmargin.dashboard.web import DashboardConfig, dashboard_router
from crossmargin.engine.inputs import LoadedBook
from crossmargin.service.access import Principal
from crossmargin.service.context import context_of
from crossmargin.service.problems import Problem
from crossmargin.service.security import authenticate

# The back-test book bundled beside the opening book (spot and perpetuals: a fixed dated position
# would expire during the walk).
BACKTEST_BOOK = "backtest.yaml"


def _source(connection: HTTPConnection) -> VenueSource:
    state = connection.app.state
    source: VenueSource | None = getattr(state, "dashboard_source", None)
    if source is None:
        from crossmargin.adapters.files import load_book
        from crossmargin.adapters.history.prices import shared_price_history

        context = context_of(connection.app)
        history = shared_price_history()
        source = VenueSource(
            context.venue,
            load_book(context.settings.book),
            history=history if history.is_available() else None,
        )
        state.dashboard_source = source
    return source


def _backtest_book(connection: HTTPConnection) -> LoadedBook | None:
    state = connection.app.state
    if not hasattr(state, "dashboard_backtest_book"):
        from crossmargin.adapters.files import load_book

        path = context_of(connection.app).settings.book.parent / BACKTEST_BOOK
        state.dashboard_backtest_book = load_book(path) if path.is_file() else None
    book: LoadedBook | None = state.dashboard_backtest_book
    return book


async def _viewer(connection: HTTPConnection, key: str) -> Principal | None:
    client = connection.client.host if connection.client else None
    try:
        return await authenticate(context_of(connection.app), key, client)
    except Problem:  # unknown, revoked or rate-limited: the dashboard shows its login again
        return None


router = dashboard_router(DashboardConfig(source=_source, authenticate=_viewer, backtest_book=_backtest_book))
