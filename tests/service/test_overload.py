"""Overload (issue 16): flooding a read endpoint at 10x its capacity gets the excess refused at once
(503 from admission, 429 over a holder key's rate limit), never queued, while deposits and ticks
go on being acknowledged. The scenario is tests/service/overload.py; this test asserts what
holds on any machine (counts and statuses); bench/bench_overload.py reports the timing (ack and
margin-cycle p99 under the flood against the same run's baseline, against the issue's aims)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.service.overload import run_overload

# Refused at the socket (a connection the kernel reset at its full accept queue, or a client on a
# starved machine that could not connect: seen from once in ~2,800 on an idle CI run to most of
# the flood when the test shares 2 cores with another test process); never a timeout.
SOCKET_LEVEL = {"ConnectionResetError", "ConnectionRefusedError", "BrokenPipeError", "IncompleteReadError"}


def test_overload_read_flood_is_refused_not_queued_and_ingestion_goes_on(tmp_path: Path) -> None:
    report = run_overload(tmp_path)
    print(json.dumps({k: v for k, v in report.items() if k not in ("ack_ms", "cycle_ms")}))
    statuses, errors = report["flood_statuses"], report["flood_errors"]
    # Every request answered: served or refused at once. A timeout would mean the server queued
    # a request past the client's 20 s, which is what admission control exists to prevent.
    assert not any("Timeout" in kind for kind in errors), report
    assert set(errors) <= SOCKET_LEVEL, report
    assert set(statuses) <= {"200", "503"}, report
    assert sum(statuses.values()) > 0, report  # the flood reached the app
    assert statuses.get("503", 0) > 0, report  # and its excess was refused
    # Ingestion went on under the flood: deposits acknowledged (201, asserted in ingest) and
    # every tick's margin cycle ran.
    assert len(report["ack_ms"]["flooded"]) > 0 and len(report["cycle_ms"]["flooded"]) > 0, report
    # Over one holder key's rate limit: 429, and nothing else wrong.
    holder = report["holder_flood"]
    assert holder["errors"] == 0 and holder["statuses"].get("429", 0) > 0, report
    assert set(holder["statuses"]) <= {"200", "429", "503"}, report
