"""How the venue's SQLite store inserts a group: `executemany` (one SQLite step per row, the GIL
released and taken back around each) against multi-row VALUES statements (`store.sqlite_values`,
one step per 64 rows), alone and against one busy Python thread (the venue's writer deciding the
next group while the committer inserts this one: issue 16's pipelined commit).

    python bench/bench_sqlite_insert.py [--rows N] [--group G] [--contended-rows M]

Each run inserts event rows (the venue's nine columns, a 246-byte payload, the unique key index)
and one posting row per event, G per transaction, WAL with synchronous=FULL, on this machine's
disk; it reports the inserting thread's CPU and the wall time per event. The contended runs use
fewer rows (a convoy costs milliseconds a row). Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_engine import cpu_model
from crossmargin.adapters.sql import SqlEventStore
from crossmargin.adapters.sql.store import EVENT_COLUMNS, POSTING_COLUMNS, insert_sql, sqlite_values

Rows = list[tuple[Any, ...]]


def rows_of(n: int) -> tuple[Rows, Rows]:
    now = time.time_ns()
    digest = hashlib.sha256(b"x").hexdigest()
    payload = b"x" * 246  # a lane deposit's payload is ~246 bytes
    tag = os.urandom(4).hex()
    events = [
        (i, f"{tag}-{i}", "deposit", now, digest, payload, digest, digest, None) for i in range(1, n + 1)
    ]
    postings = [(i, 0, "@external", "basis-trader", "USDC", 1 + i % 97, "deposit") for i in range(1, n + 1)]
    return events, postings


def executemany(db: sqlite3.Connection, table: str, columns: tuple[str, ...], rows: Rows) -> None:
    db.executemany(insert_sql(table, columns, "qmark"), rows)


def run(
    insert: Callable[..., None], *, n: int, group: int, contended: bool, directory: str
) -> dict[str, float]:
    """Insert n events (and their postings) in groups; the inserting thread's CPU and wall time
    per event, with or without a Python thread spinning beside it."""
    path = Path(directory) / f"insert-{os.urandom(4).hex()}.db"
    SqlEventStore.connect(f"sqlite:///{path}").close()  # the venue's schema, migrated
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    events, postings = rows_of(n)
    stop = threading.Event()

    def spin() -> None:  # pure Python work, as the writer deciding a group
        x = 0
        while not stop.is_set():
            for _ in range(1000):
                x += 1

    spinner = threading.Thread(target=spin, daemon=True)
    if contended:
        spinner.start()
    cpu0, t0 = time.thread_time(), time.perf_counter()
    for start in range(0, n, group):
        db.execute("BEGIN")
        insert(db, "events", EVENT_COLUMNS, events[start : start + group])
        insert(db, "postings", POSTING_COLUMNS, postings[start : start + group])
        db.execute("COMMIT")
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - t0
    stop.set()
    if contended:
        spinner.join()
    db.close()
    return {"cpu_us_per_event": cpu / n * 1e6, "wall_us_per_event": wall / n * 1e6}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=30_000)
    parser.add_argument("--group", type=int, default=300, help="events per transaction")
    parser.add_argument("--contended-rows", type=int, default=1_200)
    args = parser.parse_args(argv)
    print(f"crossmargin bench_sqlite_insert: CPU {cpu_model()}, SQLite {sqlite3.sqlite_version}")
    results: dict[str, Any] = {"cpu": cpu_model(), "sqlite": sqlite3.sqlite_version, "group": args.group}
    with tempfile.TemporaryDirectory() as tmp:
        for contended in (False, True):
            n = args.contended_rows if contended else args.rows
            for name, insert in (("executemany", executemany), ("values", sqlite_values)):
                r = run(insert, n=n, group=args.group, contended=contended, directory=tmp)
                label = f"{name}_{'contended' if contended else 'alone'}"
                results[label] = r
                print(
                    f"{label:>22}: {n:,} events, {r['cpu_us_per_event']:7.2f} us CPU, "
                    f"{r['wall_us_per_event']:9.2f} us wall per event"
                )
    results["alone_cpu_ratio"] = (
        results["executemany_alone"]["cpu_us_per_event"] / results["values_alone"]["cpu_us_per_event"]
    )
    results["contended_wall_ratio"] = (
        results["executemany_contended"]["wall_us_per_event"]
        / results["values_contended"]["wall_us_per_event"]
    )
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
