"""Crash safety of the served venue: `crossmargin serve`, the console script in a process of its
own, is killed with SIGKILL at a random moment while clients stream deposits and transfers over
HTTP, then started again on the same database, KILLS times per backend (SQLite and PostgreSQL).

After every restart the requests that got no answer (their connection died with the server) are
sent again with the same idempotency key and body: each is then answered, either as the original
commit (duplicate, at the sequence the log holds) or as a new one. At the end:
- every request acknowledged with 201 is in the log at its acknowledged sequence;
- no key is applied twice: the balances equal the opening ones plus exactly the acknowledged
  deposits and transfers, computed by the test from its own requests;
- what the restarted server serves (each account's balance over HTTP) equals a replay of the
  whole log from the first record, though it started from a snapshot (one every 25 records,
  encoded by forked children, written in chunks: kills land in both) and on the killed server's
  port (no snapshot child outlives its parent holding it), every other restart verifying only
  the records after its newest snapshot (`--verify-on-start since_snapshot`, the rest audited
  while it serves); at most the newest 3 are kept;
- a WebSocket subscriber (the admin key: the whole venue) that reconnects after every kill with
  `after=` its last checkpoint, dropping what it got past that checkpoint, has seen exactly the
  stream a fresh subscriber reads from the start: no gap, no duplicate, same order; and every
  acknowledged request's sequence is in it.

tests/adapters/sql/test_sigkill.py does the same 50 times per backend to the venue core (a forked
process, no HTTP); this one kills the real server, fresh interpreter and all, which costs ~3 s a
start, so it kills fewer times (CROSSMARGIN_SERVE_SIGKILL_KILLS, default 4). The requests and the
kill delays are seeded; where in the stream a kill lands depends on the machine's timing.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from websockets.exceptions import WebSocketException
from websockets.sync.client import connect as ws_connect

from crossmargin.adapters.sql import SqlEventStore
from tests.adapters.sql.support import replay
from tests.service.conftest import DESK, Database

KILLS = int(os.environ.get("CROSSMARGIN_SERVE_SIGKILL_KILLS", "4"))
SNAPSHOT_EVERY = 25
SEED = 20261207
CLIENTS = 4
ACCOUNTS = ("basis-trader", "vol-seller", "directional")
ASSET = "USDC"


@dataclass
class Request:
    key: str
    path: str
    body: dict[str, Any]
    status: int = 0  # 0: no answer yet (in flight when the server died, or never sent)
    sequence: int | None = None
    duplicate: bool = False


def _request(rng: random.Random, key: str) -> Request:
    account = rng.choice(ACCOUNTS)
    amount = str(rng.randint(1, 50))
    if rng.random() < 0.6:
        return Request(key, f"/v1/accounts/{account}/deposits", {"asset": ASSET, "amount": amount})
    to = rng.choice([a for a in ACCOUNTS if a != account])
    return Request(
        key, f"/v1/accounts/{account}/transfers", {"asset": ASSET, "amount": amount, "to_account": to}
    )


class Server:
    """`crossmargin serve` as the console script runs it, on the test's database."""

    def __init__(
        self, database: Database, workdir: Path, port: int | None = None, verify_on_start: str = "full"
    ) -> None:
        """On `port` (a free one if None): a restart takes the killed server's port, which a
        snapshot child of the killed server must not be holding. `verify_on_start`: serve's
        `--verify-on-start` (since_snapshot: the start-up audit may be running when killed)."""
        if port is None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
        self.port = port
        args = ["serve", "--book", str(DESK), "--db", database.url, "--port", str(self.port)]
        args += ["--admin-key-file", str(workdir / "admin.key"), "--log-level", "warning"]
        # Snapshots every SNAPSHOT_EVERY records, paced to half the time: kills land while forked
        # children encode and while chunks are written; restarts recover from them.
        args += ["--snapshot-every", str(SNAPSHOT_EVERY), "--snapshot-busy-limit", "0.5"]
        args += ["--verify-on-start", verify_on_start]
        if database.schema is not None:
            args += ["--schema", database.schema]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from crossmargin.cli.main import run; run()", *args],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise AssertionError(f"serve did not start: {err}")
            time.sleep(0.05)
        self.admin = (workdir / "admin.key").read_text().strip()

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.admin}"}, timeout=30.0
        )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=60)
        if self.process.stderr is not None:
            self.process.stderr.close()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)
        if self.process.stderr is not None:
            self.process.stderr.close()


def _send(client: httpx.Client, request: Request) -> bool:
    """One try; True once the request has its answer (201 or a refusal), False if the server
    gave none (gone) or asked to come back (429, 503: nothing was done)."""
    try:
        response = client.post(request.path, json=request.body, headers={"Idempotency-Key": request.key})
    except httpx.HTTPError:
        return False
    if response.status_code in (429, 503):
        return False
    request.status = response.status_code
    if response.status_code == 201:
        ack = response.json()
        request.sequence, request.duplicate = int(ack["sequence"]), bool(ack["duplicate"])
        assert ack["idempotency_key"] == request.key
    return True


def _stream(server: Server, rng: random.Random, tag: str, sent: list[Request], stop: threading.Event) -> None:
    """A client: new requests one after another, each recorded in `sent` before it goes out,
    until the server dies (the one in flight then stays unanswered) or stop is set."""
    with server.client() as client:
        n = 0
        while not stop.is_set():
            request = _request(rng, f"{tag}-{n}")
            n += 1
            sent.append(request)  # list.append is atomic: the clients share the list
            while not _send(client, request):
                if stop.is_set() or server.process.poll() is not None:
                    return
                time.sleep(0.01)


class Subscriber(threading.Thread):
    """The whole venue's stream from `after` until the connection ends (the server killed) or
    `until` is reached. Keeps, as a resuming client must, only what its last checkpoint covers:
    a record's notifications past it are sent again after `after=` that checkpoint."""

    def __init__(self, server: Server, after: int, until: int | None = None) -> None:
        super().__init__(daemon=True)
        self.url = f"ws://127.0.0.1:{server.port}/v1/stream?after={after}"
        self.key = server.admin
        self.cursor, self.until = after, until
        self.seen: list[tuple[int, int, str, str]] = []  # (sequence, index, kind, account)
        self.ready = threading.Event()

    def run(self) -> None:
        pending: list[tuple[int, int, str, str]] = []
        try:
            with ws_connect(self.url, additional_headers={"Authorization": f"Bearer {self.key}"}) as ws:
                self.ready.set()
                for raw in ws:
                    message = json.loads(raw)
                    if message["type"] == "checkpoint":
                        self.cursor = int(message["cursor"])
                        self.seen.extend(pending)
                        pending = []
                        if self.until is not None and self.cursor >= self.until:
                            return
                    else:
                        item = (message["sequence"], message["index"], message["kind"], message["account"])
                        pending.append(item)
        except (WebSocketException, OSError):
            pass  # the server went away: resume from self.cursor
        finally:
            self.ready.set()


def _balances(server: Server) -> dict[str, tuple[int, Decimal]]:
    """Each account's ASSET balance as served: (integer minor units, exact decimal amount)."""
    out = {}
    with server.client() as client:
        for account in ACCOUNTS:
            detail = client.get(f"/v1/accounts/{account}")
            assert detail.status_code == 200, detail.text
            amounts = [b for b in detail.json()["balances"] if b["asset"] == ASSET]
            out[account] = (
                (int(amounts[0]["units"]), Decimal(amounts[0]["amount"])) if amounts else (0, Decimal(0))
            )
    return out


def test_sigkill_of_the_served_venue_loses_no_acknowledged_request(
    database: Database, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    print(f"seed {SEED}, {KILLS} kills")
    requests: list[Request] = []
    unanswered: list[int] = []  # after each kill: requests in flight that the kill left unanswered
    server = Server(database, tmp_path)
    opening = _balances(server)
    streamed: list[tuple[int, int, str, str]] = []
    cursor = 0
    for cycle in range(KILLS + 1):
        # What the last server left unanswered, sent again (same key, same body) before new work.
        with server.client() as client:
            for request in requests:
                while request.status == 0 and not _send(client, request):
                    time.sleep(0.01)
        if cycle == KILLS:
            break
        subscriber = Subscriber(server, cursor)
        subscriber.start()
        subscriber.ready.wait(timeout=60)
        stop = threading.Event()
        clients = [
            threading.Thread(
                target=_stream,
                args=(server, random.Random(rng.random()), f"k{cycle}-{c}", requests, stop),
                daemon=True,
            )
            for c in range(CLIENTS)
        ]
        for thread in clients:
            thread.start()
        time.sleep(rng.uniform(0.2, 1.5))
        server.kill()  # mid-stream: commits in flight, answers unsent
        stop.set()
        for thread in clients:
            thread.join(timeout=60)
        subscriber.join(timeout=60)
        streamed.extend(subscriber.seen)
        cursor = subscriber.cursor
        assert sum(r.status == 201 for r in requests) > 0, "nothing was acknowledged before the kill"
        unanswered.append(sum(r.status == 0 for r in requests))
        # Every other restart trusts its newest snapshot and audits the rest while serving.
        mode = "since_snapshot" if cycle % 2 == 0 else "full"
        server = Server(database, tmp_path, port=server.port, verify_on_start=mode)
    served = _balances(server)
    with httpx.Client(base_url=server.url) as probe:
        last = int(probe.get("/readyz").json()["sequence"])
    for after, into in ((cursor, streamed), (0, fresh := [])):
        subscriber = Subscriber(server, after, until=last)
        subscriber.start()
        subscriber.join(timeout=120)
        assert subscriber.cursor >= last, "the stream did not reach the log's end"
        into.extend(subscriber.seen)
    server.stop()
    assert streamed == fresh  # resumed across every kill: no gap, no duplicate, same order

    duplicates = sum(r.duplicate for r in requests)  # committed before a kill, answered after it
    print(f"{len(requests)} requests, unanswered after each kill: {unanswered}, {duplicates} found committed")
    answered = [r for r in requests if r.status]
    assert len(answered) == len(requests)  # every request got its answer in the end
    acked = [r for r in answered if r.status == 201]
    # The rest were refused (a transfer beyond what the sender may move), never failed.
    assert all(400 <= r.status < 500 for r in answered if r.status != 201), {r.status for r in answered}
    store = SqlEventStore.connect(database.url, schema=database.schema)
    try:
        found = store.find_keys([r.key for r in acked])
        log = replay(store)
        kept = [s.sequence for s in store.snapshots()]
    finally:
        store.close()
    assert 1 <= len(kept) <= 3, kept  # the served venues wrote snapshots and kept the newest 3
    for r in acked:  # in the log, at the acknowledged sequence
        assert found[r.key][0] == r.sequence, r
    streamed_sequences = {sequence for sequence, _, _, _ in streamed}
    for r in acked:  # and streamed (a deposit's audit record, a transfer's margin rows)
        assert r.sequence in streamed_sequences, r
    expected = {a: amount for a, (_, amount) in opening.items()}
    for r in acked:  # each acknowledged request exactly once
        amount = Decimal(r.body["amount"])
        account = r.path.split("/")[3]
        expected[account] += amount if r.path.endswith("/deposits") else -amount
        if r.path.endswith("/transfers"):
            expected[r.body["to_account"]] += amount
    assert {a: amount for a, (_, amount) in served.items()} == expected
    replayed = {a: log.balances.get((a, ASSET), 0) for a in ACCOUNTS}
    assert replayed == {a: units for a, (units, _) in served.items()}
