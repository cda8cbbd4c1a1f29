"""`crossmargin serve`: the embedded default starts with no setup (--once, over real HTTP), and a
graceful shutdown finishes the commits in flight: every acknowledged command is in the log."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx

from crossmargin.adapters.sql import SqlEventStore
from tests.service.conftest import DESK, Database, Served, serve_in_thread, settings_for, stop


def test_serve_once_starts_on_the_embedded_default_with_no_setup(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("CROSSMARGIN_DB", None)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from crossmargin.cli.main import run; run()",  # the console script's entry
            "serve",
            "--once",
            "--book",
            str(DESK),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    for account in ("basis-trader", "vol-seller", "directional", "near-liquidation"):
        assert account in done.stdout
    assert "shut down gracefully" in done.stdout
    key_file = tmp_path / "crossmargin-admin.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().startswith("cmk_")
    assert (tmp_path / "crossmargin.db").exists()  # the SQLite log, WAL, synchronous=FULL
    assert (tmp_path / "crossmargin.db.keys").exists()  # its idempotency keys beside it (key_index)


async def _deposits(served: Served, n: int) -> list[tuple[str, int, dict]]:  # type: ignore[type-arg]
    base, key = served.url, served.admin
    async with httpx.AsyncClient(
        base_url=base, timeout=60.0, headers={"Authorization": f"Bearer {key}"}
    ) as client:

        async def one(i: int) -> tuple[str, int, dict]:  # type: ignore[type-arg]
            key = f"shutdown-{i}"
            try:
                response = await client.post(
                    "/v1/accounts/basis-trader/deposits",
                    json={"asset": "USDC", "amount": "1"},
                    headers={"Idempotency-Key": key},
                )
            except httpx.HTTPError:
                return key, 0, {}
            return key, response.status_code, response.json()

        first = served.context.venue_sequence()
        tasks = [asyncio.create_task(one(i)) for i in range(n)]
        while served.context.venue_sequence() == first:  # the first commit is through: stop now
            await asyncio.sleep(0.002)
        served.server.should_exit = True  # what SIGTERM does
        return list(await asyncio.gather(*tasks))


def _serve_once(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """`crossmargin serve --once --book DESK OPTIONS` through the console script's entry."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-c", "from crossmargin.cli.main import run; run()", "serve", "--once"]
    return subprocess.run(
        [*command, "--book", str(DESK), *options],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_serve_refuses_a_bad_rate_limit_naming_it_exit_2(tmp_path: Path) -> None:
    done = _serve_once(tmp_path, "--rate-limit", "admin=1000", "--rate-limit", "root=5")
    assert done.returncode == 2
    assert "--rate-limit" in done.stderr and "'root=5'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "crossmargin.db").exists()  # refused before anything was opened


def test_graceful_shutdown_finishes_commits_in_flight(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'venue.db'}")
    served = serve_in_thread(settings_for(database, tmp_path))
    try:
        results = asyncio.run(_deposits(served, 40))
    finally:
        stop(served)
    acked = {key: body["sequence"] for key, status, body in results if status == 201}
    assert len(acked) >= 2, results  # the first, and those in flight when the stop came
    # Nothing in between: acknowledged, refused while draining (503), or never accepted (no status).
    assert {status for _, status, _ in results} <= {201, 503, 0}, results
    store = SqlEventStore.connect(database.url)
    try:
        records = {r.sequence: r for r in store.read(1, 10_000)}
    finally:
        store.close()
    for key, sequence in acked.items():
        assert records[sequence].idempotency_key == key


def test_sigterm_on_the_console_script_finishes_commits_before_its_fast_exit(tmp_path: Path) -> None:
    """`crossmargin serve` as the console script runs it (`cli.main.run`: the app, then a fast exit
    that skips the interpreter's teardown): SIGTERM drains, the venue closes inside the app's
    lifespan, the process ends, and every acknowledged deposit is in the log."""
    import signal
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("CROSSMARGIN_DB", None)
    server = subprocess.Popen(
        [sys.executable, "-c", "from crossmargin.cli.main import run; run()", "serve", "--book", str(DESK),
         "--port", str(port), "--log-level", "warning"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(base + "/readyz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        key = (tmp_path / "crossmargin-admin.key").read_text().strip()
        acked = []
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30.0) as client:
            for i in range(20):
                response = client.post(
                    "/v1/accounts/basis-trader/deposits",
                    json={"asset": "USDC", "amount": "1"},
                    headers={"Idempotency-Key": f"term-{i}"},
                )
                assert response.status_code == 201, response.text
                acked.append(f"term-{i}")
        server.send_signal(signal.SIGTERM)
        # Uvicorn re-raises the captured signal once its graceful shutdown is done (the lifespan
        # closed the venue): the exit status says "terminated by SIGTERM", as a supervisor expects.
        status = server.wait(timeout=60)
        assert status in (0, -signal.SIGTERM), server.stderr.read().decode() if server.stderr else ""
    finally:
        if server.poll() is None:
            server.kill()
    store = SqlEventStore.connect(f"sqlite:///{tmp_path / 'crossmargin.db'}")
    try:
        found = store.find_keys(acked)
    finally:
        store.close()
    assert sorted(found) == sorted(acked)


def test_serve_refuses_a_database_url_it_cannot_open_naming_where_it_came_from_exit_2(tmp_path: Path) -> None:
    """A bad --db (or $CROSSMARGIN_DB) is named as the user gave it, and nothing is written."""
    done = _serve_once(tmp_path, "--db", "mysql://root@127.0.0.1/test")
    assert done.returncode == 2, done.stderr
    assert "error: --db: unsupported database 'mysql': sqlite or postgresql" in done.stderr
    assert "Traceback" not in done.stderr
    done = _serve_once(tmp_path, "--db", "postgresql+psycopg://postgres:s3cret@127.0.0.1:1/test")
    assert done.returncode == 2, done.stderr
    assert (
        "error: cannot open the database at postgresql+psycopg://postgres:***@127.0.0.1:1/test" in done.stderr
    )
    assert "s3cret" not in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []  # no admin key minted, no log created


def test_serve_refuses_a_schema_on_sqlite_naming_the_flag_exit_2(tmp_path: Path) -> None:
    done = _serve_once(tmp_path, "--schema", "venue")
    assert done.returncode == 2, done.stderr
    assert "error: --schema: applies to PostgreSQL only" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_serve_refuses_a_port_past_65535_exit_2(tmp_path: Path) -> None:
    """It was taken modulo 2^16 by the resolver: `--port 99999` listened on 34463, saying 99999."""
    done = _serve_once(tmp_path, "--port", "99999")
    assert done.returncode == 2, done.stderr
    assert "--port" in done.stderr and "65535" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_serve_refuses_a_bad_snapshot_setting_naming_its_flag_exit_2(tmp_path: Path) -> None:
    """The snapshot options reach `VenueSettings`, whose refusal names the flag, not the field."""
    for flag, bad in (
        ("--snapshot-busy-limit", "1.5"),
        ("--snapshot-every", "0"),
        ("--snapshot-encoder", "spawn"),
        ("--verify-on-start", "sometimes"),
    ):
        done = _serve_once(tmp_path, flag, bad)
        assert done.returncode == 2, done.stderr
        assert f"error: {flag}: must be" in done.stderr and bad in done.stderr
        assert "Traceback" not in done.stderr
        assert not (tmp_path / "crossmargin.db").exists()  # refused before anything was opened


def test_the_snapshot_settings_given_are_the_served_venue_s(tmp_path: Path) -> None:
    from crossmargin.engine.venue import Deposit, LogAudit, VenueSettings
    from crossmargin.service.command import venue_settings
    from crossmargin.service.wiring import open_venue

    venue_options = venue_settings(
        snapshot_every=5,
        snapshot_busy_limit=0.5,
        snapshot_encoder="thread",
        verify_on_start="since_snapshot",
    )
    settings = settings_for(Database(url=f"sqlite:///{tmp_path / 'v.db'}"), tmp_path, venue=venue_options)
    with open_venue(settings) as venue:
        chosen = venue.settings
        assert (chosen.snapshot_every, chosen.snapshot_busy_limit) == (5, 0.5)
        assert (chosen.snapshot_encoder, chosen.verify_on_start) == ("thread", "since_snapshot")
        for n in range(12):
            venue.execute(
                Deposit(idempotency_key=f"s{n}", account=venue.accounts()[0], asset="USDC", amount_units=1)
            )
    with open_venue(settings) as restarted:  # from its newest snapshot, the records before it audited
        snapshot = restarted.recovery.snapshot_sequence
        assert snapshot is not None and snapshot >= 5
        assert restarted.recovery.records_replayed == restarted.last_sequence - snapshot
        assert restarted.log_audit(timeout_s=60) == LogAudit(status="verified", through=snapshot)
    defaults = venue_settings(
        snapshot_every=None, snapshot_busy_limit=None, snapshot_encoder=None, verify_on_start=None
    )
    assert defaults == VenueSettings()
