"""HTTP acknowledgement latency and events/s of `crossmargin serve` over loopback.

    python bench/bench_service_http.py [--seconds 5] [--clients 64] [--backend sqlite|postgresql|both]

The server runs as its own process (`crossmargin serve`, uvicorn, the desk book), the clients in
this one (asyncio keep-alive connections written by hand, `_Connection`: the machine's two CPUs
are shared, and httpx cost five times the server's CPU per request; deposits back to back, every
20th request a price tick), first one client (latency), then `--clients` concurrent connections
(throughput, group commit). Per backend:

    ack_p50_ms / ack_p99_ms   POST -> 201, i.e. after the command's group commit (durable)
    events_per_s              acknowledged commands per second
    events_per_commit         events a group commit in that run (the server's /metrics): how much
                              the concurrent clients give the venue to group
    one_client_*              the same with one client
    healthz_p99_ms            GET /healthz: the HTTP stack's floor on this machine, same run
    core_ack_p99_ms           the venue alone (Venue.execute in this process, no HTTP), same run,
                              one client: what the HTTP layer adds is the difference
    server_cpu_ms_per_event   the server process's CPU seconds over the concurrent run, per
    client_cpu_ms_per_event   acknowledged command (and the load generator's): on a shared machine
                              the figure that does not depend on what else runs

The server runs with `--rate-limit admin=10000000/10000000`: the admin key's default limit (500/s)
would otherwise be the figure; requests refused for any reason are reported (`refused`).

The durable-events aim of issue 16 (>= 50,000 events/s, ack p99 <= 10 ms) is the core's; the
core benchmark (bench/bench_service.py) measures it without HTTP. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from machine import cpu_model

ROOT = Path(__file__).resolve().parents[1]
DESK = ROOT / "examples" / "desk.yaml"
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
UNLIMITED_PER_S = 10_000_000  # the bench's admin key: the service's capacity, not its rate limit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentiles_ms(seconds: list[float]) -> tuple[float, float]:
    values = np.asarray(seconds) * 1e3
    return float(np.quantile(values, 0.5)), float(np.quantile(values, 0.99, method="higher"))


class _Connection:
    """One keep-alive HTTP/1.1 connection, requests written and responses read by hand.

    The load generator shares the machine's two CPUs with the server: httpx spent ~11 ms of CPU
    per request here against the server's ~2 ms (issue 16's profile), so a run measured the
    client. This client costs ~0.1 ms a request; status and body are still read and checked."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: str) -> None:
        self.reader, self.writer = reader, writer
        self.auth = f"Authorization: Bearer {key}\r\n".encode()

    @classmethod
    async def open(cls, host: str, port: int, key: str) -> _Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, key)

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\n".encode() + self.auth
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n".encode()
        self.writer.write(head + b"\r\n" + (body or b""))
        response = await self.reader.readuntil(b"\r\n\r\n")
        status = int(response.split(b" ", 2)[1])
        length = 0
        for line in response.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def batch_body(run: str, n: int, size: int) -> bytes:
    """`size` deposits for POST /v1/events/batch, each with its own idempotency key."""
    events = [
        {
            "kind": "deposit",
            "idempotency_key": f"{run}-{n}-{i}",
            "account": "basis-trader",
            "asset": "USDC",
            "amount": "1",
        }
        for i in range(size)
    ]
    return json.dumps({"events": events}).encode()


async def load(base: str, key: str, *, seconds: float, clients: int, batch: int = 1) -> dict[str, Any]:
    """`clients` connections posting back to back for `seconds`: every 20th request a price tick,
    the others one deposit (`batch` 1: POST /v1/accounts/{a}/deposits) or `batch` deposits in one
    POST /v1/events/batch. An event counts once acknowledged (201 / its batch item 201); the
    latency of each is its request's."""
    host, port = base.removeprefix("http://").split(":")
    acks: list[float] = []
    health: list[float] = []
    refused: dict[int, int] = {}
    deposit = json.dumps({"asset": "USDC", "amount": "1"}).encode()
    connections = [await _Connection.open(host, int(port), key) for _ in range(clients + 1)]
    run = uuid.uuid4().hex[:8]
    start = time.perf_counter()

    async def worker(number: int, connection: _Connection) -> None:
        i = 0
        while time.perf_counter() - start < seconds:
            i += 1
            if i % 20 == 0:
                path = "/v1/prices"
                body = json.dumps({"index_prices": {"BTC": 88_000.0 + (i % 7)}}).encode()
            elif batch > 1:
                path, body = "/v1/events/batch", batch_body(f"{run}-{number}", i, batch)
            else:
                path, body = "/v1/accounts/basis-trader/deposits", deposit
            began = time.perf_counter()
            status, text = await connection.request("POST", path, body)
            took = time.perf_counter() - began
            if status == 201 and b'"sequence"' in text:
                acks.append(took)
            elif status == 200 and path == "/v1/events/batch":
                outcome = json.loads(text)
                acks.extend([took] * outcome["accepted"])
                if outcome["rejected"]:
                    refused[422] = refused.get(422, 0) + outcome["rejected"]
            else:
                refused[status] = refused.get(status, 0) + 1

    async def prober(connection: _Connection) -> None:
        while time.perf_counter() - start < seconds:
            began = time.perf_counter()
            status, _ = await connection.request("GET", "/healthz")
            if status == 200:
                health.append(time.perf_counter() - began)
            await asyncio.sleep(0.01)

    try:
        await asyncio.gather(prober(connections[0]), *(worker(n, c) for n, c in enumerate(connections[1:])))
    finally:
        for connection in connections:
            connection.close()
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


def commit_counters(base: str) -> tuple[float, float]:
    """(records appended, group commits) so far, from the server's /metrics."""
    import httpx

    text = httpx.get(base + "/metrics", timeout=10.0).text
    values = {}
    for name in ("crossmargin_events_committed_total", "crossmargin_commit_batches_total"):
        match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
        values[name] = float(match.group(1)) if match else float("nan")
    return values["crossmargin_events_committed_total"], values["crossmargin_commit_batches_total"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/PID/stat, Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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


def run_backend(
    backend: str, *, seconds: float, clients: int, workdir: Path, batch: int = 1, batch_clients: int = 4
) -> dict[str, Any]:
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
        # The admin key's default 500 requests/s (burst 1,000) would be what this measures: over
        # a 3 s run it capped one-event-per-request at ~830/s with most requests refused 429
        # (figures of earlier rounds), and the server CPU "per event" counted every refusal.
        "--rate-limit",
        f"admin={UNLIMITED_PER_S}/{UNLIMITED_PER_S}",
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
        server_before, client_before = cpu_seconds(server.pid), own_cpu_seconds()
        records_before, commits_before = commit_counters(base)
        result = asyncio.run(load(base, key, seconds=seconds, clients=clients))
        records_after, commits_after = commit_counters(base)
        # Events a group commit: what the concurrent clients give the venue to group.
        result["events_per_commit"] = (records_after - records_before) / max(
            commits_after - commits_before, 1
        )
        served = max(result["acknowledged"], 1)
        result["server_cpu_s"] = cpu_seconds(server.pid) - server_before
        result["client_cpu_s"] = own_cpu_seconds() - client_before
        result["server_cpu_ms_per_event"] = result["server_cpu_s"] / served * 1e3
        result["client_cpu_ms_per_event"] = result["client_cpu_s"] / served * 1e3
        result["one_client_ack_p50_ms"] = single["ack_p50_ms"]
        result["one_client_ack_p99_ms"] = single["ack_p99_ms"]
        result["one_client_events_per_s"] = single["events_per_s"]
        if batch > 1:
            server_before = cpu_seconds(server.pid)
            batched = asyncio.run(load(base, key, seconds=seconds, clients=batch_clients, batch=batch))
            served = max(batched["acknowledged"], 1)
            result["batch"] = {
                "events_per_request": batch,
                "clients": batch_clients,
                "events_per_s": batched["events_per_s"],
                "ack_p50_ms": batched["ack_p50_ms"],
                "ack_p99_ms": batched["ack_p99_ms"],
                "refused": batched["refused"],
                "server_cpu_ms_per_event": (cpu_seconds(server.pid) - server_before) / served * 1e3,
            }
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
    parser.add_argument("--batch", type=int, default=100, help="events per POST /v1/events/batch (1: skip)")
    parser.add_argument("--batch-clients", type=int, default=4, help="connections of the batch run")
    args = parser.parse_args()
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical), load average {os.getloadavg()[0]:.1f}")
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            results[backend] = run_backend(
                backend,
                seconds=args.seconds,
                clients=args.clients,
                workdir=Path(tmp),
                batch=args.batch,
                batch_clients=args.batch_clients,
            )
            r = results[backend]
            print(
                f"{backend:10s} {args.clients} clients: {r['events_per_s']:8.0f} events/s "
                f"({r['events_per_commit']:.1f} a group commit), ack p50 "
                f"{r['ack_p50_ms']:.2f} ms p99 {r['ack_p99_ms']:.2f} ms | one client: "
                f"{r['one_client_events_per_s']:.0f} events/s, ack p50 {r['one_client_ack_p50_ms']:.2f} ms "
                f"p99 {r['one_client_ack_p99_ms']:.2f} ms | floors: healthz p99 {r['healthz_p99_ms']:.2f} ms, "
                f"venue alone (no HTTP, one client) p99 {r['core_ack_p99_ms']:.2f} ms | CPU per event: "
                f"server {r['server_cpu_ms_per_event']:.2f} ms, client {r['client_cpu_ms_per_event']:.2f} ms"
            )
            if "batch" in r:
                b = r["batch"]
                print(
                    f"{backend:10s} batch of {b['events_per_request']} deposits, {b['clients']} clients: "
                    f"{b['events_per_s']:8.0f} events/s, ack p50 {b['ack_p50_ms']:.2f} ms p99 "
                    f"{b['ack_p99_ms']:.2f} ms | server CPU per event {b['server_cpu_ms_per_event']:.3f} ms"
                )
    first = results[backends[0]]
    summary = {
        "events_per_s": round(first["events_per_s"], 1),
        "ack_p50_ms": round(first["ack_p50_ms"], 3),
        "ack_p99_ms": round(first["ack_p99_ms"], 3),
        "server_cpu_ms_per_event": round(first["server_cpu_ms_per_event"], 3),
        "batch_events_per_s": round(first["batch"]["events_per_s"], 1) if "batch" in first else None,
        "batch_ack_p99_ms": round(first["batch"]["ack_p99_ms"], 3) if "batch" in first else None,
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
