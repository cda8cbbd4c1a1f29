"""Crash safety: the venue process is killed with SIGKILL at random points while commands stream
in, then restarted, 50 times per backend. Every acknowledged command must be in the log at its
acknowledged sequence, none applied twice, and the state the venue rebuilds (snapshot + tail)
must equal a replay of the whole log. Every other life starts by verifying only the records
after its newest snapshot (`verify_on_start="since_snapshot"`), its audit of the rest killed
with it.

The venue runs in a child process forked from the test process (multiprocessing "fork": a real,
separate process killed by the kernel, without a fresh interpreter's ~2 s of imports per kill);
it opens its own database connections after the fork. Seeded; the seed is printed.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa

from crossmargin.adapters.sql.runner import serve_connection
from crossmargin.core.ledger.postings import EXTERNAL
from tests.adapters.sql.support import connect, desk_genesis, open_venue, replay

KILLS = int(os.environ.get("CROSSMARGIN_SIGKILL_KILLS", "50"))  # per backend; CI runs 50
SEED = 20261203
SNAPSHOT_EVERY = 40
ACCOUNTS = ("basis-trader", "vol-seller", "directional")


def _command(rng: random.Random, n: int, cycle: int) -> dict[str, Any]:
    key = f"c{cycle}-{n}"
    roll = rng.random()
    if roll < 0.6:
        body = {"account": rng.choice(ACCOUNTS), "asset": "USDC", "amount_units": rng.randint(1, 1000)}
        return {"kind": "deposit", "key": key, "body": body}
    if roll < 0.9:
        a, b = rng.sample(ACCOUNTS, 2)
        body = {"from_account": a, "to_account": b, "asset": "USDC", "amount_units": rng.randint(1, 500)}
        return {"kind": "transfer", "key": key, "body": body}
    body = {"account": rng.choice(ACCOUNTS), "asset": "USDC", "amount_units": rng.randint(1, 300)}
    return {"kind": "withdraw", "key": key, "body": body}


def _wait_for_a_snapshot(db: tuple[str, str | None]) -> None:
    """Until the venue's log holds a snapshot. Lives are killed within ~60 ms of their first ack,
    and on a loaded machine a snapshot (fork, encode, write) may never finish in that time: the
    last life is killed only once one has, so the restart below always rebuilds from one."""
    engine = sa.create_engine(db[0])  # not a store: on PostgreSQL it would want the writer's lock
    try:
        deadline = time.monotonic() + 60.0
        while True:
            with engine.connect() as conn:
                if db[1] is not None:
                    conn.execute(sa.text(f'SET search_path TO "{db[1]}"'))
                # A snapshot's row is written after all its chunks: a listed one is whole.
                if conn.execute(sa.text("SELECT count(*) FROM snapshots")).scalar():
                    return
            assert time.monotonic() < deadline, "no snapshot written in 60 s"
            time.sleep(0.01)
    finally:
        engine.dispose()


def test_sigkill_every_acknowledged_event_survives(db: tuple[str, str | None]) -> None:
    rng = random.Random(SEED)
    print(f"seed {SEED}")
    context = multiprocessing.get_context("fork")
    connect(db).close()  # migrate once, before any child races to
    genesis = desk_genesis()
    acked: dict[str, int] = {}
    sent: dict[str, dict[str, Any]] = {}
    for cycle in range(KILLS):
        parent, child = context.Pipe()
        process = context.Process(
            target=serve_connection,
            args=(child,),
            kwargs={
                "db": db[0],
                "schema": db[1],
                "genesis": genesis,
                "snapshot_every": SNAPSHOT_EVERY,
                # Every other life trusts its newest snapshot, auditing the rest while it serves.
                "verify_on_start": "since_snapshot" if cycle % 2 else "full",
            },
        )
        process.start()
        child.close()
        assert parent.poll(120), "the venue process did not come up"
        ready = parent.recv()
        assert ready["ready"] >= max(acked.values(), default=0)
        assert ready["problems"] == []
        replies: list[dict[str, Any]] = []

        def read(conn: Any = parent, into: list[dict[str, Any]] = replies) -> None:
            try:
                while True:
                    into.append(conn.recv())
            except (EOFError, OSError):
                return

        reader = threading.Thread(target=read)
        reader.start()
        # A few retries of already acknowledged commands: they must not apply again.
        for key in rng.sample(sorted(acked), min(3, len(acked))):
            parent.send(sent[key])
        last_life = cycle == KILLS - 1
        for n in range(rng.randint(5, 60) + (2 * SNAPSHOT_EVERY if last_life else 0)):
            message = _command(rng, n, cycle)
            sent[message["key"]] = message
            parent.send(message)
        if last_life:
            _wait_for_a_snapshot(db)
        # Kill at a random point while commits are flowing: after this life's first new ack.
        waited = time.monotonic() + 30.0
        while time.monotonic() < waited and not any(
            "sequence" in r and r["key"] not in acked for r in list(replies)
        ):
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.06))
        os.kill(process.pid, signal.SIGKILL)  # type: ignore[arg-type]
        process.join()
        assert process.exitcode == -signal.SIGKILL
        parent.close()
        reader.join()
        for reply in replies:
            if "sequence" in reply:
                if reply["key"] in acked:
                    assert reply["sequence"] == acked[reply["key"]], "a retry got another sequence"
                    assert reply["duplicate"]
                acked[reply["key"]] = reply["sequence"]
    assert len(acked) >= KILLS  # every life acknowledged something new before its kill

    store = connect(db)
    try:
        venue = open_venue(store)
        try:
            stored = store.find_keys(sorted(acked))
            missing = sorted(set(acked) - set(stored))
            assert missing == [], f"acknowledged but lost: {missing[:5]}"
            assert {k: s for k, (s, _) in stored.items()} == acked
            # No command applied twice: one record per key (the unique index) and the deposits in
            # the log are exactly the distinct deposit keys that were committed.
            records = store.read(1, 1_000_000)
            keys = [r.idempotency_key for r in records if r.idempotency_key is not None]
            assert len(keys) == len(set(keys))
            deposits_in_log = sum(1 for r in records if r.kind == "deposit")
            assert deposits_in_log == len({k for k in keys if sent[k]["kind"] == "deposit"})
            # The rebuilt state (newest snapshot + tail) equals a replay from the first record.
            assert venue.recovery.snapshot_sequence is not None
            assert venue.state_digest() == replay(store).digest()
            balances = venue.balances("USDC")
            assert sum(balances.values()) == 0
            assert balances[EXTERNAL] == -sum(v for a, v in balances.items() if a != EXTERNAL)
        finally:
            venue.close()
    finally:
        store.close()


@pytest.fixture(autouse=True)
def _no_stray_children() -> Any:
    yield
    for child in multiprocessing.active_children():
        child.kill()
