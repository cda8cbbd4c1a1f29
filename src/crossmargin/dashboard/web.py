"""The dashboard's routes: server-rendered pages (Jinja2), their JSON twins, and a WebSocket that
pushes fresh figures after every event of the venue.

    GET  /dashboard/login, POST /dashboard/login, POST /dashboard/logout
    GET  /dashboard/                      overview (risk, admin)      JSON: /dashboard/api/overview
    GET  /dashboard/curve                 liquidation curve (risk)    JSON: /dashboard/api/curve
    GET  /dashboard/accounts/{account}    one account (its holder, risk, admin)
                                          JSON: /dashboard/api/accounts/{account}[/compare|/explain]
    POST /dashboard/api/accounts/{account}/what-if
    GET  /dashboard/stress (?mode=shock|historical|cascade|historical-cascade&move=&window=&steps=
                           &policy=&volume_share=&depth_multiplier=)  (risk)  JSON: /dashboard/api/stress
    GET  /dashboard/backtest (?account=&model=&from=&to=)         (risk)  JSON: /dashboard/api/backtest
    GET  /dashboard/warnings              (risk: all; a holder: its own)  JSON: /dashboard/api/warnings
    WS   /dashboard/ws                    {"sequence", "headline", "overview" | "account"} per change
    GET  /dashboard/static/{name}         the page script, style and the pinned ECharts build

Login: the caller's API key, checked by the service's own `authenticate` (the same keys and roles
as the HTTP API), kept in an HttpOnly, SameSite=Strict cookie scoped to /dashboard and checked again
on every request and WebSocket handshake, so a revoked key stops working at once and no session
state lives here. A holder sees its own account only: another account's page is refused with 403,
the same answer whether that account exists or not.

Heavy figures (compare across every model, the liquidation curve, stress, back-test) run in a
worker thread on values captured from one view (books and markets are immutable), never on the
live engine, which only the event loop touches.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.templating import Jinja2Templates

from crossmargin.dashboard import figures, stress
from crossmargin.dashboard.source import DashboardSource, VenueView, Viewer, snapshot
from crossmargin.engine.inputs import LoadedBook
from crossmargin.errors import CrossMarginError, InputError

COOKIE = "crossmargin_dashboard_key"
PREFIX = "/dashboard"
SEE_ALL = ("risk", "admin")
MAX_LOGIN_BYTES = 2048
STATIC_FILES = {
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
    "echarts.min.js": "text/javascript",
}

Authenticate = Callable[[HTTPConnection, str], "Viewer | Awaitable[Viewer | None] | None"]


@dataclass(frozen=True, slots=True)
class DashboardConfig:
    """What the dashboard needs from whoever serves it, each asked per request with the request
    (or WebSocket) at hand, so a service may build its venue at start-up: the venue (`source`), the
    API-key check (sync or async; None for an unknown or revoked key) and the back-test book
    (spot and perpetuals only; None: the back-test page says it has none)."""

    source: Callable[[HTTPConnection], DashboardSource]
    authenticate: Authenticate
    backtest_book: Callable[[HTTPConnection], LoadedBook | None] = lambda _connection: None


@dataclass(frozen=True, slots=True)
class StressForm:
    """The stress page's fields (query parameters), defaults as the page shows them."""

    move: float = -0.2
    window: str = "covid-2020-03"
    steps: int = 4
    policy: str = "full/queue"
    volume_share: float = 1.0
    depth_multiplier: float = 1.0

    def request(self, mode: str) -> stress.StressRequest:
        return stress.StressRequest(
            mode=mode,
            move=self.move,
            window=self.window,
            steps=self.steps,
            policy=self.policy,
            volume_share=self.volume_share,
            depth_multiplier=self.depth_multiplier,
        )


class WhatIfRequest(BaseModel):
    instrument_id: str = Field(min_length=1, max_length=128)
    quantity: float
    price: float | None = None


def _package_dir(name: str) -> Path:
    return Path(str(resources.files("crossmargin.dashboard") / name))


def _usd(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:,.2f}"


def _pct(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value * 100:+.{digits}f} %" if digits >= 0 else f"{value:.0%}"


def _ratio(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value * 100:.1f} %"


def _raw(value: Any) -> str:
    """The exact number for data-value attributes (repr round-trips a float)."""
    return "" if value is None else repr(float(value))


def dashboard_router(config: DashboardConfig) -> APIRouter:
    """The dashboard's routes (module docstring); `app.include_router(dashboard_router(...))`."""
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    templates = Jinja2Templates(directory=str(_package_dir("templates")))
    templates.env.filters.update(usd=_usd, pct=_pct, ratio=_ratio, raw=_raw)
    static = _package_dir("static")

    async def viewer_of(connection: HTTPConnection, key: str | None) -> Viewer | None:
        if not key:
            return None
        found = config.authenticate(connection, key)
        if inspect.isawaitable(found):
            found = await found
        return found

    async def require(request: Request) -> Viewer:
        viewer = await viewer_of(request, request.cookies.get(COOKIE))
        if viewer is None:
            raise HTTPException(status_code=401, detail="log in with an API key")
        return viewer

    def require_all(viewer: Viewer) -> None:
        if viewer.role not in SEE_ALL:
            raise HTTPException(
                status_code=403, detail="the whole venue is visible to risk and admin keys only"
            )

    def require_account(viewer: Viewer, account: str) -> None:
        if viewer.role not in SEE_ALL and viewer.account != account:
            raise HTTPException(status_code=403, detail="a holder key sees its own account only")

    def page(request: Request, name: str, viewer: Viewer, view: VenueView, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(
            request,
            name,
            {
                "viewer": viewer,
                "headline": figures.headline(view),
                "sees_all": viewer.role in SEE_ALL,
                "prefix": PREFIX,
                **context,
            },
        )

    def input_error(error: CrossMarginError) -> HTTPException:
        if isinstance(error, InputError):
            return HTTPException(status_code=422, detail={"field": error.field, "problem": error.problem})
        return HTTPException(status_code=422, detail=str(error))

    # -- login ----------------------------------------------------------------------------------

    @router.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request, failed: bool = False) -> HTMLResponse:
        return templates.TemplateResponse(request, "login.html", {"failed": failed, "prefix": PREFIX})

    @router.post("/login")
    async def login(request: Request) -> Response:
        # The form is urlencoded (one field): parsed here rather than through python-multipart.
        raw = await request.body()
        if len(raw) > MAX_LOGIN_BYTES:
            raise HTTPException(status_code=413, detail="login form too large")
        fields = parse_qs(raw.decode("utf-8", errors="replace"), max_num_fields=4)
        api_key = (fields.get("api_key") or [""])[0]
        viewer = await viewer_of(request, api_key.strip())
        if viewer is None:
            return templates.TemplateResponse(
                request, "login.html", {"failed": True, "prefix": PREFIX}, status_code=401
            )
        target = f"{PREFIX}/" if viewer.role in SEE_ALL else f"{PREFIX}/accounts/{viewer.account}"
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            api_key.strip(),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path=PREFIX,
        )
        return response

    @router.post("/logout")
    async def logout() -> Response:
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        response.delete_cookie(COOKIE, path=PREFIX)
        return response

    @router.get("/static/{name}")
    async def static_file(name: str) -> FileResponse:
        if name not in STATIC_FILES:
            raise HTTPException(status_code=404)
        folder = static / "vendor" if name == "echarts.min.js" else static
        return FileResponse(
            folder / name, media_type=STATIC_FILES[name], headers={"Cache-Control": "max-age=3600"}
        )

    # The curve costs one whole-book evaluation per (underlying, move): computed once per sequence
    # number, however many dashboards ask.
    curve_cache: dict[int, dict[str, Any]] = {}

    async def curve_of(view: VenueView) -> dict[str, Any]:
        cached = curve_cache.get(view.sequence)
        if cached is None:
            cached = await run_in_threadpool(figures.liquidation_curve, snapshot(view))
            curve_cache.clear()
            curve_cache[view.sequence] = cached
        return cached

    # The overview every live page receives after an event: computed once per sequence number.
    overview_cache: dict[int, dict[str, Any]] = {}

    def overview_of(view: VenueView) -> dict[str, Any]:
        cached = overview_cache.get(view.sequence)
        if cached is None:
            cached = figures.overview(view)
            overview_cache.clear()
            overview_cache[view.sequence] = cached
        return cached

    # -- pages ----------------------------------------------------------------------------------

    @router.get("/", response_class=HTMLResponse)
    async def overview_page(request: Request) -> Response:
        viewer = await viewer_of(request, request.cookies.get(COOKIE))
        if viewer is None:
            return RedirectResponse(f"{PREFIX}/login", status_code=303)
        if viewer.role not in SEE_ALL:
            return RedirectResponse(f"{PREFIX}/accounts/{viewer.account}", status_code=303)
        view = config.source(request).view()
        return page(request, "overview.html", viewer, view, overview=overview_of(view))

    @router.get("/curve", response_class=HTMLResponse)
    async def curve_page(request: Request) -> HTMLResponse:
        viewer = await require(request)
        require_all(viewer)
        view = config.source(request).view()
        return page(request, "curve.html", viewer, view, curve=await curve_of(view))

    @router.get("/accounts", response_class=HTMLResponse)
    async def account_lookup(request: Request, account: Annotated[str, Query(max_length=128)]) -> Response:
        viewer = await require(request)
        require_account(viewer, account)
        return RedirectResponse(f"{PREFIX}/accounts/{account}", status_code=303)

    @router.get("/accounts/{account}", response_class=HTMLResponse)
    async def account_page(request: Request, account: str) -> HTMLResponse:
        viewer = await require(request)
        require_account(viewer, account)
        view = config.source(request).view()
        try:
            report = figures.account_report(view, account)
            explanation = figures.explain(view, account)
        except CrossMarginError as error:
            raise HTTPException(status_code=404, detail=str(error)) from error
        instruments = list(view.engine.book.instruments.ids)
        return page(
            request,
            "account.html",
            viewer,
            view,
            account=report,
            explain=explanation,
            instruments=instruments,
        )

    @router.get("/stress", response_class=HTMLResponse)
    async def stress_page(
        request: Request, form: Annotated[StressForm, Depends()], mode: str | None = None
    ) -> HTMLResponse:
        viewer = await require(request)
        require_all(viewer)
        view = config.source(request).view()
        asked = form.request(mode or "shock")
        result = None
        error = None
        if mode is not None:
            try:
                result = await run_in_threadpool(stress.run, snapshot(view), asked)
            except CrossMarginError as problem:
                error = str(problem)
        try:
            windows = await run_in_threadpool(stress.window_names)
        except CrossMarginError as problem:  # no shared data: the historical modes say why
            windows = ()
            error = error or f"historical windows unavailable: {problem}"
        return page(
            request,
            "stress.html",
            viewer,
            view,
            result=result,
            error=error,
            form=asked,
            windows=windows,
            policies=stress.POLICIES,
            max_steps=stress.MAX_CASCADE_STEPS,
        )

    @router.get("/backtest", response_class=HTMLResponse)
    async def backtest_page(
        request: Request,
        account: str | None = None,
        model: Annotated[list[str] | None, Query()] = None,
        first_day: Annotated[str, Query(alias="from", max_length=10)] = "2024-10-01",
        last_day: Annotated[str, Query(alias="to", max_length=10)] = "2025-02-07",
    ) -> HTMLResponse:
        viewer = await require(request)
        require_all(viewer)
        model = model or list(figures.BACKTEST_MODELS)
        view = config.source(request).view()
        book = config.backtest_book(request)
        result = None
        error = None
        if book is None or view.history is None:
            error = "back-tests need the bundled back-test book and the shared daily price history"
        elif account is not None:
            try:
                result = await run_in_threadpool(
                    _backtest, book, view, account, tuple(model), first_day, last_day
                )
            except CrossMarginError as problem:
                error = str(problem)
        return page(
            request,
            "backtest.html",
            viewer,
            view,
            result=result,
            error=error,
            accounts=list(book.book.account_ids) if book is not None else [],
            form={"account": account, "models": model, "from": first_day, "to": last_day},
            all_models=figures.BACKTEST_CHOICES,
        )

    @router.get("/warnings", response_class=HTMLResponse)
    async def warnings_page(request: Request) -> HTMLResponse:
        viewer = await require(request)
        view = config.source(request).view()
        return page(
            request,
            "warnings.html",
            viewer,
            view,
            warnings=_visible_warnings(viewer, view),
            prices=view.prices(),
            iso_time=figures.iso_time,
        )

    # -- JSON -----------------------------------------------------------------------------------

    @router.get("/api/overview")
    async def overview_json(request: Request) -> JSONResponse:
        require_all(await require(request))
        return JSONResponse(overview_of(config.source(request).view()))

    @router.get("/api/curve")
    async def curve_json(request: Request) -> JSONResponse:
        require_all(await require(request))
        return JSONResponse(await curve_of(config.source(request).view()))

    @router.get("/api/accounts/{account}")
    async def account_json(request: Request, account: str) -> JSONResponse:
        require_account(await require(request), account)
        try:
            return JSONResponse(figures.account_report(config.source(request).view(), account))
        except CrossMarginError as error:
            raise HTTPException(status_code=404, detail=str(error)) from error

    @router.get("/api/accounts/{account}/compare")
    async def compare_json(request: Request, account: str) -> JSONResponse:
        require_account(await require(request), account)
        view = snapshot(config.source(request).view())
        try:
            return JSONResponse(await run_in_threadpool(figures.compare, view, account))
        except CrossMarginError as error:
            raise HTTPException(status_code=404, detail=str(error)) from error

    @router.get("/api/accounts/{account}/explain")
    async def explain_json(request: Request, account: str) -> JSONResponse:
        require_account(await require(request), account)
        try:
            return JSONResponse(figures.explain(config.source(request).view(), account))
        except CrossMarginError as error:
            raise HTTPException(status_code=404, detail=str(error)) from error

    @router.post("/api/accounts/{account}/what-if")
    async def what_if_json(request: Request, account: str, body: WhatIfRequest) -> JSONResponse:
        require_account(await require(request), account)
        try:
            return JSONResponse(
                figures.what_if(
                    config.source(request).view(),
                    account,
                    instrument_id=body.instrument_id,
                    quantity=body.quantity,
                    price=body.price,
                )
            )
        except CrossMarginError as error:
            raise input_error(error) from error

    @router.get("/api/stress")
    async def stress_json(
        request: Request, form: Annotated[StressForm, Depends()], mode: str = "shock"
    ) -> JSONResponse:
        require_all(await require(request))
        view = snapshot(config.source(request).view())
        try:
            return JSONResponse(await run_in_threadpool(stress.run, view, form.request(mode)))
        except CrossMarginError as error:
            raise input_error(error) from error

    @router.get("/api/warnings")
    async def warnings_json(request: Request) -> JSONResponse:
        viewer = await require(request)
        return JSONResponse(_visible_warnings(viewer, config.source(request).view()))

    # -- live -----------------------------------------------------------------------------------

    @router.websocket("/ws")
    async def live(websocket: WebSocket, account: str | None = None) -> None:
        viewer = await viewer_of(websocket, websocket.cookies.get(COOKIE))
        allowed = viewer is not None and (
            viewer.role in SEE_ALL if account is None else viewer.role in SEE_ALL or viewer.account == account
        )
        if not allowed:
            await websocket.close(code=1008)  # policy violation: no key, or not this viewer's
            return
        await websocket.accept()
        source = config.source(websocket)
        sequence = source.view().sequence
        closed = asyncio.ensure_future(_until_closed(websocket))
        try:
            while not closed.done():
                change = asyncio.ensure_future(source.wait_for_change(sequence))
                await asyncio.wait({change, closed}, return_when=asyncio.FIRST_COMPLETED)
                if not change.done():
                    change.cancel()
                    break
                view = source.view()
                sequence = view.sequence
                message: dict[str, Any] = {"sequence": sequence, "headline": figures.headline(view)}
                if account is None:
                    message["overview"] = overview_of(view)
                else:
                    message["account"] = figures.account_report(view, account, with_levels=False)
                await websocket.send_json(message)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            closed.cancel()

    return router


async def _until_closed(websocket: WebSocket) -> None:
    """Reads (and drops) client messages until the client goes away."""
    try:
        while True:
            await websocket.receive_text()
    except (WebSocketDisconnect, RuntimeError):
        return


def _backtest(
    book: LoadedBook, view: VenueView, account: str, models: tuple[str, ...], first_day: str, last_day: str
) -> dict[str, Any]:
    assert view.history is not None
    return figures.backtest(
        book, view.history, account_id=account, models=models, first_day=first_day, last_day=last_day
    )


def _visible_warnings(viewer: Viewer, view: VenueView) -> list[dict[str, Any]]:
    """Every warning for risk and admin; a holder sees the venue-wide ones and its own."""
    found = figures.warnings(view)
    if viewer.role in SEE_ALL:
        return found
    account_ids = set(view.engine.book.account_ids)
    return [w for w in found if w["subject"] == viewer.account or w["subject"] not in account_ids]
