"""The pipelined commit: the writer decides the next group while the committer appends the last.
Held here with a store whose append waits at a gate: a query waits for the group in commit (it
sees only what the log holds), a retry of a key still in commit is answered with the original
Ack only after that commit, a failed commit refuses the group decided behind it, and a
done-callback that queries the venue is refused instead of waiting on itself."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import pytest

from crossmargin.engine.journal import LogRecord
from crossmargin.engine.memory import MemoryEventStore
from crossmargin.engine.venue import Ack, Deposit, Venue
from crossmargin.errors import IdempotencyConflictError, StoreError, VenueUnavailableError
from tests.adapters.sql.support import open_venue

WAIT_S = 10.0


@dataclass
class GatedStore(MemoryEventStore):
    """A MemoryEventStore whose appends wait at `gate` once `closed` is set; `fail_next` makes the
    next append raise (a commit that fails)."""

    gate: threading.Event = field(default_factory=threading.Event)
    entered: threading.Event = field(default_factory=threading.Event)
    fail_next: bool = False

    def __post_init__(self) -> None:
        self.gate.set()

    def append(self, records: Sequence[LogRecord]) -> None:
        self.entered.set()
        assert self.gate.wait(WAIT_S)
        if self.fail_next:
            self.fail_next = False
            raise StoreError("disk full")
        MemoryEventStore.append(self, records)


def _deposit(key: str, units: int = 10) -> Deposit:
    return Deposit(idempotency_key=key, account="vol-seller", asset="USDC", amount_units=units)


def _hold_commits(store: GatedStore, venue: Venue) -> Future[Ack]:
    """Close the gate and submit a deposit: it is decided, folded and stuck in its commit."""
    store.gate.clear()
    store.entered.clear()
    future = venue.submit(_deposit("held"))
    assert store.entered.wait(WAIT_S)
    return future


def test_a_query_waits_for_the_group_in_commit_and_sees_only_the_log() -> None:
    store = GatedStore()
    with open_venue(store) as venue:
        before = venue.balances("USDC")["vol-seller"]
        held_before = store.last_sequence()
        held = _hold_commits(store, venue)
        seen: list[int] = []
        reader = threading.Thread(target=lambda: seen.append(venue.balances("USDC")["vol-seller"]))
        reader.start()
        reader.join(0.3)
        assert reader.is_alive() and not seen  # the deposit is folded, not yet in the log
        assert not held.done()
        stats = venue.stats()  # counters never wait for a commit (a scrape on the event loop)
        assert stats["last_sequence"] == store.last_sequence() == held_before
        store.gate.set()
        reader.join(WAIT_S)
        assert seen == [before + 10]
        assert held.result(WAIT_S).sequence == store.last_sequence()


def test_a_retry_of_a_key_in_commit_is_answered_after_that_commit() -> None:
    store = GatedStore()
    with open_venue(store) as venue:
        held = _hold_commits(store, venue)
        retry = venue.submit(_deposit("held"))
        conflict = venue.submit(_deposit("held", units=11))
        with pytest.raises(TimeoutError):
            retry.result(0.3)
        store.gate.set()
        first, again = held.result(WAIT_S), retry.result(WAIT_S)
        assert again.duplicate and again._replace(duplicate=False) == first
        with pytest.raises(IdempotencyConflictError):
            conflict.result(WAIT_S)
        assert [r.idempotency_key for r in store.records].count("held") == 1


def test_a_failed_commit_refuses_the_group_decided_behind_it() -> None:
    store = GatedStore()
    with open_venue(store) as venue:
        before = store.last_sequence()
        store.fail_next = True
        held = _hold_commits(store, venue)
        behind = venue.submit(_deposit("behind"))  # decided on a fold the log will not hold
        store.gate.set()
        for future in (held, behind):
            with pytest.raises(VenueUnavailableError):
                future.result(WAIT_S)
        assert store.last_sequence() == before
        with pytest.raises(VenueUnavailableError):
            venue.balances("USDC")


def test_a_cancelled_future_neither_stops_the_venue_nor_undoes_its_command() -> None:
    """A client may cancel a future it stops waiting for (asyncio.wrap_future does when a request
    is dropped): the command still commits, and the venue goes on answering the others."""
    store = GatedStore()
    with open_venue(store) as venue:
        held = _hold_commits(store, venue)
        behind = venue.submit(_deposit("behind"))
        assert held.cancel() and behind.cancel()
        store.gate.set()
        after = venue.submit(_deposit("after")).result(WAIT_S)
        keys = [r.idempotency_key for r in store.records]
        assert keys[-3:] == ["held", "behind", "after"] and after.sequence == store.last_sequence()


def test_a_query_from_a_done_callback_is_refused_not_deadlocked() -> None:
    store = GatedStore()
    with open_venue(store) as venue:
        outcome: list[BaseException | int] = []
        done = threading.Event()

        def query(_: Future[Ack]) -> None:
            try:
                outcome.append(venue.balances("USDC")["vol-seller"])
            except RuntimeError as error:
                outcome.append(error)
            done.set()

        _hold_commits(store, venue).add_done_callback(query)  # registered before it resolves
        store.gate.set()
        assert done.wait(WAIT_S)
        assert isinstance(outcome[0], RuntimeError) and "done-callback" in str(outcome[0])
        assert venue.balances("USDC")["vol-seller"] > 0  # from any other thread it answers


def test_submit_batch_answers_each_command_in_order_after_one_commit() -> None:
    """One future for the list: each command's Ack or refusal in order, as `submit_many`'s futures
    give them on a twin venue, and the list's records in one group."""
    commands = [
        _deposit("b1"),
        Deposit(idempotency_key="b2", account="ghost", asset="USDC", amount_units=5),  # refused
        _deposit("b1"),  # a duplicate within the list
        _deposit("b1", units=11),  # the same key, another body
        Deposit(idempotency_key="", account="vol-seller", asset="USDC", amount_units=5),  # bad key
        _deposit("b3"),
    ]
    store, twin_store = GatedStore(), MemoryEventStore()
    with open_venue(store) as venue, open_venue(twin_store) as twin:
        store.gate.clear()
        listed = venue.submit_batch(commands)
        assert not listed.done()  # answered after the commit, not before
        store.gate.set()
        answers = listed.result(WAIT_S)
        singles = [f.exception(WAIT_S) or f.result() for f in twin.submit_many(commands)]
        assert [type(a) for a in answers] == [type(s) for s in singles]
        assert [str(a) for a in answers if not isinstance(a, Ack)] == [
            str(s) for s in singles if not isinstance(s, Ack)
        ]
        acked = [a for a in answers if isinstance(a, Ack)]
        assert [a.sequence for a in acked] == [s.sequence for s in singles if isinstance(s, Ack)]
        assert acked[1].duplicate and acked[1].sequence == acked[0].sequence
        assert store.records == twin_store.records  # the same log, byte for byte
        assert venue.submit_batch([]).result(WAIT_S) == []


def test_submit_with_callback_answers_each_command_after_its_commit_as_submit_does() -> None:
    """No future: each callback is called once, after the commit, on the committer's thread, with
    the Ack or refusal `submit` gives on a twin venue (a bad key is refused at once, on the
    caller's thread); the log is the same byte for byte."""
    commands = [
        _deposit("c1"),
        Deposit(idempotency_key="c2", account="ghost", asset="USDC", amount_units=5),  # refused
        _deposit("c1"),  # a duplicate
        _deposit("c1", units=11),  # the same key, another body
        Deposit(idempotency_key="", account="vol-seller", asset="USDC", amount_units=5),  # bad key
        _deposit("c3"),
    ]
    told: dict[int, list[tuple[object, str]]] = {i: [] for i in range(len(commands))}
    all_told = threading.Event()

    def callback(i: int) -> Callable[[Ack | BaseException], None]:
        def tell(answer: Ack | BaseException) -> None:
            told[i].append((answer, threading.current_thread().name))
            if all(told.values()):
                all_told.set()

        return tell

    store, twin_store = GatedStore(), MemoryEventStore()
    with open_venue(store) as venue, open_venue(twin_store) as twin:
        store.gate.clear()
        for i, command in enumerate(commands):
            venue.submit_with_callback(command, callback(i))
        assert [i for i, t in told.items() if t] == [4]  # only the bad key, before any commit
        store.gate.set()
        assert all_told.wait(WAIT_S)
        singles = [f.exception(WAIT_S) or f.result() for f in (twin.submit(c) for c in commands)]
        answers = [told[i][0][0] for i in range(len(commands))]
        assert all(len(t) == 1 for t in told.values())  # once each
        assert [told[i][0][1] for i in range(len(commands))] == ["venue-committer"] * 4 + [
            threading.current_thread().name,
            "venue-committer",
        ]
        assert [type(a) for a in answers] == [type(s) for s in singles]
        assert [str(a) for a in answers if not isinstance(a, Ack)] == [
            str(s) for s in singles if not isinstance(s, Ack)
        ]
        assert isinstance(answers[3], IdempotencyConflictError)
        acked = [a for a in answers if isinstance(a, Ack)]
        assert [a.sequence for a in acked] == [s.sequence for s in singles if isinstance(s, Ack)]
        assert acked[1].duplicate and acked[1].sequence == acked[0].sequence
        assert store.records == twin_store.records


def test_a_raising_callback_is_logged_and_the_venue_goes_on_answering(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = GatedStore()
    with open_venue(store) as venue:

        def broken(_: Ack | BaseException) -> None:
            raise ZeroDivisionError("client bug")

        venue.submit_with_callback(_deposit("broken"), broken)
        after = venue.submit(_deposit("after")).result(WAIT_S)
        keys = [r.idempotency_key for r in store.records]
        assert keys[-2:] == ["broken", "after"] and after.sequence == store.last_sequence()
    assert any("callback raised" in r.getMessage() and r.exc_info for r in caplog.records)


def test_a_callback_on_a_closed_venue_is_told_it_is_unavailable() -> None:
    venue = open_venue(MemoryEventStore())
    venue.close()
    told: list[Ack | BaseException] = []
    venue.submit_with_callback(_deposit("late"), told.append)
    assert len(told) == 1 and isinstance(told[0], VenueUnavailableError)
