"""A query parameter an endpoint does not declare is a 422 naming it, never ignored
(service.query): `?modle=portfolio` answered cross margin and `/v1/events?from_sequence=` read from
the start, as if nothing had been asked."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from starlette.websockets import WebSocketDisconnect

from crossmargin.service.query import _matching
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


def test_query_the_route_is_found_where_the_scope_does_not_name_it() -> None:
    """Older Starlette does not record the matched route in the scope: it is matched again,
    looking into included routers."""
    from fastapi import APIRouter

    router = APIRouter(prefix="/v1")

    @router.get("/x")
    def x(a: int = 1) -> int:
        return a

    app = FastAPI()
    app.include_router(router)
    scope = {"type": "http", "path": "/v1/x", "method": "GET", "root_path": "", "query_string": b""}
    found = _matching(app.routes, scope)
    assert found is not None and found.path == "/v1/x"
    assert _matching(app.routes, {**scope, "path": "/v1/none"}) is None


def test_query_an_unknown_stream_parameter_closes_the_socket_1008_naming_it(service: Running) -> None:
    """`acount=` (a typo) streamed the whole venue to a risk key, `from=` replayed from the start."""
    risk = service.as_(service.risk)
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        service.client.websocket_connect("/v1/stream?after=0&acount=basis-trader", headers=risk) as ws,
    ):
        ws.receive_text()
    assert closed.value.code == 1008
    assert (
        closed.value.reason == "query.acount: unknown query parameter (this endpoint takes: account, after)"
    )
    with service.client.websocket_connect("/v1/stream?after=0&account=basis-trader", headers=risk) as ws:
        assert ws.receive_json()["type"] in ("notification", "checkpoint")
