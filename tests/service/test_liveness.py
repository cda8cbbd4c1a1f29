"""A commit the database refuses stops the venue; the service then says so on both probes:
/readyz 503 (take it out of the load balancer) and /healthz 503 (restart it: only recovery from
the log brings the venue back), and refuses commands with 503 rather than acknowledging them. A
restart on the same database recovers every acknowledged command. A restart that verifies only
the records after its snapshot is ready at once and reports the audit of the rest on /readyz
and /metrics."""

from __future__ import annotations

from pathlib import Path

import httpx
import sqlalchemy as sa

from tests.service.conftest import Database, Running, settings_for, start


def _rename(database: Database, old: str, new: str) -> None:
    engine = sa.create_engine(database.url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        prefix = "" if database.schema is None else f"{database.schema}."
        connection.execute(sa.text(f"ALTER TABLE {prefix}{old} RENAME TO {new}"))
    engine.dispose()


def _deposit(running: Running, key: str) -> httpx.Response:
    return running.client.post(
        "/v1/accounts/vol-seller/deposits",
        json={"asset": "USDC", "amount": "1"},
        headers={**running.as_(running.admin), "Idempotency-Key": key},
    )


def test_a_stopped_venue_fails_liveness_and_a_restart_recovers(database: Database, tmp_path: Path) -> None:
    settings = settings_for(database, tmp_path)
    service = start(settings)
    running = next(service)
    try:
        acked = _deposit(running, "before")
        assert acked.status_code == 201, acked.text
        assert running.client.get("/healthz").status_code == 200
        _rename(database, "counter", "counter_moved")  # the next commit fails in the database
        lost = _deposit(running, "lost")
        assert lost.status_code == 503, lost.text
        health = running.client.get("/healthz")
        assert health.status_code == 503
        assert health.headers["content-type"].startswith("application/problem+json")
        assert "failed commit" in health.json()["detail"] and "restart" in health.json()["detail"]
        assert running.client.get("/readyz").status_code == 503
        assert _deposit(running, "after").status_code == 503
    finally:
        service.close()
    _rename(database, "counter_moved", "counter")
    again = start(settings)
    restarted = next(again)
    try:
        assert restarted.client.get("/healthz").status_code == 200
        ready = restarted.client.get("/readyz").json()
        assert ready["sequence"] == acked.json()["sequence"]  # the acknowledged one, nothing after
        repeat = _deposit(restarted, "before")
        assert repeat.status_code == 201 and repeat.json()["duplicate"] is True
        assert repeat.json()["sequence"] == acked.json()["sequence"]
        assert _deposit(restarted, "lost").json()["duplicate"] is False  # never committed
    finally:
        again.close()


def test_a_restart_since_its_snapshot_reports_the_log_audit_on_readyz_and_metrics(
    database: Database, tmp_path: Path
) -> None:
    """`--verify-on-start since_snapshot`: the restarted service is ready at once, and /readyz
    and /metrics say how the audit of the log before its snapshot stands until it is verified."""
    from crossmargin.engine.venue import VenueSettings

    venue = VenueSettings(snapshot_every=5, snapshot_busy_limit=None, verify_on_start="since_snapshot")
    settings = settings_for(database, tmp_path, venue=venue)
    first = start(settings)
    running = next(first)
    try:
        for n in range(12):
            assert _deposit(running, f"d{n}").status_code == 201
        assert running.client.get("/readyz").json()["log_audit"] == "not_needed"  # a new log
    finally:
        first.close()
    again = start(settings)
    restarted = next(again)
    try:
        assert restarted.context.venue.recovery.snapshot_sequence is not None
        audit = restarted.context.venue.log_audit(timeout_s=60)
        ready = restarted.client.get("/readyz").json()
        assert (ready["log_audit"], ready["log_audit_problem"]) == ("verified", None)
        assert audit.through == restarted.context.venue.recovery.snapshot_sequence
        metrics = restarted.client.get("/metrics").text
        assert "crossmargin_log_audit_failed 0.0" in metrics
        assert f"crossmargin_log_audit_verified_through {float(audit.through)}" in metrics
        repeat = _deposit(restarted, "d3")  # a key from before the snapshot: its original answer
        assert repeat.status_code == 201 and repeat.json()["duplicate"] is True
    finally:
        again.close()
