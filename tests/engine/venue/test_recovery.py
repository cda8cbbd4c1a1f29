"""Start-up from the log (`engine.venue.recovery`) over the in-memory store: verifying from the newest
trusted snapshot folds only the records after it, restores the key filter the snapshot carries and
reads only the keys written after that filter's `through`, and comes up in the state a full
verification gives; the audit then verifies the rest, the restored keys included. The SQL stores
and tampered logs: tests/adapters/sql/test_corruption.py."""

from __future__ import annotations

import base64
import zlib
from collections.abc import Callable
from typing import Any

import pytest

from crossmargin.engine.journal import Snapshot, canonical_json
from crossmargin.engine.memory import MemoryEventStore
from crossmargin.engine.venue import Deposit, LogAudit, VenueSettings
from crossmargin.engine.venue.key_filter import KeyFilter
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


def _rewritten(store: MemoryEventStore, change: Callable[[dict[str, Any]], None]) -> None:
    """Each stored snapshot's document changed by `change` and stored again under a checksum of
    its own: a snapshot that verifies, as one written that way would."""
    for n, snap in enumerate(store.stored_snapshots):
        document = snap.decoded()
        change(document)
        payload = canonical_json(document)
        store.stored_snapshots[n] = Snapshot.of_payload(
            sequence=snap.sequence, record_hash=snap.record_hash, payload=payload
        )


@pytest.mark.parametrize("encoder", ["fork", "thread"])
def test_a_snapshot_carries_the_key_filter_so_a_start_reads_only_the_keys_written_after_it(
    encoder: str,
) -> None:
    """With 8 keys kept in memory, the filter's bits hold every key but the newest few when the
    snapshot at 30 is taken; the memory's keys and those waiting are hashed into the image (in
    the forked child, or on the snapshot thread: the same bytes), so it is exact through 30 and a
    start since it reads no key before it. An old key is still a duplicate with its first
    answer, and the audit finds every key of the log held. An image exact through less (here
    said to be through 20) has the keys of the records after that read, those only."""
    store = MemoryEventStore()
    settings = {
        "snapshot_every": 30,
        "snapshot_busy_limit": None,
        "recent_keys": 8,
        "snapshot_encoder": encoder,
    }
    with open_venue(store, **settings) as venue:
        for n in range(40):
            venue.execute(
                Deposit(idempotency_key=f"d{n}", account="vol-seller", asset="USDC", amount_units=n + 1)
            )
    with open_venue(store, verify_on_start="since_snapshot", recent_keys=8) as fast:
        report = fast.recovery
        assert report.snapshot_sequence == 30 and report.problems == ()
        assert (report.key_filter_through, report.keys_read) == (30, 0)
        assert fast.state_digest() == replay(store).digest()
        assert fast.log_audit(timeout_s=60) == LogAudit(status="verified", through=30)
        again = fast.execute(
            Deposit(idempotency_key="d3", account="vol-seller", asset="USDC", amount_units=4)
        )
        assert again.duplicate and again.sequence == 5  # in the restored bits, looked up in the log
    _rewritten(store, lambda document: document["key_filter"].update(through=20))
    with open_venue(store, verify_on_start="since_snapshot", recent_keys=8) as partial:
        assert (partial.recovery.key_filter_through, partial.recovery.keys_read) == (20, 10)  # 21..30
        assert partial.state_digest() == replay(store).digest()
        again = partial.execute(
            Deposit(idempotency_key="d25", account="vol-seller", asset="USDC", amount_units=26)
        )
        assert again.duplicate and again.sequence == 27


def test_a_snapshot_without_a_key_filter_has_every_key_before_it_read() -> None:
    """A snapshot written before the filter was carried (or one whose filter this build cannot
    use): every key before it is read, and the start says so."""
    store = _written(deposits=47, every=10)
    _rewritten(store, lambda document: document.pop("key_filter"))
    with open_venue(store, verify_on_start="since_snapshot") as venue:
        assert venue.recovery.keys_read == 39 and venue.recovery.key_filter_through == 0  # d0..d38
        assert venue.recovery.problems == (
            "snapshot at 40 carries no key filter: every key before it read from the log",
        )
        assert venue.execute(
            Deposit(idempotency_key="d7", account="vol-seller", asset="USDC", amount_units=8)
        ).duplicate
    _rewritten(
        store, lambda document: document.update(key_filter={**KeyFilter().image().to_dict(), "hash": "sip"})
    )
    with open_venue(store, verify_on_start="since_snapshot") as venue:
        assert venue.recovery.keys_read == 39
        (problem,) = venue.recovery.problems
        assert problem.startswith(
            "snapshot at 40: its key filter cannot be used (key filter of another layout"
        )


def test_the_audit_finds_a_key_the_restored_filter_lacks() -> None:
    """A snapshot whose filter lost its bits (and still verifies): the start trusts it, so a
    retry of an old key would go unnoticed; the audit, which reads every record before the
    snapshot, names the first key the bits lack and fails loudly."""
    store = MemoryEventStore()
    with open_venue(store, snapshot_every=30, snapshot_busy_limit=None, recent_keys=8) as venue:
        for n in range(40):
            venue.execute(
                Deposit(idempotency_key=f"d{n}", account="vol-seller", asset="USDC", amount_units=n + 1)
            )

    def wiped(document: dict[str, Any]) -> None:
        for stage in document["key_filter"]["stages"]:
            size = len(zlib.decompress(base64.b64decode(stage["bits"])))
            stage["bits"] = base64.b64encode(zlib.compress(bytes(size))).decode("ascii")

    _rewritten(store, wiped)
    with open_venue(store, verify_on_start="since_snapshot", recent_keys=8) as venue:
        audit = venue.log_audit(timeout_s=60)
        assert audit.status == "failed" and audit.through == 30
        assert audit.problem == (
            "log failed verification at sequence 1 (the snapshot's key filter lacks the key of record 2 "
            "(a retry of it would be applied again): restart with verify_on_start='full')"
        )
