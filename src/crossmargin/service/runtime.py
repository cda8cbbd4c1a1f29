"""Opening the service and running it under uvicorn (what `crossmargin serve` calls).

`open_context(settings)`: connect the event store (durability asserted at connect), open the venue
(recovering from the log; the opening book only for an empty log), open the key store in the same
database, and mint the first admin key when there is none. `run_forever` loads the margin
cycle's compiled kernels (kernels.py) and settles the collector (heap.py), then serves until
SIGTERM or SIGINT and shuts down gracefully (app.py). `run_once` serves on loopback, reads
readiness and every account over real HTTP with the admin key, shuts down, and returns what it
read.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from crossmargin.service.context import ServiceContext
from crossmargin.service.heap import keep_freed_memory, settle_heap
from crossmargin.service.kernels import settle_kernels
from crossmargin.service.keys import Role, mint_key
from crossmargin.service.keystore import KeyStore
from crossmargin.service.limits import Admission, RateLimiter
from crossmargin.service.logs import configure_logging, service_logger
from crossmargin.service.settings import ServiceSettings

BUNDLED_BOOK = Path("examples") / "desk.yaml"


def default_book() -> Path:
    """examples/desk.yaml of the working directory, else of the source tree this package is in."""
    if BUNDLED_BOOK.exists():
        return BUNDLED_BOOK
    return Path(__file__).resolve().parents[3] / BUNDLED_BOOK


def key_store_engine(url: str, schema: str | None) -> sa.Engine:
    """An engine for the key and audit tables in the event log's database (and schema). SQLite
    waits up to 30 s for the log writer's lock instead of failing ("database is locked")."""
    if url.startswith("sqlite"):
        return sa.create_engine(url, connect_args={"timeout": 30.0, "check_same_thread": False})
    connect_args = {} if schema is None else {"options": f"-csearch_path={schema}"}
    return sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)


def write_secret(path: Path, text: str) -> None:
    """Write `text` to `path`, mode 0600, via a temporary file and rename (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text + "\n")
    os.replace(temporary, path)


def bootstrap_admin(keys: KeyStore, path: Path) -> str | None:
    """Mint the first admin key when the store has no key at all; return it (None otherwise)."""
    if keys.all():
        return None
    new = mint_key(role=Role.ADMIN, account=None, label="bootstrap admin", created_ns=time.time_ns())
    write_secret(path, new.text)
    keys.add(new.row)
    service_logger().warning(
        "first admin key minted", extra={"key_id": new.row.key_id, "written_to": str(path)}
    )
    return new.text


def open_context(settings: ServiceSettings) -> ServiceContext:
    from crossmargin.service.wiring import open_venue, price_history

    venue = open_venue(settings)
    try:
        keys = KeyStore(key_store_engine(settings.database_url, settings.schema))
        bootstrap_admin(keys, settings.admin_key_file)
    except BaseException:
        venue.close()
        raise
    context = ServiceContext(
        settings=settings,
        venue=venue,
        keys=keys,
        limiter=RateLimiter(settings.rate_limits, time.monotonic),
        admission=Admission(settings.admission),
        price_history=price_history(),
    )
    context.metrics.read_from(venue.stats)
    return context


def _server(settings: ServiceSettings, context: ServiceContext, log_level: str) -> Any:
    import uvicorn

    from crossmargin.service.app import create_app

    config = uvicorn.Config(
        create_app(context),
        host=settings.host,
        port=settings.port,
        log_config=None,  # our JSON logging (logs.py), configured below
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=30,
        lifespan="on",
        ws="websockets-sansio",
    )
    return uvicorn.Server(config)


def run_forever(settings: ServiceSettings, *, log_level: str = "info") -> None:
    configure_logging(log_level)
    kept = keep_freed_memory()  # before the venue's arrays exist: all of them reusable (heap.py)
    context = open_context(settings)
    warm_up_s = settle_kernels(context.venue)  # compiled kernels loaded now, not on a request
    server = _server(settings, context, log_level)
    frozen = settle_heap()  # the start-up heap is never walked again (heap.py)
    service_logger().info(
        "listening",
        extra={
            "host": settings.host,
            "port": settings.port,
            "db": _safe_url(settings.database_url),
            "frozen_objects": frozen,
            "keep_freed_memory": kept,
            "kernel_warm_up_s": round(warm_up_s, 3),
        },
    )
    server.run()


def run_once(settings: ServiceSettings, *, log_level: str = "warning") -> dict[str, Any]:
    """Serve on loopback, GET /readyz and /v1/accounts with the admin key, stop; return both."""
    configure_logging(log_level)
    context = open_context(settings)
    admin_key = settings.admin_key_file.read_text().strip() if settings.admin_key_file.exists() else None
    server = _server(settings, context, log_level)
    return asyncio.run(_once(server, admin_key))


async def _once(server: Any, admin_key: str | None) -> dict[str, Any]:
    import httpx

    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    try:
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=30.0) as client:
            ready = (await client.get("/readyz")).json()
            headers = {"Authorization": f"Bearer {admin_key}"} if admin_key else {}
            response = await client.get("/v1/accounts", params={"limit": 500}, headers=headers)
            accounts = response.json()
    finally:
        server.should_exit = True
        await task
    return {
        "url": f"http://{host}:{port}",
        "ready": ready,
        "accounts": accounts,
        "status": response.status_code,
    }


def _safe_url(url: str) -> str:
    """The URL without its password, for logs."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable url>"
