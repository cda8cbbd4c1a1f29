"""A minimal venue process over the SQL store, for crash tests and benchmarks (the HTTP service
is `crossmargin serve`). Commands in as JSON lines on stdin, acknowledgements out on stdout:

    in:   {"kind": "deposit", "key": "k1", "body": {"account": "a", "asset": "USDC", "amount_units": 5}}
    out:  {"key": "k1", "sequence": 17, "duplicate": false}        after the commit, flushed
          {"key": "k1", "error": "InputError", "field": ..., "problem": ...}

    python -m crossmargin.adapters.sql.runner --db sqlite:///crossmargin.db --book examples/desk.yaml

Commands are submitted as they arrive (so the venue groups them into commits); an ack line is
written only from the command's callback, after its commit (`Venue.submit_with_callback`). A
first line `{"ready": last_sequence}` says the log was recovered. Exit code 2 on a bad database
or book, with the reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable
from typing import Any

from crossmargin.adapters.clock import SystemClock
from crossmargin.adapters.files.loader import load_book
from crossmargin.adapters.sql.store import DEFAULT_URL, SqlEventStore
from crossmargin.engine.simulation import simulation_from_book
from crossmargin.engine.venue import Ack, Genesis, Outcome, Venue, VenueSettings
from crossmargin.engine.venue.commands import command_from_body
from crossmargin.errors import CrossMarginError, InputError


def genesis_of_book(path: str) -> Genesis:
    """The venue's genesis from a book file: its accounts funded and positions imported."""
    sim = simulation_from_book(load_book(path))
    return Genesis.from_ledger(label=path, config=sim.config, state=sim.state, postings=sim.postings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="crossmargin-venue-runner")
    parser.add_argument("--db", default=DEFAULT_URL)
    parser.add_argument("--schema", default=None)
    parser.add_argument("--book", default="examples/desk.yaml")
    parser.add_argument("--snapshot-every", type=int, default=10_000)
    args = parser.parse_args(argv)
    try:
        store = SqlEventStore.connect(args.db, schema=args.schema)
        venue = Venue.open(
            store,
            genesis_of_book(args.book),
            clock=SystemClock(),
            settings=VenueSettings(snapshot_every=args.snapshot_every),
        )
    except CrossMarginError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out_lock = threading.Lock()

    def emit(line: dict[str, Any]) -> None:
        with out_lock:
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()

    emit({"ready": venue.last_sequence, "problems": list(venue.recovery.problems)})
    for raw in sys.stdin:
        if not raw.strip():
            continue
        try:
            message = json.loads(raw)
            key = str(message["key"])
            command = command_from_body(str(message["kind"]), message["body"], idempotency_key=key)
        except (ValueError, KeyError, TypeError, InputError) as error:
            emit({"key": None, "error": type(error).__name__, "problem": str(error)})
            continue
        venue.submit_with_callback(command, _reply_to(emit, key))
    venue.close()
    return 0


def serve_connection(
    connection: Any,
    *,
    db: str,
    schema: str | None,
    genesis: Genesis,
    snapshot_every: int,
    verify_on_start: str = "full",
) -> None:
    """The same protocol over a `multiprocessing` connection (dicts instead of JSON lines): what a
    crash test forks from a process that has imported everything once (a fresh interpreter
    spends ~2 s importing). Sends {"ready": ...}, then one reply per command, after its commit."""
    store = SqlEventStore.connect(db, schema=schema)
    settings = VenueSettings(snapshot_every=snapshot_every, verify_on_start=verify_on_start)
    venue = Venue.open(store, genesis, clock=SystemClock(), settings=settings)
    send_lock = threading.Lock()

    def send(message: dict[str, Any]) -> None:
        with send_lock:
            connection.send(message)

    send({"ready": venue.last_sequence, "problems": list(venue.recovery.problems)})
    while True:
        message = connection.recv()
        if message is None:
            break
        key = str(message["key"])
        command = command_from_body(str(message["kind"]), message["body"], idempotency_key=key)
        venue.submit_with_callback(command, _reply_to(send, key))
    venue.close()
    send({"closed": True})


def _reply_to(send: Callable[[dict[str, Any]], None], key: str) -> Callable[[Outcome], None]:
    def told(answer: Outcome) -> None:  # on the venue's committer, after the commit
        send(_outcome(key, answer))

    return told


def _outcome(key: str, answer: Outcome) -> dict[str, Any]:
    if isinstance(answer, Ack):
        return {"key": key, "sequence": answer.sequence, "duplicate": answer.duplicate}
    out: dict[str, Any] = {"key": key, "error": type(answer).__name__, "problem": str(answer)}
    if isinstance(answer, InputError):
        out["field"] = answer.field
    return out


if __name__ == "__main__":
    raise SystemExit(main())
