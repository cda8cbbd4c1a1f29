"""The margin service's durable core: acknowledged events/s and acknowledgement latency on SQLite
and PostgreSQL (group commit), against the database's own floor in the same run; and price tick →
margin calls out on a 1,000,000-account book.

    python bench/bench_service.py [--events N] [--in-flight W] [--batch-in-flight WB] [--accounts A]
                                  [--batch B] [--http-seconds S] [--pg URL]

  * durable: W clients keep W deposits in flight, one command per call; each is acknowledged only
    after its group's commit (fsync), by a callback (`Venue.submit_with_callback`, as a Kafka
    producer's send(record, callback)), and in a second run by a `concurrent.futures.Future` each
    (`Venue.submit`). Reports events/s and p50/p99 submit → ack latency, and the same at 64, 128,
    256 and 512 in flight (the throughput/latency curve: a command waits ~W / throughput; the
    default W, 128, gives about the events/s of 512 at under half its p99: a group commit takes
    what is in flight, so deeper queues add latency, not throughput, once the GIL is busy). Runs
    at WB in flight (512) send transfers (each margin-checked by the ledger on its two accounts)
    to show that path, and fills of one BTC perpetual contract between the same two (a trade: fees, realised
    PnL, the IM check of whoever grows, the status refresh of both).
  * batch: the same events as lists of B (`Venue.submit_batch`: each its own key and decision,
    the list one commit), WB/B lists in flight; and at the aims' operating point, lists of 50 with
    200 events in flight (Little's law: 50k/s at ~4 ms a command), each event still acknowledged
    only after its list's commit; each backend's line says whether the aims (>= 50,000 events/s
    with ack p99 <= 10 ms, in the same run) are met one command per call and in lists; then over
    HTTP (`bench_service_http.run_backend`: `crossmargin serve` on loopback, one event per request
    from 32 clients beside POST /v1/events/batch of B from 4 clients, with the server's CPU per
    event).
  * sustained: 300,000 deposits one per call (`--sustained-events`) per backend, long enough for
    CPython's cyclic collector to run as it does in a venue that keeps running: ack p50/p99/p99.9
    and the collector's pauses (count, longest, total; every durable run reports them). Then the
    same run under random UUID keys, as clients send them (`random_key_commands`): the other
    runs' `run-i` keys are nearly sorted, which hides what indexing random keys costs a store.
  * floor: the same event rows INSERTed raw (SQLAlchemy Core executemany) 100 per commit into a
    table of the same shape: what the database does without the venue; and
    `python_append_floor`: the least a hash-chained, acknowledged append costs in CPython (the
    venue's record bytes and chain, sqlite3 directly, one callback per event), the bound on any
    design that keeps a Python path per event.
  * tick → calls: `engine.venue.monitor.Monitor` (the long-lived RiskEngine + the vectorised margin-call
    machine) on bench_engine's concentrated 1M-account book (each account on one underlying);
    each tick moves one underlying ±1 %, re-margins its holders, runs the state machine and builds
    the status-change rows the venue logs and streams. p50/p99 over all ticks, beside the
    RiskEngine's `on_tick` alone in the same ticks (the part the state machine adds is the rest).
    Then ticks after account events (a flush of 100 before each), and a busy venue: 1,000 before
    each tick until the folded accounts pass 6 % of the book (`busy_venue_ticks`).

The last line is one JSON object (events_per_s, ack_p50_ms, ack_p99_ms: one command per call by
callback at W in flight; future_events_per_s, future_ack_p99_ms: the same with a Future each;
ack_curve: [in flight, events/s, ack p99 ms] per backend;
deposit_cpu_us_by_thread: the deposits' CPU split by thread, from /proc/self/task;
batch_events_per_s, batch_ack_p99_ms; aim_lists: [events/s, ack p99 ms] of the lists at the aims'
operating point per backend; sustained: the long run per backend; random_keys: it again under
UUID keys, with the committer's and SQLite's key index's CPU an event; aims: each aim met or not; http_* per backend; tick_to_calls_p50_ms,
tick_to_calls_p99_ms, floors, CPU model, load average, and CPU seconds per event and per tick: this
process's CPU time over all its threads, the figure a shared machine does not distort).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import queue
import random
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_cross import build_assets, build_book, build_instruments, build_market
from bench_engine import concentrated, cpu_model, percentile_ms
from crossmargin.adapters.clock import SystemClock
from crossmargin.adapters.sql import SqlEventStore
from crossmargin.adapters.sql.runner import genesis_of_book
from crossmargin.adapters.sql.schema import events
from crossmargin.adapters.sql.store import EVENT_COLUMNS, POSTING_COLUMNS, sqlite_values
from crossmargin.core.instruments import InstrumentTable
from crossmargin.core.liquidation.params import MarginCallParams
from crossmargin.core.pricing import revalue
from crossmargin.engine.journal import record_hash
from crossmargin.engine.risk_engine import MAX_PENDING, PENDING_SHARE, AccountUpdate, PriceTick
from crossmargin.engine.venue import Deposit, Fill, Genesis, Transfer, Venue, VenueSettings
from crossmargin.engine.venue.commands import body_digest
from crossmargin.engine.venue.deposit_lane import deposit_body, deposit_payload
from crossmargin.engine.venue.liquidation_queue import LiquidationQueue
from crossmargin.engine.venue.monitor import LIQUIDATION, Monitor
from crossmargin.service.heap import keep_freed_memory, settle_heap
from machine import compiled_kernels

BOOK = str(Path(__file__).resolve().parents[1] / "examples" / "desk.yaml")


FILL_PRICE_USD = 88_528.93  # examples/desk.yaml's BTC index: fills trade at it


def command_of(
    run: str,
    i: int,
    kind: str,
    pair: tuple[str, str] = ("basis-trader", "vol-seller"),
    price: float = FILL_PRICE_USD,
    key: str | None = None,
) -> Any:
    """The i-th command of a run: a deposit to the pair's first account, or a fill or transfer
    between the two, in turn each way (positions and balances stay bounded); under `key`, or
    `run-i`."""
    key = f"{run}-{i}" if key is None else key
    if kind == "deposit":
        return Deposit(idempotency_key=key, account=pair[0], asset="USDC", amount_units=1 + i % 97)
    a, b = pair if i % 2 else pair[::-1]
    if kind == "fill":  # one BTC perpetual contract, back and forth: positions stay bounded
        return Fill(
            idempotency_key=key,
            taker=a,
            maker=b,
            instrument="BTC-USDC-PERP",
            quantity=1,
            price=price,
        )
    return Transfer(idempotency_key=key, from_account=a, to_account=b, asset="USDC", amount_units=1 + i % 97)


def random_key_commands(n: int, seed: int) -> Callable[[str, int, str], Any]:
    """`command_of` under random version-4 UUID keys, as clients send them (drawn before any
    run: the draw is not the venue's cost). A store's index of random keys pays for their lack
    of order (adapters/sql/key_index.py); `run-i` keys are nearly sorted and hide it."""
    rng = random.Random(seed)
    keys = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]

    def command(run: str, i: int, kind: str) -> Any:
        return command_of(run, i, kind, key=keys[i])

    return command


def thread_cpu_s() -> dict[str, float]:
    """CPU seconds (user + system) of each live thread of this process by name, from
    /proc/self/task (Linux; empty elsewhere): where a durable run's CPU goes (the client
    submitting, the venue's writer deciding and folding, its committer inserting and answering)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    names = {str(t.native_id): t.name for t in threading.enumerate()}
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rpartition(")")[2].split()
        except OSError:  # the thread ended between the listing and the read
            continue
        name = names.get(tid, tid)
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


# In-flight depths of the throughput/latency curve (one command each, by callback): at W in
# flight a command waits for about W / throughput (Little's law), so p99 <= 10 ms at 50k/s
# needs W well under 500.
CURVE_IN_FLIGHT = (64, 128, 256, 512)
# The aims: >= 50,000 durable events/s with ack p99 <= 10 ms; tick -> calls p99 <= 100 ms.
AIM_EVENTS_PER_S, AIM_ACK_P99_MS, AIM_TICK_P99_MS = 50_000, 10.0, 100.0
# Lists at the aims' operating point: by Little's law 50k/s at ~4 ms a command is ~200 in flight;
# lists of 50 keep four of them in flight (one deciding, one committing, two queued).
AIM_IN_FLIGHT, AIM_BATCH = 200, 50
BUSY_EVENTS_PER_TICK = 1_000  # account events between ticks on a busy venue (`busy_venue_ticks`)


class CollectorPauses:
    """The cyclic collector's pauses while it is entered (gc.callbacks): how many, the longest and
    their sum, ms. A pause stops every thread (it holds the GIL), so each one delays every
    command in flight: the tail of a long run's latency."""

    def __init__(self) -> None:
        self.pauses_ms: list[float] = []
        self._started = 0.0

    def _observe(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses_ms.append((time.perf_counter() - self._started) * 1e3)

    def __enter__(self) -> CollectorPauses:
        gc.callbacks.append(self._observe)
        return self

    def __exit__(self, *_: object) -> None:
        gc.callbacks.remove(self._observe)

    def summary(self) -> dict[str, float]:
        p = self.pauses_ms
        return {"gc_pauses": len(p), "gc_pause_max_ms": max(p, default=0.0), "gc_pause_total_ms": sum(p)}


def in_flight_slots(n: int) -> queue.SimpleQueue[None]:
    """`n` tokens: a client takes one (`get`, waiting while none is left) per command or list it
    sends and puts it back when answered. C-level, so the client's own bookkeeping costs ~0.3 us
    an event instead of a threading.Semaphore's ~1.6 (a Python condition, acquire and release)."""
    slots: queue.SimpleQueue[None] = queue.SimpleQueue()
    for _ in range(n):
        slots.put(None)
    return slots


def durable_run(
    url: str,
    schema: str | None,
    genesis: Genesis,
    *,
    n: int,
    in_flight: int,
    kind: str,
    batch: int = 1,
    callback: bool = False,
    settle: bool = True,
    settings: VenueSettings | None = None,
    command: Callable[[str, int, str], Any] = command_of,
) -> dict[str, Any]:
    """`n` commands, `in_flight` of them in flight: one `Venue.submit` each (batch 1; with
    `callback`, `Venue.submit_with_callback`: no future, the answer handed to a function), or
    `Venue.submit_batch` of `batch` (one group commit and one future per list; in flight:
    in_flight // batch lists). Each event's latency is submit → its ack (a batch's events share its latency).
    `settle`: the collector policy `crossmargin serve` runs under (service/heap.py); False
    measures CPython's default thresholds (`--default-gc`). `settings`: the venue's (default:
    snapshots off); `command(run, i, kind)`: the i-th command (default `command_of`)."""
    store = SqlEventStore.connect(url, schema=schema)
    settings = settings if settings is not None else VenueSettings(snapshot_every=10**9)
    venue = Venue.open(store, genesis, clock=SystemClock(), settings=settings)
    if settle:  # as `crossmargin serve` does once the venue is open (service/heap.py)
        settle_heap()
    slots = in_flight_slots(max(in_flight // batch, 1))
    latency = np.zeros(n)
    done = threading.Event()
    answered = itertools.count(1)  # next() is atomic in CPython: no lock on the writer's thread
    errors: list[BaseException] = []

    def told(i: int, started: float, answer: Any) -> None:
        # One command's answer (its callback, or its future's done-callback), on the venue's
        # committer thread, as the floor's: the least a client can do there (stamp, count, free
        # its slot).
        latency[i] = time.perf_counter() - started
        if isinstance(answer, BaseException):
            errors.append(answer)
        slots.put(None)
        if next(answered) == n:
            done.set()

    def batch_finished(first: int, started: float, future: Any) -> None:
        # A list's commands share its latency; a refused one is reported as a failed command.
        answers = future.result()
        latency[first : first + len(answers)] = time.perf_counter() - started
        errors.extend(a for a in answers if isinstance(a, BaseException))
        slots.put(None)
        for _ in answers:
            if next(answered) == n:
                done.set()

    run = uuid.uuid4().hex[:8]
    threads0 = thread_cpu_s()
    with CollectorPauses() as pauses:
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        for first in range(0, n, batch):
            commands = [command(run, i, kind) for i in range(first, min(first + batch, n))]
            slots.get()
            started = time.perf_counter()
            if batch > 1:  # one future for the list (Venue.submit_batch), as POST /v1/events/batch
                listed = venue.submit_batch(commands)
                listed.add_done_callback(lambda f, i=first, s=started: batch_finished(i, s, f))
                continue
            if callback:
                venue.submit_with_callback(commands[0], lambda a, i=first, s=started: told(i, s, a))
                continue
            future = venue.submit(commands[0])
            future.add_done_callback(lambda f, i=first, s=started: told(i, s, f.exception() or f.result()))
        done.wait()
        elapsed = time.perf_counter() - t0
        cpu_s = time.process_time() - cpu0  # every thread of this process: the machine is shared
    threads = thread_cpu_s()  # before close: the venue's threads end with it
    stats = venue.stats()
    venue.close()
    if errors:
        raise SystemExit(f"{len(errors)} commands failed, first: {errors[0]!r}")
    return {
        "events": n,
        "in_flight": in_flight,
        "events_per_s": n / elapsed,
        "ack_p50_ms": percentile_ms(latency.tolist(), 50),
        "ack_p99_ms": percentile_ms(latency.tolist(), 99),
        "ack_p999_ms": percentile_ms(latency.tolist(), 99.9),
        # The longest: a writer stall (a whole flight waiting) shows here before any percentile.
        "ack_max_ms": float(latency.max()) * 1e3,
        **pauses.summary(),
        "cpu_ms_per_event": cpu_s / n * 1e3,
        # The same CPU by thread (µs an event): the client's submits, the writer, the committer.
        **{
            f"cpu_us_{role}": (threads.get(name, 0.0) - threads0.get(name, 0.0)) / n * 1e6
            for role, name in (
                ("client", "MainThread"),
                ("writer", "venue-writer"),
                ("committer", "venue-committer"),
                ("key_index", "venue-key-index"),  # SQLite's side index of the keys (adapters.sql.key_index)
            )
        },
        "commits": stats["batches"],
        "events_per_commit": stats["records"] / max(stats["batches"], 1),
        "lane_deposits": stats["lane_deposits"],  # deposits written by the lane (engine.venue.deposit_lane)
        "seconds": elapsed,
        "snapshots": stats["snapshots"],
        "snapshot_seconds": stats["snapshot_seconds"],  # the last one's
        "snapshot_writer_seconds": stats["snapshot_writer_seconds"],  # the last one's pause of the writer
    }


def met(run: dict[str, Any]) -> bool:
    """The throughput aim and the latency aim, together, in one run."""
    return bool(run["events_per_s"] >= AIM_EVENTS_PER_S and run["ack_p99_ms"] <= AIM_ACK_P99_MS)


def word(ok: bool) -> str:
    return "met" if ok else "MISSED"


def python_append_floor(directory: str, *, n: int, in_flight: int) -> dict[str, Any]:
    """The least a durable, hash-chained, acknowledged append costs in CPython on this machine:
    deposits written as the venue writes them (its deposit lane's body and payload bytes and
    `journal.record_hash`, held equal to the generic encoding by tests/engine/venue/test_deposit_lane.py;
    an event and a posting row each, one SQLite WAL synchronous=FULL commit per group, a callback
    called per event after its commit (the least `Venue.submit_with_callback` does; a
    concurrent.futures.Future costs ~3.5 us more), `in_flight` submitters' worth of slots, C-level
    queues as the venue's), with nothing else: no
    command objects, no idempotency lookup, no generic fold, no stream, no monitor. Its events/s
    is what any design that keeps one Python object path per event can reach here; the venue's
    figure beside it says how much of the gap is the venue's own bookkeeping. sqlite3 directly
    (no SQLAlchemy) with the venue store's multi-row INSERTs, the collector frozen as serve runs."""
    import sqlite3

    settle_heap()
    db = sqlite3.connect(str(Path(directory) / "floor.db"), check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(
        "CREATE TABLE events (sequence INTEGER PRIMARY KEY, idempotency_key TEXT UNIQUE, kind TEXT,"
        " as_of_ns INTEGER, body_sha256 TEXT, payload BLOB, previous_hash TEXT, record_hash TEXT)"
    )
    db.execute(
        "CREATE TABLE postings (sequence INTEGER, idx INTEGER, debit_account TEXT, credit_account TEXT, asset TEXT,"
        " amount_units INTEGER, kind TEXT)"
    )
    inbox: queue.SimpleQueue[tuple[str, str, str, int, Callable[[int], None]]] = queue.SimpleQueue()
    balances: dict[tuple[str, str], int] = {}

    def write() -> None:
        sequence, head, written = 0, "0" * 64, 0
        while written < n:
            group = [inbox.get()]
            while len(group) < 1024 and not inbox.empty():
                group.append(inbox.get_nowait())
            rows, postings = [], []
            now = time.time_ns()
            for key, account, asset, units, _ in group:
                # The venue's own byte and hash functions (its deposit lane's), nothing around them.
                body = deposit_body(account, asset, units)
                payload = deposit_payload(body, account, asset, units, now)
                body_sha = body_digest("deposit", body)
                sequence += 1
                chained = record_hash(
                    previous_hash=head,
                    sequence=sequence,
                    idempotency_key=key,
                    kind="deposit",
                    as_of_ns=now,
                    body_sha256=body_sha,
                    payload=payload,
                )
                rows.append((sequence, key, "deposit", now, body_sha, payload, head, chained))
                postings.append((sequence, 0, "@external", account, asset, units, "deposit"))
                head = chained
                balances[(account, asset)] = balances.get((account, asset), 0) + units
            db.execute("BEGIN")  # the venue's own multi-row INSERTs (store.sqlite_values)
            sqlite_values(db, "events", EVENT_COLUMNS[:8], rows)  # the venue's columns, no actor
            sqlite_values(db, "postings", POSTING_COLUMNS, postings)
            db.execute("COMMIT")
            for (*_, told), row in zip(group, rows, strict=True):
                told(row[0])
            written += len(group)

    writer = threading.Thread(target=write)
    slots = in_flight_slots(in_flight)
    run = uuid.uuid4().hex[:8]
    writer.start()
    t0, cpu0 = time.perf_counter(), time.process_time()
    for i in range(n):
        slots.get()
        inbox.put((f"{run}-{i}", "basis-trader", "USDC", 1 + i % 97, lambda _: slots.put(None)))
    writer.join()
    elapsed = time.perf_counter() - t0
    cpu_s = time.process_time() - cpu0
    db.close()
    return {"events_per_s": n / elapsed, "cpu_ms_per_event": cpu_s / n * 1e3, "in_flight": in_flight}


def floor_run(url: str, schema: str | None, *, per_commit: int) -> dict[str, Any]:
    """The rows the venue wrote, INSERTed raw into a same-shaped table, `per_commit` per commit."""
    store = SqlEventStore.connect(url, schema=schema)
    with store.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(events.select().order_by(events.c.sequence))]
    floor = events.to_metadata(sa.MetaData(), name="floor_events")
    floor.create(store.engine, checkfirst=True)
    for r in rows:
        r["idempotency_key"] = None if r["idempotency_key"] is None else "f" + r["idempotency_key"]
    t0 = time.perf_counter()
    for start in range(0, len(rows), per_commit):
        with store.engine.begin() as conn:
            conn.execute(floor.insert(), rows[start : start + per_commit])
    elapsed = time.perf_counter() - t0
    store.close()
    return {"rows": len(rows), "rows_per_s": len(rows) / elapsed, "per_commit": per_commit}


def tick_to_calls(accounts: int, ticks: int, seed: int, *, settle: bool = True) -> dict[str, Any]:
    """Price ticks on the monitor of a 1M-account book (module docstring). `settle`: the
    collector policy `crossmargin serve` applies once its venue is open and warmed, monitor
    included (`Venue.warm_up`, then service/heap.py); without it the monitor's million-entry
    containers sit in the collected generations and a full collection can land in a tick: tick
    p99 52 / 139 / 72 ms in three runs in one process, 47 / 51 / 48 ms with it (Intel Xeon, family
    6 model 167). It also sets serve's allocator policy (`keep_freed_memory`), without which one
    fold of the engine's pending account events in three or four waited 350-590 ms for fresh pages
    (AMD Zen 5)."""
    if settle:  # as `crossmargin serve` does before its venue's arrays exist (service/heap.py)
        keep_freed_memory()
    rng = np.random.default_rng(seed)
    instruments, vols = build_instruments(rng)
    table = InstrumentTable.from_instruments(instruments)
    market = build_market(table, vols)
    book = concentrated(build_book(rng, accounts, build_assets(), table, revalue(table, market)))
    t0 = time.perf_counter()
    monitor = Monitor(book, market)
    built_s = time.perf_counter() - t0
    params = MarginCallParams()
    first = monitor.evaluate(np.arange(book.n_accounts, dtype=np.int64), now_ns=0, params=params)
    monitor.apply(first)
    monitor.warm_up()  # as `Venue.warm_up` does before `crossmargin serve` reports ready
    if settle:  # as `crossmargin serve` does once its venue (and so its monitor) is open
        settle_heap()
    samples: list[float] = []
    cpu: list[float] = []
    engine_only: list[float] = []
    touched: list[int] = []
    calls = 0
    prices = dict(zip(market.underlyings, market.index_price_usd.tolist(), strict=True))
    now = 0
    for n in range(ticks):
        underlying = market.underlyings[n % len(market.underlyings)]
        prices[underlying] *= 0.99 if (n // len(market.underlyings)) % 2 == 0 else 1.0 / 0.99
        now += 1_000_000
        t0 = time.perf_counter()
        c0 = time.process_time()
        remargin = monitor.engine.on_tick(PriceTick(prices_usd={underlying: prices[underlying]}))
        t_engine = time.perf_counter()
        changes = monitor.evaluate(remargin.account_rows, now_ns=now, params=params)
        monitor.apply(changes)
        out = [
            [monitor.account_ids[r], s, d]
            for r, s, d in zip(
                changes.rows.tolist(), changes.status.tolist(), changes.deadline_ns.tolist(), strict=True
            )
        ]
        samples.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        engine_only.append(t_engine - t0)
        touched.append(int(remargin.account_rows.size))
        calls += len(out)
    # A venue opens accounts between ticks and grows the monitor by them at the next tick
    # (`Venue._add_opened`): the same ticks again, each after 10 sign-ups, growth included.
    after_signups: list[float] = []
    growth: list[float] = []
    for n in range(ticks):
        underlying = market.underlyings[n % len(market.underlyings)]
        prices[underlying] *= 0.99 if (n // len(market.underlyings)) % 2 == 0 else 1.0 / 0.99
        now += 1_000_000
        t0 = time.perf_counter()
        monitor.add_accounts([f"signup-{n}-{k}" for k in range(10)])
        t_grown = time.perf_counter()
        changes = monitor.on_tick(
            PriceTick(prices_usd={underlying: prices[underlying]}), now_ns=now, params=params
        )
        monitor.apply(changes)
        after_signups.append(time.perf_counter() - t0)
        growth.append(t_grown - t0)
    events = ticks_after_account_events(monitor, market, prices, now, ticks=ticks, per_tick=100, seed=seed)
    busy = busy_venue_ticks(monitor, market, prices, now + 10**9, seed=seed)
    picks = liquidation_picks(monitor, in_liquidation=accounts // 10, picks=200, seed=seed)
    return {
        **events,
        **busy,
        "accounts": accounts,
        "ticks": ticks,
        "status_changes": calls,
        **picks,
        "tick_after_signups_p50_ms": percentile_ms(after_signups, 50),
        "tick_after_signups_p99_ms": percentile_ms(after_signups, 99),
        "signup_growth_p50_ms": percentile_ms(growth, 50),
        "monitor_built_s": built_s,
        "tick_to_calls_p50_ms": percentile_ms(samples, 50),
        "tick_to_calls_p99_ms": percentile_ms(samples, 99),
        "tick_cpu_p50_ms": percentile_ms(cpu, 50),
        "tick_cpu_p99_ms": percentile_ms(cpu, 99),
        "engine_on_tick_p50_ms": percentile_ms(engine_only, 50),
        "engine_on_tick_p99_ms": percentile_ms(engine_only, 99),
        "accounts_remargined_median": float(np.median(touched)),
    }


def ticks_after_account_events(
    monitor: Monitor,
    market: Any,
    prices: dict[str, float],
    now: int,
    *,
    ticks: int,
    per_tick: int,
    seed: int,
) -> dict[str, float]:
    """A venue's monitor between ticks: `per_tick` account events (a fill's or a deposit's new
    positions and balances) on distinct random accounts, fed as the venue's `_flush_dirty` feeds
    them before a tick (one `Monitor.on_accounts` batch), then a tick. Each flush timed (the
    engine folds its pending accounts once they pass one account in PENDING_SHARE, 7,812 at 1M:
    not within these 4,000 events, so the fold is timed alone below), each tick with the state
    machine as above; the baseline is the plain ticks of the same run.
    Then, on other accounts, the same events in batches of `per_tick` against one `on_account`
    each (the venue before batches): CPU time per account event both ways, the batched one with
    a fold's share (the fold of the pending accounts timed alone, divided by the accounts that
    trigger one)."""
    rng = np.random.default_rng(seed + 1)
    book = monitor.engine.book

    def update(row: int) -> AccountUpdate:
        return account_update(book, row, quantity_factor=1.5, balance_factor=0.9)

    compared = 1_000
    rows = rng.choice(book.n_accounts, size=ticks * per_tick + 2 * compared, replace=False).tolist()
    updates = [update(row) for row in rows]  # built before the clock starts: the venue's own cost
    params = MarginCallParams()
    flush_s: list[float] = []
    tick_s: list[float] = []
    for n in range(ticks):
        t0 = time.perf_counter()
        monitor.on_accounts(updates[n * per_tick : (n + 1) * per_tick])
        flush_s.append(time.perf_counter() - t0)
        underlying = market.underlyings[n % len(market.underlyings)]
        prices[underlying] *= 0.99 if (n // len(market.underlyings)) % 2 == 0 else 1.0 / 0.99
        now += 1_000_000
        t0 = time.perf_counter()
        tick = PriceTick(prices_usd={underlying: prices[underlying]})
        monitor.apply(monitor.on_tick(tick, now_ns=now, params=params))
        tick_s.append(time.perf_counter() - t0)
    # The fold the engine does once it holds max(MAX_PENDING, accounts / PENDING_SHARE) pending
    # accounts, timed alone (asking for the book folds), to amortise it over those events.
    pending = monitor.engine.pending_accounts
    threshold = max(MAX_PENDING, len(monitor.account_ids) // PENDING_SHARE)
    c0 = time.process_time()
    _ = monitor.engine.book
    fold_s = time.process_time() - c0
    rest = updates[ticks * per_tick :]
    c0 = time.process_time()
    for k in range(0, compared, per_tick):
        monitor.on_accounts(rest[k : k + per_tick])
    batched_s = time.process_time() - c0
    _ = monitor.engine.book  # the same state for the one-by-one run: nothing pending
    c0 = time.process_time()
    for one in rest[compared : 2 * compared]:
        monitor.on_account(one)
    one_by_one_s = time.process_time() - c0
    return {
        "events_between_ticks": per_tick,
        "account_flush_p50_ms": percentile_ms(flush_s, 50),
        "account_flush_p99_ms": percentile_ms(flush_s, 99),
        "account_flush_max_ms": max(flush_s) * 1e3,
        "tick_after_events_p50_ms": percentile_ms(tick_s, 50),
        "tick_after_events_p99_ms": percentile_ms(tick_s, 99),
        "account_event_cpu_us_one_by_one": one_by_one_s / compared * 1e6,
        "account_event_cpu_us_batched": batched_s / compared * 1e6 + fold_s / threshold * 1e6,
        "fold_ms": fold_s * 1e3,
        "fold_pending_accounts": pending,
        "fold_threshold_accounts": threshold,
    }


def account_update(book: Any, row: int, *, quantity_factor: float, balance_factor: float) -> AccountUpdate:
    """Account `row`'s new state after a fill or a deposit: its positions scaled by
    `quantity_factor`, its balances by `balance_factor` (what the venue's flush hands the monitor)."""
    positions, table = book.positions, book.instruments
    lo, hi = int(positions.indptr[row]), int(positions.indptr[row + 1])
    return AccountUpdate(
        account_id=book.account_ids[row],
        instrument_ids=[table.ids[i] for i in positions.indices[lo:hi].tolist()],
        quantity=(positions.data[lo:hi] * quantity_factor).tolist(),
        entry_price=book.entry_price[lo:hi].tolist(),
        balances=dict(zip(book.assets.symbols, (book.balances[row] * balance_factor).tolist(), strict=True)),
    )


def busy_venue_ticks(
    monitor: Monitor,
    market: Any,
    prices: dict[str, float],
    now: int,
    *,
    per_tick: int = BUSY_EVENTS_PER_TICK,
    seed: int,
) -> dict[str, float]:
    """A busy venue: `per_tick` account events on distinct accounts before each tick, for as many
    ticks as it takes the folded accounts to pass 6 % of the book (70 at 1M accounts and 1,000 a
    tick: nine folds, one every ~7,800 accounts). Each flush timed (a fold lands in one in ~8) and
    each tick. Until 2026-12-07 the holder index counted folded accounts as holding everything
    and was rebuilt inside the tick after they passed 5 % of the book: that tick read 146 ms at
    1M accounts (AMD Zen 4), over the 100 ms aim."""
    rng = np.random.default_rng(seed + 2)
    book = monitor.engine.book
    n_ticks = int(0.06 * book.n_accounts) // per_tick + 1
    rows = rng.choice(book.n_accounts, size=n_ticks * per_tick, replace=False)
    params = MarginCallParams()
    flush_s: list[float] = []
    tick_s: list[float] = []
    for n in range(n_ticks):
        batch = [  # the venue's work, untimed
            account_update(book, row, quantity_factor=0.5, balance_factor=1.1)
            for row in rows[n * per_tick : (n + 1) * per_tick].tolist()
        ]
        t0 = time.perf_counter()
        monitor.on_accounts(batch)
        flush_s.append(time.perf_counter() - t0)
        underlying = market.underlyings[n % len(market.underlyings)]
        prices[underlying] *= 0.999
        now += 1_000_000
        t0 = time.perf_counter()
        monitor.apply(
            monitor.on_tick(PriceTick(prices_usd={underlying: prices[underlying]}), now_ns=now, params=params)
        )
        tick_s.append(time.perf_counter() - t0)
    return {
        "busy_events_per_tick": per_tick,
        "busy_ticks": n_ticks,
        "busy_tick_p50_ms": percentile_ms(tick_s, 50),
        "busy_tick_p99_ms": percentile_ms(tick_s, 99),
        "busy_tick_max_ms": max(tick_s) * 1e3,
        "busy_flush_p50_ms": percentile_ms(flush_s, 50),
        "busy_flush_max_ms": max(flush_s) * 1e3,
    }


def liquidation_picks(monitor: Monitor, *, in_liquidation: int, picks: int, seed: int) -> dict[str, float]:
    """A crash's round of liquidations picks the riskiest account in liquidation `picks` times,
    each liquidation moving the one it picked out of liquidation: with `Monitor.in_liquidation`
    sorted again before each pick (the venue before `engine.venue.liquidation_queue`, the baseline) and
    with the `LiquidationQueue` sorted once, on `in_liquidation` accounts of the book in
    liquidation. The same picks both ways (checked); ms per pick."""
    rng = np.random.default_rng(seed)
    statuses = monitor.statuses.copy()
    rows = rng.choice(statuses.size, size=in_liquidation, replace=False)

    def crashed() -> None:
        monitor.statuses[:] = 0
        monitor.statuses[rows] = LIQUIDATION

    crashed()
    t0 = time.perf_counter()
    sorted_each = []
    for _ in range(picks):
        row = int(monitor.in_liquidation()[0])
        sorted_each.append(row)
        monitor.statuses[row] = 0  # liquidated: out of liquidation
    sort_s = time.perf_counter() - t0
    crashed()
    t0 = time.perf_counter()
    queue = LiquidationQueue(monitor)
    queued = []
    for _ in range(picks):
        row = queue.pick(lambda r: True)
        assert row is not None
        queued.append(row)
        monitor.statuses[row] = 0
        queue.moved([row])
    queue_s = time.perf_counter() - t0
    monitor.statuses[:] = statuses
    if queued != sorted_each:
        raise SystemExit("liquidation_picks: the queue picked other accounts than in_liquidation")
    return {
        "liquidation_in_liquidation": in_liquidation,
        "liquidation_pick_ms_sorted_each": sort_s / picks * 1e3,
        "liquidation_pick_ms_queue": queue_s / picks * 1e3,
    }


def drop_schema(url: str, schema: str) -> None:
    """Drop a run's PostgreSQL schema and everything in it."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def add_pg_argument(parser: argparse.ArgumentParser) -> None:
    """--pg URL: the PostgreSQL the durable runs use ($CROSSMARGIN_BENCH_PG, or this machine's)."""
    parser.add_argument(
        "--pg",
        default=os.environ.get("CROSSMARGIN_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--transfers", type=int, default=1_000)
    parser.add_argument(
        "--sustained-events",
        type=int,
        default=300_000,
        help="a long one-command run (the collector's pauses and p99.9 of a venue that keeps running)",
    )
    parser.add_argument(
        "--in-flight",
        type=int,
        default=128,
        help="one-command deposit runs (the headline): commands in flight; the curve adds 64..512",
    )
    parser.add_argument(
        "--batch-in-flight", type=int, default=512, help="batch, transfer and fill runs: commands in flight"
    )
    parser.add_argument("--latency-in-flight", type=int, default=8, help="latency run: commands in flight")
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--ticks", type=int, default=40)
    parser.add_argument(
        "--batch", type=int, default=100, help="events per Venue.submit_batch / batch request"
    )
    parser.add_argument(
        "--http-seconds", type=float, default=3.0, help="seconds per HTTP run (bench_service_http); 0 skips"
    )
    parser.add_argument("--seed", type=int, default=20250601)
    parser.add_argument(
        "--default-gc", action="store_true", help="CPython's collector thresholds, not serve's (heap.py)"
    )
    add_pg_argument(parser)
    args = parser.parse_args(argv)
    print(f"CROSSMARGIN_KERNEL={compiled_kernels()} (steady state: compiled kernels, bench/machine.py)")
    print(
        f"crossmargin bench_service: CPU {cpu_model()}, load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    genesis = genesis_of_book(BOOK)
    random_keyed = random_key_commands(args.sustained_events, args.seed)
    settle = not args.default_gc
    results: dict[str, Any] = {"cpu": cpu_model(), "collector": "serve (heap.py)" if settle else "default"}
    with tempfile.TemporaryDirectory() as tmp:
        backends = [("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}", None)]
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        backends.append(("postgresql", args.pg, schema))
        for name, url, sch in backends:
            try:
                # name: (events, in flight, kind, commands per submit, answered by callback): one
                # command per submit by `Venue.submit_with_callback`, or by `Venue.submit` (a
                # Future each) in "deposits_future"; lists by `Venue.submit_batch`.
                runs = {
                    "deposits": (args.events, args.in_flight, "deposit", 1, True),
                    "deposits_future": (args.events, args.in_flight, "deposit", 1, False),
                    "deposits_light_load": (
                        max(args.events // 10, 200),
                        args.latency_in_flight,
                        "deposit",
                        1,
                        True,
                    ),
                    **{
                        f"deposits_in_flight_{w}": (args.events, w, "deposit", 1, True)
                        for w in CURVE_IN_FLIGHT
                        if w != args.in_flight
                    },
                    "transfers": (args.transfers, args.batch_in_flight, "transfer", 1, True),
                    "fills": (args.transfers, args.batch_in_flight, "fill", 1, True),
                    "deposits_batched": (args.events, args.batch_in_flight, "deposit", args.batch, False),
                    "deposits_batched_aim": (3 * args.events, AIM_IN_FLIGHT, "deposit", AIM_BATCH, False),
                    "deposits_sustained": (args.sustained_events, args.in_flight, "deposit", 1, True),
                    "deposits_random_keys": (args.sustained_events, args.in_flight, "deposit", 1, True),
                    "transfers_batched": (
                        args.transfers,
                        args.batch_in_flight,
                        "transfer",
                        args.batch,
                        False,
                    ),
                }
                measured = {
                    run: durable_run(
                        url,
                        sch,
                        genesis,
                        n=n,
                        in_flight=w,
                        kind=kind,
                        batch=batch,
                        callback=callback,
                        settle=settle,
                        command=random_keyed if run == "deposits_random_keys" else command_of,
                    )
                    for run, (n, w, kind, batch, callback) in runs.items()
                }
                measured[f"deposits_in_flight_{args.in_flight}"] = measured["deposits"]
                floor = floor_run(url, sch, per_commit=100)
                if name == "sqlite":
                    results["python_append_floor"] = python_append_floor(
                        tmp, n=max(args.events, 20_000), in_flight=args.in_flight
                    )
                    print(
                        f"{'floor':>10}: the least a hash-chained acknowledged append costs in CPython "
                        f"(python_append_floor): {results['python_append_floor']['events_per_s']:,.0f} events/s, "
                        f"CPU {results['python_append_floor']['cpu_ms_per_event'] * 1e3:.1f} us/event"
                    )
            finally:
                if sch is not None:
                    drop_schema(url, sch)
            results[name] = {**measured, "floor_insert_100_per_commit": floor}
            deposits, light, transfers = (
                measured["deposits"],
                measured["deposits_light_load"],
                measured["transfers"],
            )
            batched, batched_transfers = measured["deposits_batched"], measured["transfers_batched"]
            future = measured["deposits_future"]
            curve = [measured[f"deposits_in_flight_{w}"] for w in sorted({*CURVE_IN_FLIGHT, args.in_flight})]
            print(
                f"{name:>10}: one command per call, answered by callback (Venue.submit_with_callback) beside "
                f"a Future each (Venue.submit): {deposits['events_per_s']:,.0f}/s against {future['events_per_s']:,.0f}/s, "
                f"ack p99 {deposits['ack_p99_ms']:.1f} against {future['ack_p99_ms']:.1f} ms, CPU client / writer / "
                f"committer {future['cpu_us_client']:.1f} / {future['cpu_us_writer']:.1f} / {future['cpu_us_committer']:.1f} us "
                f"with the Future; in flight -> events/s, ack p50 / p99: "
                + ", ".join(
                    f"{r['in_flight']}: {r['events_per_s']:,.0f}/s {r['ack_p50_ms']:.1f} / {r['ack_p99_ms']:.1f} ms"
                    for r in curve
                )
            )
            print(
                f"{name:>10}: deposits {deposits['events_per_s']:9,.0f}/s ack p50 {deposits['ack_p50_ms']:.2f} ms "
                f"p99 {deposits['ack_p99_ms']:.2f} ms ({deposits['events_per_commit']:.0f}/commit); "
                f"transfers {transfers['events_per_s']:7,.0f}/s p99 {transfers['ack_p99_ms']:.1f} ms; "
                f"floor raw INSERT 100/commit {floor['rows_per_s']:9,.0f} rows/s; "
                f"{args.latency_in_flight} in flight: {light['events_per_s']:,.0f}/s ack p50 {light['ack_p50_ms']:.2f} ms "
                f"p99 {light['ack_p99_ms']:.2f} ms; CPU per deposit {deposits['cpu_ms_per_event']:.3f} ms "
                f"(client / writer / committer {deposits['cpu_us_client']:.1f} / {deposits['cpu_us_writer']:.1f} / "
                f"{deposits['cpu_us_committer']:.1f} us), "
                f"per transfer {transfers['cpu_ms_per_event']:.2f} ms; fills {measured['fills']['events_per_s']:7,.0f}/s "
                f"p99 {measured['fills']['ack_p99_ms']:.1f} ms, CPU {measured['fills']['cpu_ms_per_event']:.2f} ms"
            )
            sustained, random_keys = measured["deposits_sustained"], measured["deposits_random_keys"]
            print(
                f"{name:>10}: random (UUID) keys, {random_keys['events']:,} deposits one per call: "
                f"{random_keys['events_per_s']:,.0f}/s ack p99 {random_keys['ack_p99_ms']:.2f} ms p99.9 "
                f"{random_keys['ack_p999_ms']:.2f} ms, CPU client / writer / committer / key index "
                f"{random_keys['cpu_us_client']:.1f} / {random_keys['cpu_us_writer']:.1f} / "
                f"{random_keys['cpu_us_committer']:.1f} / {random_keys['cpu_us_key_index']:.1f} us "
                f"(the sequential keys below: {sustained['cpu_us_committer']:.1f} us the committer)"
            )
            print(
                f"{name:>10}: sustained, {sustained['events']:,} deposits one per call at {sustained['in_flight']} in "
                f"flight: {sustained['events_per_s']:,.0f}/s ack p50 {sustained['ack_p50_ms']:.2f} ms p99 "
                f"{sustained['ack_p99_ms']:.2f} ms p99.9 {sustained['ack_p999_ms']:.2f} ms max "
                f"{sustained['ack_max_ms']:.1f} ms; the collector paused "
                f"{sustained['gc_pauses']:.0f} times, longest {sustained['gc_pause_max_ms']:.1f} ms, "
                f"{sustained['gc_pause_total_ms']:.0f} ms in all"
            )
            print(
                f"{name:>10}: batches of {args.batch} (Venue.submit_batch): deposits {batched['events_per_s']:9,.0f}/s "
                f"ack p50 {batched['ack_p50_ms']:.2f} ms p99 {batched['ack_p99_ms']:.2f} ms "
                f"({batched['events_per_commit']:.0f}/commit), CPU {batched['cpu_ms_per_event']:.3f} ms/event "
                f"(client / writer / committer {batched['cpu_us_client']:.1f} / {batched['cpu_us_writer']:.1f} / "
                f"{batched['cpu_us_committer']:.1f} us); "
                f"transfers {batched_transfers['events_per_s']:7,.0f}/s p99 {batched_transfers['ack_p99_ms']:.1f} ms, "
                f"CPU {batched_transfers['cpu_ms_per_event']:.2f} ms/event"
            )
    http: dict[str, Any] = {}
    if args.http_seconds > 0:
        from bench_service_http import run_backend

        with tempfile.TemporaryDirectory() as tmp:
            for name in ("sqlite", "postgresql"):
                r = run_backend(
                    name,
                    seconds=args.http_seconds,
                    clients=32,
                    workdir=Path(tmp),
                    batch=args.batch,
                    batch_clients=4,
                )
                http[name] = r
                print(
                    f"{name:>10} over HTTP (crossmargin serve, loopback): one event per request, 32 clients "
                    f"{r['events_per_s']:,.0f}/s ack p99 {r['ack_p99_ms']:.1f} ms, server CPU "
                    f"{r['server_cpu_ms_per_event']:.2f} ms/event; POST /v1/events/batch of {args.batch}, 4 clients "
                    f"{r['batch']['events_per_s']:,.0f}/s ack p99 {r['batch']['ack_p99_ms']:.1f} ms, server CPU "
                    f"{r['batch']['server_cpu_ms_per_event']:.3f} ms/event; not acknowledged (status: "
                    f"count) {r['refused']}"
                )
    results["http"] = http
    ticks = tick_to_calls(args.accounts, args.ticks, args.seed, settle=settle)
    print(
        f"tick → calls, {args.accounts:,} accounts (one underlying each): p50 {ticks['tick_to_calls_p50_ms']:.1f} ms, "
        f"p99 {ticks['tick_to_calls_p99_ms']:.1f} ms, {ticks['status_changes']:,} status changes over {args.ticks} ticks; "
        f"RiskEngine.on_tick alone p50 {ticks['engine_on_tick_p50_ms']:.1f} ms p99 {ticks['engine_on_tick_p99_ms']:.1f} ms; "
        f"median {ticks['accounts_remargined_median']:,.0f} accounts re-margined per tick; "
        f"CPU per tick p99 {ticks['tick_cpu_p99_ms']:.1f} ms; monitor built in {ticks['monitor_built_s']:.2f} s; "
        f"a tick after 10 sign-ups p50 {ticks['tick_after_signups_p50_ms']:.1f} ms p99 "
        f"{ticks['tick_after_signups_p99_ms']:.1f} ms (growing the monitor p50 {ticks['signup_growth_p50_ms']:.1f} ms); "
        f"a tick after {ticks['events_between_ticks']} account events p50 {ticks['tick_after_events_p50_ms']:.1f} ms "
        f"p99 {ticks['tick_after_events_p99_ms']:.1f} ms, their flush p50 {ticks['account_flush_p50_ms']:.1f} ms "
        f"p99 {ticks['account_flush_p99_ms']:.1f} ms max {ticks['account_flush_max_ms']:.1f} ms, CPU an "
        f"account event {ticks['account_event_cpu_us_batched']:.0f} us batched against "
        f"{ticks['account_event_cpu_us_one_by_one']:.0f} us one by one (a fold of {ticks['fold_pending_accounts']:,} "
        f"pending accounts {ticks['fold_ms']:.0f} ms, one every {ticks['fold_threshold_accounts']:,}); "
        f"a busy venue ({ticks['busy_events_per_tick']:,} account events before each of "
        f"{ticks['busy_ticks']} ticks): tick p50 {ticks['busy_tick_p50_ms']:.1f} ms p99 "
        f"{ticks['busy_tick_p99_ms']:.1f} ms max {ticks['busy_tick_max_ms']:.1f} ms, flush p50 "
        f"{ticks['busy_flush_p50_ms']:.1f} ms max {ticks['busy_flush_max_ms']:.1f} ms (a fold); "
        f"picking the riskiest of {ticks['liquidation_in_liquidation']:,} accounts in liquidation: "
        f"{ticks['liquidation_pick_ms_queue']:.3f} ms a pick with the queue, "
        f"{ticks['liquidation_pick_ms_sorted_each']:.1f} ms sorted each time (baseline)"
    )
    results["tick_to_calls"] = ticks
    aims = {
        f"{b}_{mode}": met(results[b][run])
        for b in ("sqlite", "postgresql")
        for mode, run in (
            ("one_per_call", "deposits"),
            ("lists", "deposits_batched_aim"),
            ("sustained", "deposits_sustained"),
            ("random_keys", "deposits_random_keys"),
        )
    }
    aims["tick_to_calls"] = ticks["tick_to_calls_p99_ms"] <= AIM_TICK_P99_MS
    aims["tick_to_calls_busy_venue"] = ticks["busy_tick_p99_ms"] <= AIM_TICK_P99_MS
    for b in ("sqlite", "postgresql"):
        one, lists = results[b]["deposits"], results[b]["deposits_batched_aim"]
        print(
            f"{b:>10}: aim >= {AIM_EVENTS_PER_S:,} events/s at ack p99 <= {AIM_ACK_P99_MS:.0f} ms: one command per call "
            f"{one['events_per_s']:,.0f}/s p99 {one['ack_p99_ms']:.1f} ms {word(aims[f'{b}_one_per_call'])}; lists of "
            f"{AIM_BATCH} at {AIM_IN_FLIGHT} in flight {lists['events_per_s']:,.0f}/s p99 {lists['ack_p99_ms']:.1f} ms "
            f"{word(aims[f'{b}_lists'])}; sustained {results[b]['deposits_sustained']['events_per_s']:,.0f}/s "
            f"p99 {results[b]['deposits_sustained']['ack_p99_ms']:.1f} ms {word(aims[f'{b}_sustained'])}; "
            f"random keys {results[b]['deposits_random_keys']['events_per_s']:,.0f}/s "
            f"p99 {results[b]['deposits_random_keys']['ack_p99_ms']:.1f} ms {word(aims[f'{b}_random_keys'])}"
        )
    best = max(("sqlite", "postgresql"), key=lambda b: results[b]["deposits"]["events_per_s"])

    def per_backend(run: str, keys: tuple[str, ...]) -> dict[str, dict[str, Any]]:
        return {b: {key: results[b][run][key] for key in keys} for b in ("sqlite", "postgresql")}

    summary = {
        "events_per_s": results[best]["deposits"]["events_per_s"],
        "future_events_per_s": results[best]["deposits_future"]["events_per_s"],
        "future_ack_p99_ms": results[best]["deposits_future"]["ack_p99_ms"],
        # (in flight, events/s, ack p99 ms) per backend, one command per call by callback
        "ack_curve": {
            b: [
                [r["in_flight"], r["events_per_s"], r["ack_p99_ms"]]
                for r in (
                    results[b][f"deposits_in_flight_{w}"] for w in sorted({*CURVE_IN_FLIGHT, args.in_flight})
                )
            ]
            for b in ("sqlite", "postgresql")
        },
        "events_backend": best,
        "ack_p50_ms": results[best]["deposits"]["ack_p50_ms"],
        "ack_p99_ms": results[best]["deposits"]["ack_p99_ms"],
        "sqlite_events_per_s": results["sqlite"]["deposits"]["events_per_s"],
        "postgresql_events_per_s": results["postgresql"]["deposits"]["events_per_s"],
        "postgresql_ack_p99_ms": results["postgresql"]["deposits"]["ack_p99_ms"],
        "light_load_ack_p50_ms": results[best]["deposits_light_load"]["ack_p50_ms"],
        "light_load_ack_p99_ms": results[best]["deposits_light_load"]["ack_p99_ms"],
        "transfers_per_s_postgresql": results["postgresql"]["transfers"]["events_per_s"],
        "transfers_per_s_sqlite": results["sqlite"]["transfers"]["events_per_s"],
        "fills_per_s_sqlite": results["sqlite"]["fills"]["events_per_s"],
        "fills_per_s_postgresql": results["postgresql"]["fills"]["events_per_s"],
        "cpu_ms_per_fill_sqlite": results["sqlite"]["fills"]["cpu_ms_per_event"],
        "cpu_ms_per_deposit": results[best]["deposits"]["cpu_ms_per_event"],
        "cpu_ms_per_transfer_sqlite": results["sqlite"]["transfers"]["cpu_ms_per_event"],
        "tick_cpu_p99_ms": ticks["tick_cpu_p99_ms"],
        "monitor_built_s": ticks["monitor_built_s"],
        "floor_rows_per_s_sqlite": results["sqlite"]["floor_insert_100_per_commit"]["rows_per_s"],
        "python_append_floor_events_per_s": results["python_append_floor"]["events_per_s"],
        "python_append_floor_cpu_ms_per_event": results["python_append_floor"]["cpu_ms_per_event"],
        "floor_rows_per_s_postgresql": results["postgresql"]["floor_insert_100_per_commit"]["rows_per_s"],
        "batch_size": args.batch,
        "batch_events_per_s": results[best]["deposits_batched"]["events_per_s"],
        "batch_ack_p50_ms": results[best]["deposits_batched"]["ack_p50_ms"],
        "batch_ack_p99_ms": results[best]["deposits_batched"]["ack_p99_ms"],
        "batch_events_per_s_postgresql": results["postgresql"]["deposits_batched"]["events_per_s"],
        "cpu_ms_per_deposit_batched": results[best]["deposits_batched"]["cpu_ms_per_event"],
        # Lists of AIM_BATCH at AIM_IN_FLIGHT in flight per backend: [events/s, ack p99 ms].
        "aim_lists": {
            b: [
                results[b]["deposits_batched_aim"]["events_per_s"],
                results[b]["deposits_batched_aim"]["ack_p99_ms"],
            ]
            for b in ("sqlite", "postgresql")
        },
        "aims": aims,
        # The long run per backend: events/s, ack p99, p99.9 and the longest, the collector's pauses.
        "sustained": per_backend(
            "deposits_sustained",
            (
                "events",
                "events_per_s",
                "ack_p99_ms",
                "ack_p999_ms",
                "ack_max_ms",
                "gc_pause_max_ms",
                "gc_pause_total_ms",
            ),
        ),
        # The sustained run again with random (UUID) keys, as clients send them: events/s, ack
        # p99 and p99.9, and the CPU of the committer and of SQLite's key index (us an event).
        "random_keys": per_backend(
            "deposits_random_keys",
            ("events_per_s", "ack_p99_ms", "ack_p999_ms", "cpu_us_committer", "cpu_us_key_index"),
        ),
        "deposit_cpu_us_by_thread": {
            run: {role: results[best][run][f"cpu_us_{role}"] for role in ("client", "writer", "committer")}
            for run in ("deposits", "deposits_future", "deposits_batched")
        },
        "batch_transfers_per_s_sqlite": results["sqlite"]["transfers_batched"]["events_per_s"],
        "cpu_ms_per_transfer_batched_sqlite": results["sqlite"]["transfers_batched"]["cpu_ms_per_event"],
        "http_events_per_s": {k: v["events_per_s"] for k, v in http.items()},
        "http_ack_p99_ms": {k: v["ack_p99_ms"] for k, v in http.items()},
        "http_server_cpu_ms_per_event": {k: v["server_cpu_ms_per_event"] for k, v in http.items()},
        "http_batch_events_per_s": {k: v["batch"]["events_per_s"] for k, v in http.items()},
        "http_batch_ack_p99_ms": {k: v["batch"]["ack_p99_ms"] for k, v in http.items()},
        "http_batch_server_cpu_ms_per_event": {
            k: v["batch"]["server_cpu_ms_per_event"] for k, v in http.items()
        },
        "load_average": os.getloadavg()[0],
        "tick_to_calls_p50_ms": ticks["tick_to_calls_p50_ms"],
        "tick_to_calls_p99_ms": ticks["tick_to_calls_p99_ms"],
        "engine_on_tick_p99_ms": ticks["engine_on_tick_p99_ms"],
        "tick_after_events_p50_ms": ticks["tick_after_events_p50_ms"],
        "tick_after_events_p99_ms": ticks["tick_after_events_p99_ms"],
        "account_flush_p99_ms": ticks["account_flush_p99_ms"],
        "account_flush_max_ms": ticks["account_flush_max_ms"],
        "busy_tick_p99_ms": ticks["busy_tick_p99_ms"],
        "busy_tick_max_ms": ticks["busy_tick_max_ms"],
        "busy_flush_max_ms": ticks["busy_flush_max_ms"],
        "account_event_cpu_us_batched": ticks["account_event_cpu_us_batched"],
        "account_event_cpu_us_one_by_one": ticks["account_event_cpu_us_one_by_one"],
        "accounts": args.accounts,
        "collector": results["collector"],
        "cpu": cpu_model(),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
