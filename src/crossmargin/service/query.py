"""Query parameters a route does not declare are refused, never ignored: `GET .../margin?modle=
portfolio` (a typo) answered cross margin, as if no model had been asked for. An unknown name is a
422 problem naming `query.<name>` and the parameters the endpoint takes.

The declared names are read from each route's dependency tree (`APIRoute.dependant`: its query
parameters and those of its sub-dependencies, by alias) once, when the app is built."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import HTTPConnection
from starlette.routing import Match


def declare_query_parameters(app: FastAPI) -> None:
    """Record every API route's query parameter names (app.state.query_names); call it once the
    routers are included."""
    app.state.query_names = {  # by id: routes are not hashable, and live as long as the app
        id(route): (route, frozenset(_query_names(route.dependant))) for route in _api_routes(app.routes)
    }


async def refuse_unknown_query(connection: HTTPConnection) -> None:
    """The app's dependency: 422 for any query parameter the matched route does not declare.
    Async: run on the event loop, not sent to the thread pool as a plain function would be."""
    if connection.scope["type"] != "http" or not connection.query_params:
        return
    names: dict[int, tuple[APIRoute, frozenset[str]]] = connection.app.state.query_names
    route = connection.scope.get("route") or _matching(names, connection.scope)
    found = names.get(id(route))
    if found is None:  # not an API route (static files): nothing declared to check against
        return
    allowed = found[1]
    unknown = [name for name in dict.fromkeys(connection.query_params.keys()) if name not in allowed]
    if unknown:
        takes = ", ".join(sorted(allowed)) or "none"
        raise RequestValidationError(
            [
                {
                    "loc": ("query", name),
                    "msg": f"unknown query parameter (this endpoint takes: {takes})",
                    "type": "extra_forbidden",
                }
                for name in unknown
            ]
        )


def _api_routes(routes: Iterable[Any]) -> Iterator[APIRoute]:
    """Every APIRoute under `routes`: FastAPI before 0.16x copies an included router's routes into
    the app's list, later releases keep the router (`original_router`) there."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (router := getattr(route, "original_router", None)) is not None:
            yield from _api_routes(router.routes)
        elif isinstance(getattr(route, "routes", None), list):
            yield from _api_routes(route.routes)


def _query_names(dependant: Any) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def _matching(
    names: dict[int, tuple[APIRoute, frozenset[str]]], scope: MutableMapping[str, Any]
) -> APIRoute | None:
    """The route of `scope` where the router did not record it (older Starlette)."""
    for route, _ in names.values():
        if route.matches(scope)[0] is Match.FULL:
            return route
    return None
