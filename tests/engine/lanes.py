"""Running one command stream through two venues, a lane on and off (tests of the lanes:
test_deposit_lane.py, test_fill_lane.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from crossmargin.engine.memory import MemoryEventStore
from crossmargin.engine.venue import Venue
from crossmargin.engine.venue.commands import Command, Deposit, UpdatePrices
from tests.adapters.sql.support import open_venue

Outcomes = list[list[tuple[str, ...]]]
# One command of a stream from its key, hypothesis' draw and the commands sent before it.
DrawCommand = Callable[[str, Any, list[Command]], Command]


def grouped_stream(draw: Any, one: DrawCommand, *, max_groups: int) -> list[list[Command]]:
    """Up to `max_groups` groups (each one submit_many) of 1-12 commands drawn by `one`, keyed
    k{group}-{n}."""
    groups: list[list[Command]] = []
    sent: list[Command] = []
    for g in range(draw(st.integers(1, max_groups))):
        group: list[Command] = []
        for n in range(draw(st.integers(1, 12))):
            command = one(f"k{g}-{n}", draw, sent)
            group.append(command)
            sent.append(command)
        groups.append(group)
    return groups


def outcome(future: Any) -> tuple[str, ...]:
    """A command's answer as plain strings: the refusal (type and message) or the Ack's fields."""
    error = future.exception(timeout=10)
    if error is not None:
        return (type(error).__name__, str(error))
    ack = future.result()
    return ("ack", str(ack.sequence), ack.kind, str(ack.as_of_ns), ack.record_hash, str(ack.duplicate))


def run_stream(groups: list[list[Command]], **settings: object) -> tuple[Outcomes, MemoryEventStore, Venue]:
    """Each group one `submit_many` on a desk venue with `settings`; the answers, the store and the
    (open) venue."""
    store = MemoryEventStore()
    venue = open_venue(store, snapshot_every=10**9, **settings)
    outcomes = []
    for group in groups:
        futures = venue.submit_many(group)
        outcomes.append([outcome(f) for f in futures])
    return outcomes, store, venue


def assert_same_runs(groups: list[list[Command]], setting: str) -> tuple[Venue, Venue]:
    """The stream with `setting` on and off: the same answers, the same log (bytes, hashes,
    postings, actors) and the same state digest. Returns both venues (closed)."""
    on_outcomes, on_store, on_venue = run_stream(groups, **{setting: True})
    off_outcomes, off_store, off_venue = run_stream(groups, **{setting: False})
    try:
        assert on_outcomes == off_outcomes
        assert on_store.records == off_store.records
        assert on_venue.state_digest() == off_venue.state_digest()
    finally:
        on_venue.close()
        off_venue.close()
    return on_venue, off_venue


def price_move(key: str, draw: Any) -> Command:
    """A BTC index move big enough to call or liquidate a desk account, or to heal one."""
    btc = draw(st.sampled_from([40_000.0, 60_000.0, 88_000.0, 120_000.0]))
    return UpdatePrices(idempotency_key=key, index_prices={"BTC": btc})


def top_up(key: str, draw: Any, traders: tuple[str, ...]) -> Command:
    """A USDC deposit of one unit to a million USDC to one of `traders`."""
    return Deposit(
        idempotency_key=key,
        account=draw(st.sampled_from(traders)),
        asset="USDC",
        amount_units=draw(st.integers(1, 10**12)),
    )
