"""Snapshots paced to a share of the venue's time (`VenueSettings.snapshot_busy_limit`): a
snapshot is O(state) and holds the GIL the writer needs, so at a fixed record interval its cost
grows with the venue (bench/bench_snapshots.py); paced, the next waits for the last one's cost
divided by the limit. Restart from a paced snapshot equals a replay of the whole log, whether a
forked child or the snapshot thread encoded it."""

from __future__ import annotations

import itertools
import json
import os
import resource
import sys

import pytest

from crossmargin.engine.journal import canonical_json
from crossmargin.engine.memory import MemoryEventStore
from crossmargin.engine.venue import Deposit, VenueSettings
from crossmargin.engine.venue.settings import default_snapshot_encoder
from crossmargin.errors import InputError
from tests.adapters.sql.support import open_venue, replay

EVERY = 10
ENCODERS = ["fork", "thread"] if hasattr(os, "fork") else ["thread"]
DEPOSITS = 60


def _deposits(store: MemoryEventStore, **settings: object) -> list[int]:
    """DEPOSITS deposits one at a time, a snapshot asked for every EVERY records; the sequences
    of the snapshots written (all kept)."""
    with open_venue(store, snapshot_every=EVERY, snapshots_kept=DEPOSITS, **settings) as venue:
        for n in range(DEPOSITS):
            venue.execute(
                Deposit(idempotency_key=f"d{n}", account="vol-seller", asset="USDC", amount_units=n + 1)
            )
    assert venue.stats()["snapshot_seconds"] > 0.0  # closed: every snapshot asked for is written
    return sorted(s.sequence for s in store.stored_snapshots)


def test_unpaced_snapshots_come_every_interval_and_paced_ones_wait_for_their_cost() -> None:
    """Unpaced: one every EVERY records (6 in 60). Paced with a limit so small that the pause
    after one snapshot (its cost / 1e-9, hours) outlasts the run: the first only."""
    unpaced = _deposits(MemoryEventStore(), snapshot_busy_limit=None)
    assert len(unpaced) == DEPOSITS // EVERY
    assert all(b - a == EVERY for a, b in itertools.pairwise(unpaced))
    paced = _deposits(MemoryEventStore(), snapshot_busy_limit=1e-9)
    assert paced == unpaced[:1]


@pytest.mark.parametrize("encoder", ENCODERS)
def test_a_restart_from_a_paced_snapshot_equals_a_replay_of_the_log(encoder: str) -> None:
    """The snapshot, encoded in pieces (in a forked child or on the snapshot thread), is
    canonical JSON (what its hash is taken over), and a venue restarted from it holds what a
    replay of the whole log holds."""
    store = MemoryEventStore()
    (snapshot,) = _deposits(store, snapshot_busy_limit=1e-9, snapshot_encoder=encoder)
    (stored,) = store.stored_snapshots
    assert stored.verifies() and stored.payload == canonical_json(json.loads(stored.payload))
    with open_venue(store) as venue:
        assert venue.recovery.snapshot_sequence == snapshot < venue.last_sequence == DEPOSITS + 1  # + genesis
        assert venue.state_digest() == replay(store).digest()


@pytest.mark.skipif("fork" not in ENCODERS, reason="no os.fork on this platform")
def test_a_forked_child_writes_the_snapshots_the_thread_writes_byte_for_byte() -> None:
    """Six unpaced snapshots each way on twin venues (the same commands, the same clock): the
    same payloads, so the encoder is a matter of where the work runs, not of what is stored."""
    forked, threaded = MemoryEventStore(), MemoryEventStore()
    _deposits(forked, snapshot_busy_limit=None, snapshot_encoder="fork")
    _deposits(threaded, snapshot_busy_limit=None, snapshot_encoder="thread")
    assert len(forked.stored_snapshots) == DEPOSITS // EVERY
    assert [s.payload for s in forked.stored_snapshots] == [s.payload for s in threaded.stored_snapshots]


@pytest.mark.skipif("fork" not in ENCODERS, reason="no os.fork on this platform")
def test_a_fork_that_fails_falls_back_to_the_thread_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    """No descriptor to spare (RLIMIT_NOFILE at 3: no new one, so no pipe, can be made): each
    snapshot is encoded on the snapshot thread instead, the same bytes, the failure counted and
    logged; the venue goes on."""
    store, reference = MemoryEventStore(), MemoryEventStore()
    _deposits(reference, snapshot_busy_limit=None, snapshot_encoder="thread")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (3, hard))
    try:
        with open_venue(
            store, snapshot_every=EVERY, snapshots_kept=DEPOSITS, snapshot_busy_limit=None
        ) as venue:
            for n in range(DEPOSITS):
                venue.execute(
                    Deposit(idempotency_key=f"d{n}", account="vol-seller", asset="USDC", amount_units=n + 1)
                )
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert venue.stats()["snapshot_fork_failures"] == DEPOSITS // EVERY
    assert [s.payload for s in store.snapshots()] == [s.payload for s in reference.snapshots()]
    assert sum("fork failed" in r.getMessage() for r in caplog.records) == DEPOSITS // EVERY


def test_the_default_encoder_forks_on_linux_only() -> None:
    expected = "fork" if sys.platform == "linux" else "thread"
    assert VenueSettings().snapshot_encoder == default_snapshot_encoder() == expected


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, None])
def test_snapshots_kept_other_than_an_integer_from_1_is_refused_naming_the_setting(bad: object) -> None:
    with pytest.raises(InputError) as refused:
        VenueSettings(snapshots_kept=bad)  # type: ignore[arg-type]
    assert refused.value.field == "snapshots_kept"


@pytest.mark.parametrize("bad", ["process", "", None, 1])
def test_an_unknown_encoder_is_refused_naming_the_setting(bad: object) -> None:
    with pytest.raises(InputError) as refused:
        VenueSettings(snapshot_encoder=bad)  # type: ignore[arg-type]
    assert refused.value.field == "snapshot_encoder"


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, True, "2%", float("nan")])
def test_a_busy_limit_outside_0_to_1_is_refused_naming_the_setting(bad: object) -> None:
    with pytest.raises(InputError) as refused:
        VenueSettings(snapshot_busy_limit=bad)  # type: ignore[arg-type]
    assert refused.value.field == "snapshot_busy_limit"


@pytest.mark.parametrize("good", [None, 1, 0.5, 1e-9])
def test_a_busy_limit_in_0_to_1_or_none_is_taken(good: float | None) -> None:
    assert VenueSettings(snapshot_busy_limit=good).snapshot_busy_limit == good
