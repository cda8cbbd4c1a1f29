"""A read flood for the overload test and the HTTP benchmark, run as its own process (so it does
not share the server's interpreter lock): GET one URL at an offered rate (open loop: requests
start on schedule whether or not earlier ones returned) or as fast as `connections` allow
(rate 0), for `seconds`; prints one JSON object: statuses, latency percentiles per status."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import defaultdict


async def main(url: str, key: str, rate_per_s: float, seconds: float, connections: int) -> dict[str, object]:
    import httpx

    latencies: dict[int, list[float]] = defaultdict(list)
    errors = 0
    error_kinds: dict[str, int] = defaultdict(int)  # by exception class: a reset is not a timeout
    not_sent = 0  # the client's own backlog: no connection free within a second (never reached the server)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    headers = {"Authorization": f"Bearer {key}"}
    timeout = httpx.Timeout(20.0, pool=1.0)
    async with httpx.AsyncClient(limits=limits, timeout=timeout, headers=headers) as client:

        async def one() -> None:
            nonlocal errors, not_sent
            started = time.perf_counter()
            try:
                response = await client.get(url)
            except httpx.PoolTimeout:
                not_sent += 1
                return
            except httpx.HTTPError as error:
                errors += 1
                error_kinds[type(error).__name__] += 1
                return
            latencies[response.status_code].append(time.perf_counter() - started)

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

    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3

    return {
        "elapsed_s": elapsed,
        "errors": errors,
        "error_kinds": dict(error_kinds),
        "not_sent": not_sent,
        "statuses": {str(k): len(v) for k, v in latencies.items()},
        "p50_ms": {str(k): pct(v, 0.50) for k, v in latencies.items()},
        "p99_ms": {str(k): pct(v, 0.99) for k, v in latencies.items()},
    }


if __name__ == "__main__":
    url, key, rate, seconds, connections = sys.argv[1:6]
    result = asyncio.run(main(url, key, float(rate), float(seconds), int(connections)))
    sys.stdout.write(json.dumps(result) + "\n")
