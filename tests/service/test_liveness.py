"""A commit the database refuses stops the venue; the service then says so on both probes:
/readyz 503 (take it out of the load balancer) and /healthz 503 (restart it: only recovery from
the log brings the venue back), and refuses commands with 503 rather than acknowledging them. A
restart on the same database recovers every acknowledged command."""

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
