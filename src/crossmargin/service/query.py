"""Query parameters a route does not declare are refused, never ignored: `GET .../margin?modle=
portfolio` (a typo) answered cross margin, as if no model had been asked for, and a stream's
`acount=` streamed the whole venue. An unknown name is a 422 problem naming `query.<name>` and the
parameters the endpoint takes; on the WebSocket stream, a close with 1008 and the same reason.

The declared names are read from the matched route's dependency tree (`dependant`: its query
parameters and those of its sub-dependencies, by alias), only for a request that has a query."""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any

from fastapi import WebSocketException, status
from fastapi.exceptions import RequestValidationError
from starlette.requests import HTTPConnection
from starlette.routing import Match


async def refuse_unknown_query(connection: HTTPConnection) -> None:
    """The app's dependency (HTTP and WebSocket routes). Async: run on the event loop, not sent
    to the thread pool as a plain function would be."""
    if not connection.query_params:
        return
    route = connection.scope.get("route") or _matching(connection.app.routes, connection.scope)
    dependant = getattr(route, "dependant", None)
    if dependant is None:  # not an API route (static files): nothing declared to check against
        return
    allowed = _query_names(dependant)
    unknown = [name for name in dict.fromkeys(connection.query_params.keys()) if name not in allowed]
    if not unknown:
        return
    takes = ", ".join(sorted(allowed)) or "none"
    problem = f"unknown query parameter (this endpoint takes: {takes})"
    if connection.scope["type"] == "websocket":  # refused as the stream refuses a key
        raise WebSocketException(
            code=status.WS_1008_POLICY_VIOLATION, reason=f"query.{unknown[0]}: {problem}"
        )
    raise RequestValidationError(
        [{"loc": ("query", name), "msg": problem, "type": "extra_forbidden"} for name in unknown]
    )


def _query_names(dependant: Any) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def _matching(routes: Iterable[Any], scope: MutableMapping[str, Any]) -> Any:
    """The route of `scope` where the router did not record it in the scope (older Starlette):
    the first that matches fully, looking into included routers."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            found = _matching(inner.routes, scope)
            if found is not None:
                return found
        elif hasattr(route, "matches") and route.matches(scope)[0] is Match.FULL:
            return route
    return None
