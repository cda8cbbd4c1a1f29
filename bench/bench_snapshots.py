"""What the venue's snapshots cost a large venue: deposits one per call on a venue of --accounts
traders, with snapshots off (the baseline), every --every records whatever they cost ("unpaced": the
venue before snapshots were paced), and paced to --limit of the time (`VenueSettings`'s
`snapshot_busy_limit`, what `crossmargin serve` runs), each with every --encoders
(`VenueSettings.snapshot_encoder`: "fork", the default on Linux, or "thread").

    python bench/bench_snapshots.py [--accounts 20000] [--events 300000] [--in-flight 128]
                                    [--every 10000] [--limit 0.02] [--encoders fork thread]

A snapshot is O(state). "thread": the writer copies the state's containers, then the snapshot
thread sorts, encodes and writes it, holding the GIL the writer and the committer need (CPython
hands it over on request only after its 5 ms switch interval). "fork": the writer forks (the
pause is the page tables' copy), a child with a copy-on-write image of the state sorts and
encodes it on the other CPU, and the snapshot thread only reads its bytes from a pipe and
writes them. At a fixed record interval its share of the venue's time grows with the venue;
paced, the next snapshot waits for the last one's cost divided by the limit. The venue is grown
once (`bench_service_stress.grow`: open, fund, one BTC perpetual fill per pair), and each run
starts from a copy of that database (SQLite, WAL, synchronous=FULL): the same state and log.
Deposits go to the traders in turn, W in flight, each acknowledged after its commit
(`Venue.submit_with_callback`). Reported per run: events/s, ack p50/p99/p99.9 and the longest,
snapshots written, the last one's seconds (and the writer's part of them) and the share of the
run they took.

The last line is one JSON object: cpu, accounts, state_mb (the last snapshot's payload), and per
run (off, then unpaced_<encoder> and paced_<encoder>) events_per_s, ack_p50/p99/p999/max_ms,
snapshots, snapshot_seconds, snapshot_writer_ms, snapshot_share; rate_vs_off: each run's
events/s over the run without snapshots.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_engine import cpu_model
from bench_service import BOOK, durable_run
from bench_service_stress import grow
from crossmargin.adapters.clock import SystemClock
from crossmargin.adapters.sql import SqlEventStore
from crossmargin.adapters.sql.runner import genesis_of_book
from crossmargin.engine.venue import Genesis, Venue, VenueSettings
from crossmargin.engine.venue.commands import Deposit
from crossmargin.engine.venue.settings import SNAPSHOT_ENCODERS


def grown_database(directory: Path, genesis: Genesis, accounts: int) -> Path:
    """A log of a venue grown to `accounts` traders (closed: its WAL checkpointed)."""
    path = directory / "grown.db"
    store = SqlEventStore.connect(f"sqlite:///{path}")
    venue = Venue.open(store, genesis, clock=SystemClock(), settings=VenueSettings(snapshot_every=10**9))
    grow(venue, accounts, seed=1)
    venue.close()
    store.close()
    return path


def deposits_run(
    url: str, genesis: Genesis, settings: VenueSettings, *, accounts: int, n: int, in_flight: int
) -> dict[str, Any]:
    """n deposits to the grown venue's traders in turn, `in_flight` of them in flight
    (bench_service's durable run, the venue under `settings`), and the snapshots written."""

    def deposit(run: str, i: int, _kind: str) -> Deposit:
        return Deposit(
            idempotency_key=f"{run}-{i}",
            account=f"t{i % accounts:07d}",
            asset="USDC",
            amount_units=1 + i % 97,
        )

    run = durable_run(
        url,
        None,
        genesis,
        n=n,
        in_flight=in_flight,
        kind="deposit",
        callback=True,
        settings=settings,
        command=deposit,
    )
    store = SqlEventStore.connect(url)
    newest = next(store.snapshots(), None)
    store.close()
    return {
        **{
            key: run[key] for key in ("events_per_s", "ack_p50_ms", "ack_p99_ms", "ack_p999_ms", "ack_max_ms")
        },
        "snapshots": int(run["snapshots"]),
        "snapshot_seconds": float(run["snapshot_seconds"]),
        "snapshot_writer_ms": float(run["snapshot_writer_seconds"]) * 1e3,
        "snapshot_share": int(run["snapshots"]) * float(run["snapshot_seconds"]) / run["seconds"],
        "state_mb": len(newest.payload) / 1e6 if newest is not None else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=20_000)
    # 300,000: several of the paced run's pauses (~3 s after a 60 ms snapshot at 2 %), not one.
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--in-flight", type=int, default=128)
    parser.add_argument("--every", type=int, default=10_000, help="records between snapshots (at least)")
    parser.add_argument("--limit", type=float, default=VenueSettings().snapshot_busy_limit)
    parser.add_argument(
        "--encoders", nargs="+", choices=SNAPSHOT_ENCODERS, default=list(SNAPSHOT_ENCODERS), help="snapshot_encoder"
    )
    args = parser.parse_args(argv)
    print(
        f"crossmargin bench_snapshots: CPU {cpu_model()}, load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    genesis = genesis_of_book(BOOK)
    runs = {"off": VenueSettings(snapshot_every=10**9)}
    for encoder in args.encoders:
        for pacing, limit in (("unpaced", None), ("paced", args.limit)):
            runs[f"{pacing}_{encoder}"] = VenueSettings(
                snapshot_every=args.every, snapshot_busy_limit=limit, snapshot_encoder=encoder
            )
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        grown = grown_database(Path(tmp), genesis, args.accounts)
        for name, settings in runs.items():
            copy = Path(tmp) / f"{name}.db"
            shutil.copyfile(grown, copy)  # each run from the same state and log
            results[name] = deposits_run(
                f"sqlite:///{copy}",
                genesis,
                settings,
                accounts=args.accounts,
                n=args.events,
                in_flight=args.in_flight,
            )
            r = results[name]
            print(
                f"{name:>14}: {r['events_per_s']:9,.0f} deposits/s, ack p50 {r['ack_p50_ms']:.2f} p99 "
                f"{r['ack_p99_ms']:.2f} p99.9 {r['ack_p999_ms']:.2f} max {r['ack_max_ms']:.1f} ms; {r['snapshots']} "
                f"snapshots, the last {r['snapshot_seconds'] * 1e3:.0f} ms (the writer's part "
                f"{r['snapshot_writer_ms']:.1f} ms), {r['snapshot_share']:.1%} of the run"
            )
    off = results["off"]
    state_mb = max(r["state_mb"] for r in results.values())
    rate_vs_off = {name: r["events_per_s"] / off["events_per_s"] for name, r in results.items() if name != "off"}
    print(
        f"{args.accounts:,} accounts, a snapshot {state_mb:.1f} MB; the deposits' rate against the run without "
        f"snapshots: " + ", ".join(f"{name} {rate:.0%}" for name, rate in rate_vs_off.items())
    )
    summary = {
        "benchmark": "venue_snapshots",
        "cpu": cpu_model(),
        "accounts": args.accounts,
        "events": args.events,
        "in_flight": args.in_flight,
        "every": args.every,
        "limit": args.limit,
        "state_mb": state_mb,
        **results,
        "rate_vs_off": rate_vs_off,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
