"""Start-up from the log (`engine.recovery`) over the in-memory store: verifying from the newest
trusted snapshot folds only the records after it, reads only the keys of those before it, and
comes up in the state a full verification gives; the audit then verifies the rest. The SQL stores
and tampered logs: tests/adapters/sql/test_corruption.py."""

from __future__ import annotations

import pytest

from crossmargin.engine.memory import MemoryEventStore
from crossmargin.engine.venue import Deposit, LogAudit, VenueSettings
from crossmargin.errors import InputError
from tests.adapters.sql.support import open_venue, replay


def _written(deposits: int, every: int) -> MemoryEventStore:
    store = MemoryEventStore()
    with open_venue(store, snapshot_every=every, snapshot_busy_limit=None) as venue:
        for n in range(deposits):
            venue.execute(
                Deposit(idempotency_key=f"d{n}", account="vol-seller", asset="USDC", amount_units=n + 1)
            )
    return store


def test_a_start_since_the_snapshot_folds_only_what_follows_it_and_equals_a_full_start() -> None:
    store = _written(deposits=47, every=10)  # 48 records, snapshots at 10..40 (the newest 3 kept)
    with open_venue(store) as full:
        full_digest = full.state_digest()
        assert full.recovery.records_replayed == 8
        assert full.log_audit() == LogAudit(status="not_needed", through=0)
        assert full.stats()["log_audit_verified_through"] is None  # no audit: the whole chain at start
    with open_venue(store, verify_on_start="since_snapshot") as fast:
        assert fast.recovery.snapshot_sequence == 40 and fast.recovery.records_replayed == 8
        assert fast.state_digest() == full_digest == replay(store).digest()
        assert fast.log_audit(timeout_s=60) == LogAudit(status="verified", through=40)
        stats = fast.stats()  # what /metrics reports (service/metrics.py)
        assert (
            stats["log_audit_running"],
            stats["log_audit_failed"],
            stats["log_audit_verified_through"],
        ) == (
            0,
            0,
            40,
        )
        # A key from before the snapshot (only its key was read): the original answer.
        again = fast.execute(
            Deposit(idempotency_key="d7", account="vol-seller", asset="USDC", amount_units=8)
        )
        assert again.duplicate and again.sequence == 9


def test_a_start_since_the_snapshot_without_one_verifies_everything() -> None:
    store = _written(deposits=5, every=10)  # no snapshot yet
    with open_venue(store, verify_on_start="since_snapshot") as venue:
        assert venue.recovery.snapshot_sequence is None and venue.recovery.records_replayed == 6
        assert venue.recovery.problems == ()  # nothing to trust is not a problem
        assert venue.log_audit() == LogAudit(status="not_needed", through=0)


def test_verify_on_start_is_refused_outside_its_modes_naming_it() -> None:
    with pytest.raises(InputError) as refused:
        VenueSettings(verify_on_start="sometimes")
    assert refused.value.field == "verify_on_start" and "since_snapshot" in refused.value.problem


def test_the_audit_busy_limit_is_a_fraction_named_when_refused() -> None:
    for bad in (0, 1.5, True, "half"):
        with pytest.raises(InputError) as refused:
            VenueSettings(audit_busy_limit=bad)  # type: ignore[arg-type]
        assert refused.value.field == "audit_busy_limit"


def test_a_paced_audit_verifies_the_same_and_stops_when_the_venue_closes() -> None:
    """At a share of the time so small that its first rest outlasts any test (hours), the audit
    is still running at close, which stops it at once; at 1.0 (no rest) it verifies."""
    store = _written(deposits=1_200, every=1_100)  # snapshot at 1,100: three audit pages before it
    with open_venue(store, verify_on_start="since_snapshot", audit_busy_limit=1e-9) as slow:
        assert slow.log_audit() == LogAudit(status="running", through=1_100)
        assert slow.stats()["log_audit_running"] == 1
    assert slow.log_audit(timeout_s=10) == LogAudit(status="stopped", through=1_100)  # by close
    with open_venue(store, verify_on_start="since_snapshot", audit_busy_limit=1.0) as fast:
        assert fast.log_audit(timeout_s=60) == LogAudit(status="verified", through=1_100)
