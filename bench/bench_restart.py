"""What a venue's restart costs as its log grows: `Venue.open` verifying the whole hash chain
("full", the default) against verifying only the records after the newest trusted snapshot
("since_snapshot": the key filter the snapshot carries restored, the keys written after it read,
the records before it audited by a background thread), on the same SQLite log (WAL,
synchronous=FULL).

    python bench/bench_restart.py [--events 300000] [--snapshot-at 0.9] [--rounds 2]

The log: the bundled desk book's venue, --events deposits one per call (128 in flight,
bench_service's durable run); the venue serving the first --snapshot-at of them writes one
snapshot at their end, as a long-running venue does (its filter then holds every key but the
100,000-200,000 its memory keeps, `VenueSettings.recent_keys`), so "since_snapshot" folds the
rest. Each round opens the log in each mode, the order reversed in the second; an open is timed
to its return (serving), and for "since_snapshot" the audit of the records before the snapshot
is timed to its end. Baselines in the same run: "full", and "since_snapshot" on a copy of the
log whose snapshot carries no key filter (as before snapshots carried one: every key before it
read). Then what the audit costs the commands served meanwhile: --serve-events deposits one per
call (128 in flight) right after each kind of open, the audit running through them after
"since_snapshot", nothing after "full" (events/s and ack p99 each; in a copy of the log each,
so both start from the same one).

The last line is one JSON object: cpu, events, snapshot_sequence, and per mode the open's
seconds (best over rounds), microseconds per record of the log and keys read; audit_seconds;
speedup (full over since_snapshot); first_lookup_ms and next_lookup_ms after a since_snapshot
open (the first waits for SQLite's side key index to check its runs); serving: per mode
events_per_s and ack_p99_ms.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_engine import cpu_model
from bench_service import BOOK, durable_run
from crossmargin.adapters.clock import SystemClock
from crossmargin.adapters.sql import SqlEventStore
from crossmargin.adapters.sql.runner import genesis_of_book
from crossmargin.engine.journal import Snapshot, canonical_json
from crossmargin.engine.venue import Genesis, Venue, VenueSettings
from crossmargin.engine.venue.key_filter import key_hashes

MODES = ("full", "since_snapshot")
NO_FILTER = "since_snapshot_no_filter"  # since_snapshot on the copy whose snapshot carries no key filter


def written_log(url: str, genesis: Genesis, events: int, snapshot_at: float) -> int:
    """The log of `events` deposits with one snapshot after about `snapshot_at` of them, written
    by the venue that served them; its sequence."""
    before = int(events * snapshot_at)
    settings = VenueSettings(snapshot_every=before, snapshot_busy_limit=None)
    durable_run(
        url, None, genesis, n=before + 1_000, in_flight=128, kind="deposit", callback=True, settings=settings
    )
    durable_run(url, None, genesis, n=events - before - 1_000, in_flight=128, kind="deposit", callback=True)
    store = SqlEventStore.connect(url)
    (snapshot,) = store.snapshots()
    store.close()
    return snapshot.sequence


def without_key_filter(source: Path, copy: Path) -> None:
    """A copy of the log whose snapshot is stored again without its key filter (a checksum of its
    own): a snapshot as written before they carried one."""
    shutil.copyfile(source, copy)
    store = SqlEventStore.connect(f"sqlite:///{copy}")
    (snapshot,) = store.snapshots()
    document = snapshot.decoded()
    document.pop("key_filter")
    store.save_snapshot(
        Snapshot.of_payload(
            sequence=snapshot.sequence, record_hash=snapshot.record_hash, payload=canonical_json(document)
        )
    )
    store.close()


def key_hash_cost(n: int = 200_000, repeats: int = 5) -> dict[str, float]:
    """ns a key to hash a group of keys into the filter's 64-bit values: XXH3 (stable across
    processes, what the filter uses) against the builtin `hash()` it replaced."""
    keys = [str(uuid.uuid4()) for _ in range(n)]
    for key in keys:
        hash(key)  # as on the writer: a str's hash is computed once (the dict lookups) and cached

    def best(fn: Callable[[], object]) -> float:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        return min(times) / n * 1e9

    builtin = best(lambda: np.fromiter((hash(k) for k in keys), dtype=np.int64, count=n))
    return {"xxh3_ns": best(lambda: key_hashes(keys)), "builtin_ns": builtin}


def timed_open(url: str, genesis: Genesis, mode: str, *, audit: bool = True) -> dict[str, Any]:
    started = time.perf_counter()
    store = SqlEventStore.connect(url)
    venue = Venue.open(store, genesis, clock=SystemClock(), settings=VenueSettings(verify_on_start=mode))
    opened = time.perf_counter() - started
    audit = venue.log_audit(timeout_s=None if audit else 0.0)
    audited = time.perf_counter() - started - opened
    # The first lookup of a key (a retry, or one the key filter cannot rule out) after the open
    # waits for the side key index's check of its runs (adapters/sql/key_index.py); the next not.
    lookups = []
    for _ in range(2):
        looked = time.perf_counter()
        store.find_keys([f"absent-{uuid.uuid4()}"])
        lookups.append((time.perf_counter() - looked) * 1e3)
    report = {
        "seconds": opened,
        "snapshot_sequence": venue.recovery.snapshot_sequence,
        "records_replayed": venue.recovery.records_replayed,
        "last_sequence": venue.last_sequence,
        "audit": audit.status,
        "audit_seconds": audited if audit.status != "not_needed" else 0.0,
        "keys_read": venue.recovery.keys_read,
        "key_filter_through": venue.recovery.key_filter_through,
        "first_lookup_ms": lookups[0],
        "next_lookup_ms": lookups[1],
    }
    venue.close()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--snapshot-at", type=float, default=0.9)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--serve-events", type=int, default=100_000)
    parser.add_argument(
        "--no-audit",
        action="store_true",
        help="close without waiting for the audits (long logs: minutes each)",
    )
    args = parser.parse_args(argv)
    genesis = genesis_of_book(BOOK)
    print(f"crossmargin bench_restart: CPU {cpu_model()}")
    hashing = key_hash_cost()
    print(
        f"  the key filter's hash: XXH3 {hashing['xxh3_ns']:.0f} ns a key against hash() "
        f"{hashing['builtin_ns']:.0f} ns (per process; a str caches it), 200,000 UUID keys, best of 5"
    )
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'restart.db'}"
        snapshot = written_log(url, genesis, args.events, args.snapshot_at)
        without_key_filter(Path(tmp) / "restart.db", Path(tmp) / "no-filter.db")
        urls = {"full": url, "since_snapshot": url, NO_FILTER: f"sqlite:///{Path(tmp) / 'no-filter.db'}"}
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in urls}
        for round_ in range(args.rounds):
            for mode in list(urls) if round_ % 2 == 0 else list(urls)[::-1]:
                verify = "full" if mode == "full" else "since_snapshot"
                run = timed_open(urls[mode], genesis, verify, audit=not args.no_audit)
                runs[mode].append(run)
                print(
                    f"  {mode:>24}: open {run['seconds']:6.2f} s (snapshot {run['snapshot_sequence']}, "
                    f"{run['records_replayed']:,} records folded; log {run['last_sequence']:,}; "
                    f"{run['keys_read']:,} keys read, key filter restored through {run['key_filter_through']:,}); "
                    f"audit {run['audit']} in {run['audit_seconds']:.2f} s more; first lookup "
                    f"{run['first_lookup_ms']:.1f} ms, the next {run['next_lookup_ms']:.2f} ms"
                )
        serving = {}
        for mode in MODES if args.serve_events else ():  # --serve-events 0: not measured
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
    best = {mode: min(r["seconds"] for r in runs[mode]) for mode in runs}
    records = runs["full"][0]["last_sequence"]
    result = {
        "bench": "restart",
        "cpu": cpu_model(),
        "events": args.events,
        "log_records": records,
        "snapshot_sequence": snapshot,
        **{f"{mode}_seconds": best[mode] for mode in runs},
        **{f"{mode}_us_per_record": best[mode] / records * 1e6 for mode in runs},
        **{f"{mode}_keys_read": runs[mode][0]["keys_read"] for mode in runs},
        "key_filter_through": runs["since_snapshot"][0]["key_filter_through"],
        "audit_seconds": None if args.no_audit else min(r["audit_seconds"] for r in runs["since_snapshot"]),
        "speedup": best["full"] / best["since_snapshot"],
        "speedup_key_filter": best[NO_FILTER] / best["since_snapshot"],
        "key_hash_ns": hashing,
        # The first lookup after a since_snapshot open: it waits for the side index's check.
        "first_lookup_ms": min(r["first_lookup_ms"] for r in runs["since_snapshot"]),
        "next_lookup_ms": min(r["next_lookup_ms"] for r in runs["since_snapshot"]),
        "serving": serving,
    }
    print(
        f"open of a {records:,}-record log: full {best['full']:.2f} s, since_snapshot "
        f"{best['since_snapshot']:.2f} s (x{result['speedup']:.1f}; without the snapshot's key filter "
        f"{best[NO_FILTER]:.2f} s, x{result['speedup_key_filter']:.2f}); the audit after it "
        f"{result['audit_seconds'] or 0:.2f} s"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
