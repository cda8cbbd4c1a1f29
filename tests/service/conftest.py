"""A running service per test, over SQLite and over the real PostgreSQL on 127.0.0.1:5432.

PostgreSQL tests run each in a schema of their own (`search_path` in the URL), dropped after. The
app runs in process under Starlette's TestClient (real ASGI, real lifespan, real WebSockets; the
venue's writer thread and the database are the real ones); the overload and benchmark runs use a
real uvicorn server on loopback (`serve_in_thread`).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from crossmargin.service.app import create_app
from crossmargin.service.context import ServiceContext
from crossmargin.service.limits import AdmissionLimits, Rate, RateLimits
from crossmargin.service.runtime import open_context
from crossmargin.service.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
DESK = ROOT / "examples" / "desk.yaml"
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Database:
    """Where a test's venue keeps its log: a SQLite file, or its own PostgreSQL schema."""

    url: str
    schema: str | None = None


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    yield from _database(request.param, tmp_path)


@pytest.fixture(scope="module", params=BACKENDS)
def module_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    yield from _database(request.param, tmp_path_factory.mktemp("venue"))


@pytest.fixture(scope="module")
def module_service(module_database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One service for a module whose tests leave each other's state alone (faster: one start).
    Its rate limits are out of the way: many tests share its keys and its one client address
    (the limits themselves are tested in test_limits and test_overload)."""
    high = Rate(rate_per_s=1e6, burst=1_000_000)
    limits = RateLimits(holder=high, risk=high, admin=high, anonymous=high)
    yield from start(settings_for(module_database, tmp_path_factory.mktemp("keys"), rate_limits=limits))


def _database(backend: str, tmp_path: Path) -> Iterator[Database]:
    if backend == "sqlite":
        yield Database(f"sqlite:///{tmp_path / 'venue.db'}")
        return
    schema = f"svc_{uuid.uuid4().hex[:12]}"
    try:
        yield Database(POSTGRES_URL, schema)
    finally:
        admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


@dataclass
class Running:
    """A started service: its TestClient, its context, and keys of every role."""

    client: TestClient
    context: ServiceContext
    admin: str
    risk: str
    minted: dict[str, str] = field(default_factory=dict)

    def holder(self, account: str) -> str:
        """A holder key of `account`, minted on first use (each costs one scrypt)."""
        if account not in self.minted:
            self.minted[account] = self.mint("holder", account)["key"]
        return self.minted[account]

    def as_(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def mint(self, role: str, account: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"role": role, "label": "test"}
        if account is not None:
            body["account"] = account
        response = self.client.post("/v1/admin/keys", json=body, headers=self.as_(self.admin))
        assert response.status_code == 201, response.text
        return dict(response.json())


def settings_for(database: Database, tmp_path: Path, **overrides: Any) -> ServiceSettings:
    return ServiceSettings(
        database_url=database.url,
        schema=database.schema,
        book=DESK,
        admin_key_file=tmp_path / "admin.key",
        stream_wait_s=0.05,  # a closed test stream is noticed within this
        **overrides,
    )


@pytest.fixture
def service(database: Database, tmp_path: Path) -> Iterator[Running]:
    yield from start(settings_for(database, tmp_path))


def start(settings: ServiceSettings) -> Iterator[Running]:
    context = open_context(settings)
    with TestClient(create_app(context)) as client:
        admin = settings.admin_key_file.read_text().strip()
        running = Running(client=client, context=context, admin=admin, risk="")
        running.risk = running.mint("risk")["key"]
        yield running


# -- a real uvicorn server on loopback (overload test, benchmark) -------------------------------------


@dataclass
class Served:
    url: str
    context: ServiceContext
    admin: str
    server: Any
    thread: threading.Thread


def serve_in_thread(settings: ServiceSettings) -> Served:
    import uvicorn

    context = open_context(settings)
    config = uvicorn.Config(
        create_app(context), host="127.0.0.1", port=0, log_config=None, log_level="error", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    admin = settings.admin_key_file.read_text().strip()
    return Served(url=f"http://127.0.0.1:{port}", context=context, admin=admin, server=server, thread=thread)


def stop(served: Served) -> None:
    served.server.should_exit = True
    served.thread.join(timeout=60)


__all__ = ["AdmissionLimits", "RateLimits"]
