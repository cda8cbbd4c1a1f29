"""Idempotence: the same key N times has one effect and returns the original acknowledgement
(sequentially, concurrently, in one commit group, and after a restart); the same key with a
different body is refused, naming the sequence it was used at."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from crossmargin.engine.venue import Deposit, Transfer
from crossmargin.errors import IdempotencyConflictError
from tests.adapters.sql.support import connect, open_venue

ACCOUNT = "vol-seller"


def _deposit(key: str, units: int = 1_000) -> Deposit:
    return Deposit(idempotency_key=key, account=ACCOUNT, asset="USDC", amount_units=units)


def test_idempotence_same_key_many_times_one_effect(db: tuple[str, str | None]) -> None:
    with open_venue(connect(db)) as venue:
        before = venue.account(ACCOUNT).balances_units["USDC"]
        first = venue.execute(_deposit("dep-1"))
        repeats = [venue.execute(_deposit("dep-1")) for _ in range(5)]
        with ThreadPoolExecutor(8) as pool:  # concurrent retries, many in one commit group
            concurrent = [
                f.result() for f in [pool.submit(venue.execute, _deposit("dep-2")) for _ in range(32)]
            ]
        assert not first.duplicate
        assert all(
            r.duplicate and r.sequence == first.sequence and r.record_hash == first.record_hash
            for r in repeats
        )
        assert len({a.sequence for a in concurrent}) == 1
        assert sum(not a.duplicate for a in concurrent) == 1
        assert venue.account(ACCOUNT).balances_units["USDC"] == before + 2_000
        records = venue.log(1, 1_000)
        assert [r.idempotency_key for r in records].count("dep-1") == 1
        assert [r.idempotency_key for r in records].count("dep-2") == 1


def test_idempotence_same_key_other_body_refused(db: tuple[str, str | None]) -> None:
    with open_venue(connect(db)) as venue:
        ack = venue.execute(_deposit("dep-1", 1_000))
        with pytest.raises(IdempotencyConflictError) as refused:
            venue.execute(_deposit("dep-1", 1_001))
        assert refused.value.sequence == ack.sequence
        with pytest.raises(IdempotencyConflictError):
            venue.execute(
                Transfer(
                    idempotency_key="dep-1",
                    from_account=ACCOUNT,
                    to_account="directional",
                    asset="USDC",
                    amount_units=1,
                )
            )
        assert venue.last_sequence == ack.sequence  # nothing written by the refusals


def test_idempotence_survives_restart(db: tuple[str, str | None]) -> None:
    with open_venue(connect(db)) as venue:
        ack = venue.execute(_deposit("dep-1"))
        balance = venue.account(ACCOUNT).balances_units["USDC"]
    with open_venue(connect(db)) as venue:
        again = venue.execute(_deposit("dep-1"))
        assert again.duplicate
        assert (again.sequence, again.record_hash, again.as_of_ns) == (
            ack.sequence,
            ack.record_hash,
            ack.as_of_ns,
        )
        assert venue.account(ACCOUNT).balances_units["USDC"] == balance
        with pytest.raises(IdempotencyConflictError):
            venue.execute(_deposit("dep-1", 7))


def test_idempotence_beyond_the_in_memory_keys(db: tuple[str, str | None]) -> None:
    """The writer keeps at most `recent_keys` keys in memory (issue 16: a long-lived venue must
    not grow without bound); a key it dropped is found in the log, with the same answers."""
    with open_venue(connect(db), recent_keys=8) as venue:
        before = venue.account(ACCOUNT).balances_units["USDC"]
        acks = [venue.execute(_deposit(f"old-{n}", 10 + n)) for n in range(40)]
        assert len(venue._keys) <= 8
        assert "old-0" not in venue._keys
        again = venue.execute(_deposit("old-0", 10))
        assert again.duplicate
        assert (again.sequence, again.record_hash) == (acks[0].sequence, acks[0].record_hash)
        with pytest.raises(IdempotencyConflictError) as refused:
            venue.execute(_deposit("old-1", 999))
        assert refused.value.sequence == acks[1].sequence
        assert venue.account(ACCOUNT).balances_units["USDC"] == before + sum(10 + n for n in range(40))
        assert venue.last_sequence == acks[-1].sequence


def test_idempotence_fresh_keys_are_not_looked_up_in_the_log(db: tuple[str, str | None]) -> None:
    """A key the writer does not hold is looked up in the log only when the filter of the log's
    keys it let go of (engine.venue.key_filter) cannot rule it out: fresh keys, the usual case, cost
    no query, while a key dropped from memory, or written before a restart, is still found."""
    store = connect(db)
    asked: list[str] = []
    find_keys = store.find_keys

    def spying(keys: Sequence[str]) -> dict[str, tuple[int, str]]:
        asked.extend(keys)
        return find_keys(keys)

    store.find_keys = spying  # type: ignore[method-assign]
    with open_venue(store, recent_keys=8) as venue:
        acks = [venue.execute(_deposit(f"fresh-{n}", 10 + n)) for n in range(200)]
        assert len(asked) <= 5  # false positives only: ~1e-4 of fresh keys each
        asked.clear()
        again = venue.execute(_deposit("fresh-0", 10))  # dropped from memory: from the log
        assert asked == ["fresh-0"]
        assert again.duplicate and again.sequence == acks[0].sequence
    with open_venue(connect(db)) as venue:  # the filter is rebuilt from the log at start-up
        again = venue.execute(_deposit("fresh-199", 209))
        assert again.duplicate and again.sequence == acks[-1].sequence


@pytest.mark.parametrize("bad", [0, 1, -5, 2.5, True])
def test_idempotence_recent_keys_setting_is_checked(bad: object) -> None:
    from crossmargin.engine.venue import VenueSettings
    from crossmargin.errors import InputError

    with pytest.raises(InputError, match="recent_keys"):
        VenueSettings(recent_keys=bad)  # type: ignore[arg-type]
