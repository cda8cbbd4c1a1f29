"""Overload: a read flood from another process against a real uvicorn server, while deposits and
price ticks stream in: an open loop of min(10x the measured read capacity, 1,000) requests/s over
256 connections, against 2 read slots (capacity, measured closed-loop over 2 connections: ~1,200
reads/s here with flood.py's lean client; ~120-160 when the client was httpx, which measured
itself). The excess is refused at once (503 with
Retry-After from admission, 429 from a holder key's rate limit), never queued; ingestion's
acknowledgement latency and the margin cycle stay within their aims.

Timing on a shared 2-core machine is noisy, so the bounds are relative to the same run's baseline
(ingestion alone), with the issue's aims as floors: ack p99 <= max(5 x baseline p99, 10 ms) and
margin cycle p99 <= max(5 x baseline p99, 100 ms)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from crossmargin.service.limits import AdmissionLimits, Rate, RateLimits
from tests.service.conftest import Database, serve_in_thread, settings_for, stop

FLOOD = Path(__file__).with_name("flood.py")
READ_URL = "/v1/accounts/vol-seller"
ACK_AIM_MS = 10.0
CYCLE_AIM_MS = 100.0
MAX_OFFERED_PER_S = 1_000.0


def flood(url: str, key: str, *, rate_per_s: float, seconds: float, connections: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(FLOOD), url, key, str(rate_per_s), str(seconds), str(connections)],
        capture_output=True,
        text=True,
        check=True,
        timeout=180,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def ingest(base: str, holder: str, risk: str, *, seconds: float) -> dict[str, list[float]]:
    """Deposits back to back and a price tick every 5th: ack latency (ms) of each, and the
    venue's margin-cycle time of each tick (read from /metrics)."""
    acks: list[float] = []
    cycles: list[float] = []
    prices = [88_000.0, 88_100.0]
    with httpx.Client(base_url=base, timeout=30.0) as client:
        start = time.perf_counter()
        n = 0
        while time.perf_counter() - start < seconds:
            n += 1
            began = time.perf_counter()
            response = client.post(
                "/v1/accounts/basis-trader/deposits",
                json={"asset": "USDC", "amount": "1"},
                headers={"Authorization": f"Bearer {holder}"},
            )
            assert response.status_code == 201, response.text
            acks.append((time.perf_counter() - began) * 1e3)
            if n % 5 == 1:  # a tick first, then every 5th
                tick = client.post(
                    "/v1/prices",
                    json={"index_prices": {"BTC": prices[n % 10 == 1]}},
                    headers={"Authorization": f"Bearer {risk}"},
                )
                assert tick.status_code == 201, tick.text
                metrics = client.get("/metrics").text
                line = next(
                    x for x in metrics.splitlines() if x.startswith("crossmargin_margin_cycle_last_seconds ")
                )
                cycles.append(float(line.split()[1]) * 1e3)
    return {"ack_ms": acks, "cycle_ms": cycles}


def server_median_s(metrics: str, route: str) -> float:
    """Median of the app's own request time for GETs of `route`, from the Prometheus histogram
    (the upper bound of the bucket holding the median)."""
    prefix = 'crossmargin_http_request_seconds_bucket{le="'
    buckets = []
    for line in metrics.splitlines():
        if line.startswith(prefix) and f'method="GET",route="{route}"' in line:
            upper = line[len(prefix) :].split('"', 1)[0]
            buckets.append((float(upper), float(line.rsplit(" ", 1)[1])))
    total = max(count for _, count in buckets)
    return min(upper for upper, count in buckets if count >= total / 2)


def p99(values: list[float]) -> float:
    return float(np.quantile(values, 0.99, method="higher"))


def test_overload_read_flood_is_refused_not_queued_and_ingestion_keeps_its_aims(tmp_path: Path) -> None:
    high = Rate(rate_per_s=1e6, burst=1_000_000)
    settings = settings_for(
        Database(f"sqlite:///{tmp_path / 'venue.db'}"),
        tmp_path,
        rate_limits=RateLimits(risk=high, admin=high, holder=Rate(rate_per_s=2.0, burst=5)),
        admission=AdmissionLimits(read=2, compute=1, command=4096),
    )
    served = serve_in_thread(settings)
    try:
        with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {served.admin}"}) as admin:
            risk = admin.post("/v1/admin/keys", json={"role": "risk"}).json()["key"]
            # deposits go in with the admin key (its own high limit); the holder limit is the flood's
            holder = served.admin
            reader = admin.post("/v1/admin/keys", json={"role": "holder", "account": "vol-seller"}).json()[
                "key"
            ]
        url = served.url + READ_URL

        ingest(served.url, holder, risk, seconds=0.5)  # warm-up: compiled kernels, connections
        baseline = ingest(served.url, holder, risk, seconds=2.0)
        capacity_run = flood(url, risk, rate_per_s=0, seconds=2.0, connections=2)
        assert set(capacity_run["statuses"]) == {"200"}, capacity_run
        capacity_per_s = capacity_run["statuses"]["200"] / capacity_run["elapsed_s"]
        # One Python client process (flood.py, ~0.1 ms of CPU a request) could offer more, but on
        # 2 cores every request it sends takes CPU from the server it measures: the flood is capped
        # at 1,000 requests/s, 256 connections against 2 read slots (the report says the rate).
        offered_per_s = min(10 * capacity_per_s, MAX_OFFERED_PER_S)

        results: dict[str, Any] = {}
        flooder = threading.Thread(
            target=lambda: results.update(
                reads=flood(url, risk, rate_per_s=offered_per_s, seconds=3.0, connections=256)
            )
        )
        flooder.start()
        time.sleep(0.5)
        loaded = ingest(served.url, holder, risk, seconds=3.0)
        flooder.join()
        limited = flood(url, reader, rate_per_s=0, seconds=1.0, connections=2)
        metrics = httpx.get(served.url + "/metrics").text
    finally:
        stop(served)

    assert "reads" in results, "the flood process failed (see the thread's exception above)"
    reads = results["reads"]
    statuses = reads["statuses"]
    report = {
        "capacity_reads_per_s": round(capacity_per_s),
        "offered_reads_per_s": round(offered_per_s),
        "flood_statuses": statuses,
        "flood_not_sent": reads["not_sent"],
        "refused_p50_ms": reads["p50_ms"].get("503"),
        "served_p50_ms": reads["p50_ms"].get("200"),
        "ack_p99_ms": {"baseline": p99(baseline["ack_ms"]), "flooded": p99(loaded["ack_ms"])},
        "cycle_p99_ms": {"baseline": p99(baseline["cycle_ms"]), "flooded": p99(loaded["cycle_ms"])},
        "holder_flood_statuses": limited["statuses"],
    }
    print(json.dumps(report))
    # Every request answered: served, refused at once with 503, or refused at the socket (a
    # connection the kernel reset at its full accept queue, or a client on a starved machine that
    # could not connect: seen from once in ~2,800 on an idle CI run to most of the flood when the
    # test shares 2 cores with another test process). Never a timeout: nothing is queued silently
    # past the client's 20 s. Most of the flood reaches the app (the 503s below are its own).
    report["flood_errors"] = reads["error_kinds"]
    timeouts = sum(n for kind, n in reads["error_kinds"].items() if "Timeout" in kind)
    socket_level = {
        "ConnectionResetError",
        "ConnectionRefusedError",
        "BrokenPipeError",
        "IncompleteReadError",
    }
    assert timeouts == 0 and set(reads["error_kinds"]) <= socket_level, report
    assert sum(statuses.values()) > 0, report
    assert set(statuses) <= {"200", "503"}, report
    assert statuses.get("503", 0) > 0, report  # the excess is refused
    # Refused, not queued behind the work: once the app sees a request it refuses it without
    # waiting for a slot, so the app's time for a refusal (route "unmatched": refused before
    # routing) is below its time for a served read. (Client-side latencies above also hold the
    # time a request waited for the event loop at all, which on a starved machine dominates.)
    refused_s = server_median_s(metrics, "unmatched")
    served_s = server_median_s(metrics, "/v1/accounts/{account}")
    report["app_time_median_ms"] = {"refused": refused_s * 1e3, "served": served_s * 1e3}
    assert refused_s <= served_s, report
    # Over one holder key's rate limit: 429 (and nothing else wrong).
    assert limited["errors"] == 0 and limited["statuses"].get("429", 0) > 0, report
    assert set(limited["statuses"]) <= {"200", "429", "503"}, report
    # Ingestion and the margin cycle keep their aims (relative to this run's baseline).
    assert p99(loaded["ack_ms"]) <= max(5 * p99(baseline["ack_ms"]), ACK_AIM_MS), report
    assert p99(loaded["cycle_ms"]) <= max(5 * p99(baseline["cycle_ms"]), CYCLE_AIM_MS), report
