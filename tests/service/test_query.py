"""A query parameter an endpoint does not declare is a 422 naming it, never ignored
(service.query): `?modle=portfolio` answered cross margin and `/v1/events?from_sequence=` read from
the start, as if nothing had been asked."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRoute

from crossmargin.service.query import _api_routes
from tests.service.conftest import Running

ACCOUNT = "basis-trader"


def test_query_an_unknown_parameter_is_refused_naming_it_and_what_the_endpoint_takes(
    service: Running,
) -> None:
    headers = service.as_(service.risk)
    asked = service.client.get(
        f"/v1/accounts/{ACCOUNT}/margin", params={"model": "portfolio"}, headers=headers
    )
    assert asked.status_code == 200 and asked.json()["model"] == "portfolio"
    typo = service.client.get(
        f"/v1/accounts/{ACCOUNT}/margin", params={"modle": "portfolio"}, headers=headers
    )
    assert typo.status_code == 422, typo.text
    problem = typo.json()
    assert typo.headers["content-type"].startswith("application/problem+json")
    assert problem["field"] == "query.modle"
    assert problem["detail"] == "query.modle: unknown query parameter (this endpoint takes: model, preset)"
    events = service.client.get("/v1/events", params={"from_sequence": 5}, headers=headers)
    assert events.status_code == 422 and events.json()["field"] == "query.from_sequence"
    assert service.client.get("/healthz", params={"probe": 1}).json()["field"] == "query.probe"


def test_query_declared_parameters_and_none_pass(service: Running) -> None:
    headers = service.as_(service.risk)
    assert (
        service.client.get("/v1/events", params={"after": 0, "limit": 2}, headers=headers).status_code == 200
    )
    assert service.client.get("/healthz").status_code == 200


def test_query_every_api_route_of_the_app_is_found() -> None:
    """Included routers are walked whether FastAPI copies their routes into the app's list or
    keeps the router there (0.16x)."""
    from fastapi import APIRouter

    router = APIRouter()

    @router.get("/x")
    def x(a: int = 1) -> int:
        return a

    app = FastAPI()
    app.include_router(router)
    paths = {route.path for route in _api_routes(app.routes) if isinstance(route, APIRoute)}
    assert "/x" in paths
