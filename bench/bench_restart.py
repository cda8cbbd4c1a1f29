"""What a venue's restart costs as its log grows: `Venue.open` verifying the whole hash chain
("full", the default) against verifying only the records after the newest trusted snapshot
("since_snapshot": the records before it by their idempotency keys only, then audited by a
background thread), on the same SQLite log (WAL, synchronous=FULL).

    python bench/bench_restart.py [--events 300000] [--snapshot-at 0.9] [--rounds 2]

The log: the bundled desk book's venue, --events deposits one per call (128 in flight,
bench_service's durable run), one snapshot written once --snapshot-at of them are in (so
"since_snapshot" folds the rest). Each round opens the log in both modes, the order reversed
in the second; an open is timed to its return (serving), and for "since_snapshot" the audit of
the records before the snapshot is timed to its end. The baseline is "full" in the same run.
Then what the audit costs the commands served meanwhile: --serve-events deposits one per call
(128 in flight) right after each kind of open, the audit running through them after
"since_snapshot", nothing after "full" (events/s and ack p99 each; in a copy of the log each,
so both start from the same one).

The last line is one JSON object: cpu, events, snapshot_sequence, and per mode the open's
seconds (best over rounds) and microseconds per record of the log; audit_seconds;
speedup (full over since_snapshot); serving: per mode events_per_s and ack_p99_ms.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_engine import cpu_model
from bench_service import BOOK, durable_run
from crossmargin.adapters.clock import SystemClock
from crossmargin.adapters.sql import SqlEventStore
from crossmargin.adapters.sql.runner import genesis_of_book
from crossmargin.engine.venue import Deposit, Genesis, Venue, VenueSettings

MODES = ("full", "since_snapshot")


def written_log(url: str, genesis: Genesis, events: int, snapshot_at: float) -> int:
    """The log of `events` deposits with one snapshot after `snapshot_at` of them; its sequence.
    (durable_run's venues write none; one opened with a snapshot due at every record writes one
    of the state before its first command.)"""
    before = int(events * snapshot_at)
    durable_run(url, None, genesis, n=before, in_flight=128, kind="deposit", callback=True)
    store = SqlEventStore.connect(url)
    settings = VenueSettings(snapshot_every=1, snapshot_busy_limit=None)
    with Venue.open(store, genesis, clock=SystemClock(), settings=settings) as venue:
        sequence = venue.last_sequence
        account = venue.accounts()[0]
        venue.execute(
            Deposit(idempotency_key="bench-restart-snapshot", account=account, asset="USDC", amount_units=1)
        )
    durable_run(url, None, genesis, n=events - before - 1, in_flight=128, kind="deposit", callback=True)
    return sequence


def timed_open(url: str, genesis: Genesis, mode: str) -> dict[str, Any]:
    started = time.perf_counter()
    store = SqlEventStore.connect(url)
    venue = Venue.open(store, genesis, clock=SystemClock(), settings=VenueSettings(verify_on_start=mode))
    opened = time.perf_counter() - started
    audit = venue.log_audit(timeout_s=None)
    audited = time.perf_counter() - started - opened
    report = {
        "seconds": opened,
        "snapshot_sequence": venue.recovery.snapshot_sequence,
        "records_replayed": venue.recovery.records_replayed,
        "last_sequence": venue.last_sequence,
        "audit": audit.status,
        "audit_seconds": audited if audit.status != "not_needed" else 0.0,
    }
    venue.close()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--snapshot-at", type=float, default=0.9)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--serve-events", type=int, default=100_000)
    args = parser.parse_args(argv)
    genesis = genesis_of_book(BOOK)
    print(f"crossmargin bench_restart: CPU {cpu_model()}")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'restart.db'}"
        snapshot = written_log(url, genesis, args.events, args.snapshot_at)
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
        for round_ in range(args.rounds):
            for mode in MODES if round_ % 2 == 0 else MODES[::-1]:
                run = timed_open(url, genesis, mode)
                runs[mode].append(run)
                print(
                    f"  {mode:>15}: open {run['seconds']:6.2f} s (snapshot {run['snapshot_sequence']}, "
                    f"{run['records_replayed']:,} records folded; log {run['last_sequence']:,}); "
                    f"audit {run['audit']} in {run['audit_seconds']:.2f} s more"
                )
        serving = {}
        for mode in MODES:
            copy = Path(tmp) / f"serve-{mode}.db"
            shutil.copyfile(Path(tmp) / "restart.db", copy)
            settings = VenueSettings(verify_on_start=mode, snapshot_every=10**9)
            run = durable_run(
                f"sqlite:///{copy}",
                None,
                genesis,
                n=args.serve_events,
                in_flight=128,
                kind="deposit",
                callback=True,
                settings=settings,
            )
            serving[mode] = {"events_per_s": run["events_per_s"], "ack_p99_ms": run["ack_p99_ms"]}
            print(
                f"  served right after a {mode} open: {run['events_per_s']:,.0f} deposits/s, "
                f"ack p99 {run['ack_p99_ms']:.1f} ms"
            )
    best = {mode: min(r["seconds"] for r in runs[mode]) for mode in MODES}
    records = runs["full"][0]["last_sequence"]
    result = {
        "bench": "restart",
        "cpu": cpu_model(),
        "events": args.events,
        "log_records": records,
        "snapshot_sequence": snapshot,
        **{f"{mode}_seconds": best[mode] for mode in MODES},
        **{f"{mode}_us_per_record": best[mode] / records * 1e6 for mode in MODES},
        "audit_seconds": min(r["audit_seconds"] for r in runs["since_snapshot"]),
        "speedup": best["full"] / best["since_snapshot"],
        "serving": serving,
    }
    print(
        f"open of a {records:,}-record log: full {best['full']:.2f} s, since_snapshot "
        f"{best['since_snapshot']:.2f} s (x{result['speedup']:.1f}); the audit after it "
        f"{result['audit_seconds']:.2f} s"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
