"""A read flood for the overload test, run as its own process (so it does not share the server's
interpreter lock): GET one URL at an offered rate (open loop: requests start on schedule whether or
not earlier ones returned) or as fast as `connections` allow (rate 0), for `seconds`; prints one
JSON object: statuses, latency percentiles per status, errors by kind, requests never sent.

A hand-written keep-alive HTTP/1.1 client on asyncio streams (as bench/bench_service_http.py's):
httpx cost ~11 ms of CPU per request on this 2-core machine against the server's ~2 ms, so under
load the flood starved itself and the server of CPU and the test measured the client. Requests
take a free connection from a pool of `connections` (opened on first use); one that finds none
within a second is `not_sent` (the client's own backlog, never reached the server). A request has
20 s to be answered (`TimeoutError` otherwise: the server queued it)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import defaultdict
from urllib.parse import urlsplit

ANSWER_TIMEOUT_S = 20.0
POOL_TIMEOUT_S = 1.0


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def get(self, request: bytes) -> tuple[int, bool]:
        """(status, whether the server closes the connection after this answer)."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return status, b"connection: close" in head.lower()


async def main(url: str, key: str, rate_per_s: float, seconds: float, connections: int) -> dict[str, object]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (
        f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n\r\n"
    ).encode()
    latencies: dict[int, list[float]] = defaultdict(list)
    error_kinds: dict[str, int] = defaultdict(int)  # by exception class: a reset is not a timeout
    counts = {"errors": 0, "not_sent": 0}
    pool: asyncio.Queue[Connection | None] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(None)  # a slot; its connection opens on first use

    async def one() -> None:
        try:
            slot = await asyncio.wait_for(pool.get(), timeout=POOL_TIMEOUT_S)
        except TimeoutError:
            counts["not_sent"] += 1
            return
        started = time.perf_counter()
        try:
            if slot is None:
                slot = Connection(*await asyncio.open_connection(host, port))
            status, closing = await asyncio.wait_for(slot.get(request), timeout=ANSWER_TIMEOUT_S)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError) as error:
            counts["errors"] += 1
            error_kinds[type(error).__name__] += 1
            if slot is not None:
                slot.writer.close()
            pool.put_nowait(None)  # a fresh connection next time
            return
        latencies[status].append(time.perf_counter() - started)
        if closing:
            slot.writer.close()
        pool.put_nowait(None if closing else slot)

    start = time.perf_counter()
    tasks: list[asyncio.Task[None]] = []
    if rate_per_s > 0:  # open loop
        n = 0
        while (now := time.perf_counter() - start) < seconds:
            due = int(now * rate_per_s) + 1
            while n < due:
                tasks.append(asyncio.create_task(one()))
                n += 1
            await asyncio.sleep(0.001)
    else:  # closed loop: `connections` workers back to back

        async def worker() -> None:
            while time.perf_counter() - start < seconds:
                await one()

        tasks = [asyncio.create_task(worker()) for _ in range(connections)]
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    while not pool.empty():
        connection = pool.get_nowait()
        if connection is not None:
            connection.writer.close()

    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3

    return {
        "elapsed_s": elapsed,
        "errors": counts["errors"],
        "error_kinds": dict(error_kinds),
        "not_sent": counts["not_sent"],
        "statuses": {str(k): len(v) for k, v in latencies.items()},
        "p50_ms": {str(k): pct(v, 0.50) for k, v in latencies.items()},
        "p99_ms": {str(k): pct(v, 0.99) for k, v in latencies.items()},
    }


if __name__ == "__main__":
    url, key, rate, seconds, connections = sys.argv[1:6]
    result = asyncio.run(main(url, key, float(rate), float(seconds), int(connections)))
    sys.stdout.write(json.dumps(result) + "\n")
