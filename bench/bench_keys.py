"""What the shape of the idempotency keys costs the durable venue: deposits one per call with
keys from a counter (what bench_service sends, and close to what `crossmargin serve` draws for a
command sent without an Idempotency-Key: a per-process prefix and a counter), random UUIDs
(version 4: what clients usually send) and time-ordered UUIDs (version 7 layout: a millisecond
timestamp, then random bits), on SQLite and on PostgreSQL.

    python bench/bench_keys.py [--events 300000] [--in-flight 128] [--pg URL]

Every key is indexed (the idempotency check's last word, and how a key that memory and the key
filter let go is found). PostgreSQL keeps a unique B-tree: a random key lands on a random leaf,
but its WAL logs the tuple, and a page whole only the first time after its own checkpoint. On
SQLite such an index cost a random leaf a key, each dirty page written whole to the WAL at every
commit (~128 pages a group of 128): random keys halved the durable rate. Since migration 0004 its
keys are kept in sorted runs beside the log, written behind the committer
(`adapters/sql/key_index.py`), and the key shape should no longer matter; this bench is the check.
Each run: a fresh database (SQLite WAL synchronous=FULL in a
temporary directory; PostgreSQL in a schema of its own), examples/desk.yaml's venue, the keys
drawn before the timed loop. Reported: events/s, ack p50/p99 and the longest, the committer's
CPU per event (the database's own work on SQLite runs there, in-process), the SQLite file's size.

The last line is one JSON object: per backend and key kind events_per_s, ack_p99_ms, ack_max_ms,
cpu_us_committer; uuid4_rate_vs_counter per backend.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_engine import cpu_model
from bench_service import BOOK, add_pg_argument, drop_schema, durable_run
from crossmargin.adapters.sql.runner import genesis_of_book
from crossmargin.engine.venue.commands import Deposit


def counter_keys(n: int) -> list[str]:
    run = uuid.uuid4().hex[:8]
    return [f"{run}-{i}" for i in range(n)]


def uuid4_keys(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def uuid7_keys(n: int, rate_per_s: float = 40_000.0) -> list[str]:
    """Version-7 layout (RFC 9562, section 5.7): 48 bits of Unix milliseconds, then random bits,
    the clock advancing as at `rate_per_s` commands a second."""
    start_ms = int(time.time() * 1000)
    keys = []
    for i in range(n):
        ms = start_ms + int(i * 1000 / rate_per_s)
        value = (ms << 80) | (7 << 76) | int.from_bytes(os.urandom(10), "big") & ((1 << 76) - 1)
        keys.append(str(uuid.UUID(int=value & ((1 << 128) - 1))))
    return keys


KINDS = {"counter": counter_keys, "uuid4": uuid4_keys, "uuid7": uuid7_keys}


def keyed_run(url: str, schema: str | None, keys: list[str], in_flight: int) -> dict[str, Any]:
    """bench_service's durable run (one deposit per call, acknowledged by callback after its
    commit) with these keys in this order."""

    def deposit(_run: str, i: int, _kind: str) -> Deposit:
        return Deposit(idempotency_key=keys[i], account="basis-trader", asset="USDC", amount_units=1 + i % 97)

    genesis = genesis_of_book(BOOK)
    return durable_run(
        url, schema, genesis, n=len(keys), in_flight=in_flight, kind="deposit", callback=True, command=deposit
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--in-flight", type=int, default=128)
    add_pg_argument(parser)
    args = parser.parse_args(argv)
    print(
        f"crossmargin bench_keys: CPU {cpu_model()}, load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    results: dict[str, dict[str, Any]] = {"sqlite": {}, "postgresql": {}}
    for kind, draw in KINDS.items():
        for backend in results:
            keys = draw(args.events)
            with tempfile.TemporaryDirectory() as tmp:
                schema = f"bench_{uuid.uuid4().hex[:10]}" if backend == "postgresql" else None
                url = f"sqlite:///{Path(tmp) / 'keys.db'}" if backend == "sqlite" else args.pg
                try:
                    run = keyed_run(url, schema, keys, args.in_flight)
                    size = os.path.getsize(Path(tmp) / "keys.db") if backend == "sqlite" else 0
                finally:
                    if schema is not None:
                        drop_schema(url, schema)
            results[backend][kind] = {
                key: run[key]
                for key in ("events_per_s", "ack_p50_ms", "ack_p99_ms", "ack_max_ms", "cpu_us_committer")
            } | ({"db_mb": size / 1e6} if size else {})
            r = results[backend][kind]
            print(
                f"{backend:>10} {kind:>7} keys: {r['events_per_s']:9,.0f} deposits/s, ack p50 {r['ack_p50_ms']:.2f} "
                f"p99 {r['ack_p99_ms']:.2f} max {r['ack_max_ms']:.1f} ms, committer {r['cpu_us_committer']:.1f} us "
                f"an event" + (f", database {r['db_mb']:.0f} MB" if "db_mb" in r else "")
            )
    summary: dict[str, Any] = {
        "benchmark": "idempotency_keys",
        "cpu": cpu_model(),
        "events": args.events,
        **results,
    }
    for backend, runs in results.items():
        summary[f"{backend}_uuid4_rate_vs_counter"] = (
            runs["uuid4"]["events_per_s"] / runs["counter"]["events_per_s"]
        )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
