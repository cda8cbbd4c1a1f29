"""HTTP acknowledgement latency and events/s of `crossmargin serve` over loopback.

    python bench/bench_service_http.py [--seconds 5] [--clients 64] [--backend sqlite|postgresql|both]

The server runs as its own process (`crossmargin serve`, uvicorn, the desk book), the clients in
this one (httpx, asyncio; deposits back to back, every 20th request a price tick), first one
client (latency), then `--clients` concurrent connections (throughput, group commit). Per backend:

    ack_p50_ms / ack_p99_ms   POST -> 201, i.e. after the command's group commit (durable)
    events_per_s              acknowledged commands per second
    one_client_*              the same with one client
    healthz_p99_ms            GET /healthz: the HTTP stack's floor on this machine, same run
    core_ack_p99_ms           the venue alone (Venue.execute in this process, no HTTP), same run,
                              one client: what the HTTP layer adds is the difference

The durable-events aim of issue 16 (>= 50,000 events/s, ack p99 <= 10 ms) is the core's; the
core benchmark (bench/bench_service.py) measures it without HTTP. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DESK = ROOT / "examples" / "desk.yaml"
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentiles_ms(seconds: list[float]) -> tuple[float, float]:
    values = np.asarray(seconds) * 1e3
    return float(np.quantile(values, 0.5)), float(np.quantile(values, 0.99, method="higher"))


async def load(base: str, key: str, *, seconds: float, clients: int) -> dict[str, Any]:
    import httpx

    acks: list[float] = []
    health: list[float] = []
    refused: dict[int, int] = {}
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=clients + 1, max_keepalive_connections=clients + 1)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60.0) as client:
        start = time.perf_counter()

        async def worker(n: int) -> None:
            i = 0
            while time.perf_counter() - start < seconds:
                i += 1
                if i % 20 == 0:
                    request = client.post("/v1/prices", json={"index_prices": {"BTC": 88_000.0 + (i % 7)}})
                else:
                    request = client.post(
                        "/v1/accounts/basis-trader/deposits", json={"asset": "USDC", "amount": "1"}
                    )
                began = time.perf_counter()
                response = await request
                if response.status_code == 201:
                    acks.append(time.perf_counter() - began)
                else:
                    refused[response.status_code] = refused.get(response.status_code, 0) + 1

        async def prober() -> None:
            while time.perf_counter() - start < seconds:
                began = time.perf_counter()
                await client.get("/healthz")
                health.append(time.perf_counter() - began)
                await asyncio.sleep(0.01)

        await asyncio.gather(prober(), *(worker(n) for n in range(clients)))
        elapsed = time.perf_counter() - start
    p50, p99 = percentiles_ms(acks)
    _, health_p99 = percentiles_ms(health)
    return {
        "events_per_s": len(acks) / elapsed,
        "ack_p50_ms": p50,
        "ack_p99_ms": p99,
        "healthz_p99_ms": health_p99,
        "acknowledged": len(acks),
        "refused": refused,
    }


def core_ack(database_url: str, schema: str | None, *, seconds: float) -> float:
    """p99 of Venue.execute(Deposit) in this process, one client, no HTTP (the same store)."""
    from crossmargin.adapters.clock import SystemClock
    from crossmargin.adapters.sql import SqlEventStore
    from crossmargin.engine.venue import Deposit, Venue, VenueSettings
    from crossmargin.service.wiring import genesis_of_book

    store = SqlEventStore.connect(database_url, schema=schema)
    venue = Venue.open(store, genesis_of_book(DESK), clock=SystemClock(), settings=VenueSettings())
    latencies = []
    try:
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            began = time.perf_counter()
            venue.execute(
                Deposit(
                    idempotency_key=uuid.uuid4().hex, account="basis-trader", asset="USDC", amount_units=10**6
                )
            )
            latencies.append(time.perf_counter() - began)
    finally:
        venue.close()
    return percentiles_ms(latencies)[1]


def run_backend(backend: str, *, seconds: float, clients: int, workdir: Path) -> dict[str, Any]:
    schema = None
    if backend == "sqlite":
        url = f"sqlite:///{workdir / 'bench-http.db'}"
        core_url = f"sqlite:///{workdir / 'bench-core.db'}"
    else:
        url = core_url = POSTGRES_URL
        schema = f"bench_http_{uuid.uuid4().hex[:8]}"
    port = free_port()
    key_file = workdir / f"admin-{backend}.key"
    command = [sys.executable, "-c", "from crossmargin.cli.main import app; app()", "serve", "--db", url]
    command += [
        "--port",
        str(port),
        "--admin-key-file",
        str(key_file),
        "--book",
        str(DESK),
        "--log-level",
        "error",
    ]
    if schema is not None:
        command += ["--schema", schema]
    server = subprocess.Popen(command, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        import httpx

        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(base + "/readyz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"server did not start: {server.stderr.read().decode() if server.stderr else ''}"
                )
            time.sleep(0.1)
        key = key_file.read_text().strip()
        asyncio.run(load(base, key, seconds=min(1.0, seconds), clients=1))  # warm-up (scrypt once, kernels)
        single = asyncio.run(load(base, key, seconds=seconds, clients=1))
        result = asyncio.run(load(base, key, seconds=seconds, clients=clients))
        result["one_client_ack_p50_ms"] = single["ack_p50_ms"]
        result["one_client_ack_p99_ms"] = single["ack_p99_ms"]
        result["one_client_events_per_s"] = single["events_per_s"]
    finally:
        server.terminate()
        server.wait(timeout=60)
    core_schema = None if schema is None else schema + "_core"
    result["core_ack_p99_ms"] = core_ack(core_url, core_schema, seconds=min(seconds, 3.0))
    if schema is not None:
        import sqlalchemy as sa

        engine = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            for name in (schema, core_schema):
                connection.execute(sa.text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))
        engine.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical), load average {os.getloadavg()[0]:.1f}")
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            results[backend] = run_backend(
                backend, seconds=args.seconds, clients=args.clients, workdir=Path(tmp)
            )
            r = results[backend]
            print(
                f"{backend:10s} {args.clients} clients: {r['events_per_s']:8.0f} events/s, ack p50 "
                f"{r['ack_p50_ms']:.2f} ms p99 {r['ack_p99_ms']:.2f} ms | one client: "
                f"{r['one_client_events_per_s']:.0f} events/s, ack p50 {r['one_client_ack_p50_ms']:.2f} ms "
                f"p99 {r['one_client_ack_p99_ms']:.2f} ms | floors: healthz p99 {r['healthz_p99_ms']:.2f} ms, "
                f"venue alone (no HTTP, one client) p99 {r['core_ack_p99_ms']:.2f} ms"
            )
    first = results[backends[0]]
    summary = {
        "events_per_s": round(first["events_per_s"], 1),
        "ack_p50_ms": round(first["ack_p50_ms"], 3),
        "ack_p99_ms": round(first["ack_p99_ms"], 3),
        "backends": {
            k: {m: (round(v, 3) if isinstance(v, float) else v) for m, v in r.items()}
            for k, r in results.items()
        },
        "clients": args.clients,
        "seconds": args.seconds,
        "cpu": cpu_model(),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
