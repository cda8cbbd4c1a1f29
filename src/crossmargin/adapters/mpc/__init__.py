"""Private margin checks by three-party computation (MPyC, https://github.com/lschoe/mpyc).

run_parties(public, secrets, workdir)   three MPyC processes on localhost (-M3 -I0..2), party 0
                                        inputs the accounts, every party gets whether equity covers
                                        cross and portfolio maintenance, party 0 the requirements;
                                        returns party 0's results with the wall time of the run
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crossmargin.adapters.mpc.fixed_point import QUANTITY_LIMIT_BITS
from crossmargin.errors import CrossMarginError, InputError

if TYPE_CHECKING:  # the parties import this package: keep them off the engine's imports
    from crossmargin.engine.private_margin import AccountSecrets, PublicMarginData

PARTIES = 3
VERDICTS = ("equity_covers_maintenance", "equity_covers_portfolio_maintenance")
TIMEOUT_SECONDS = 300


class MpcRunError(CrossMarginError):
    """A party exited with an error or the run timed out."""


def _free_base_port() -> int:
    """A base port with PARTIES free ports above it (MPyC uses base + pid)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base + PARTIES < 65535 and all(_free(base + i) for i in range(PARTIES)):
            return base
    raise MpcRunError("no free local ports for the parties")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _check_limits(accounts: list[AccountSecrets]) -> None:
    """The bit lengths the parties' comparisons assume (party.py): |units| < 2**31."""
    limit = 2.0**QUANTITY_LIMIT_BITS
    for n, account in enumerate(accounts):
        for name, values in account.as_dict().items():
            if any(abs(v) >= limit for v in values):
                raise InputError(f"accounts[{n}].{name}", f"must be below 2**{QUANTITY_LIMIT_BITS} in size")


def run_parties(
    public: PublicMarginData, accounts: list[AccountSecrets], workdir: Path, *, prss: bool = False
) -> dict[str, Any]:
    """Every account of `accounts` checked in one three-party session; party 0's results (the
    owner's view: verdict and requirement), each party's seconds per account, the wall time.

    prss: MPyC's pseudorandom secret sharing for the comparisons' random bits (each bit then
    costs a modular square root); by default (`--no-prss`) two parties each share random ±1 and
    their product is the bit: 2.0 s per account against 4.2 s with PRSS, interleaved in
    bench_solvency.py (a batch of 4, load average 13)."""
    _check_limits(accounts)
    workdir.mkdir(parents=True, exist_ok=True)
    public_path, secrets_path = workdir / "public.json", workdir / "secrets.json"
    public_path.write_text(json.dumps(public.as_dict() | {"n_accounts": len(accounts)}), encoding="utf-8")
    secrets_path.write_text(json.dumps([a.as_dict() for a in accounts]), encoding="utf-8")
    base = _free_base_port()
    outputs = [workdir / f"party{pid}.json" for pid in range(PARTIES)]
    started = time.perf_counter()
    processes = []
    for pid in range(PARTIES):
        files = [str(public_path), *([str(secrets_path)] if pid == 0 else []), str(outputs[pid])]
        command = [
            sys.executable,
            "-m",
            "crossmargin.adapters.mpc.party",
            *files,
            f"-M{PARTIES}",
            f"-I{pid}",
            "--base-port",
            str(base),
            *([] if prss else ["--no-prss"]),
        ]
        processes.append(
            subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ))
        )
    errors = []
    for pid, process in enumerate(processes):
        try:
            _, stderr = process.communicate(timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
            errors.append(f"party {pid} timed out")
            continue
        if process.returncode != 0:
            errors.append(f"party {pid} exited {process.returncode}: {stderr.decode()[-500:]}")
    if errors:
        raise MpcRunError("; ".join(errors))
    results = [json.loads(path.read_text(encoding="utf-8"))["accounts"] for path in outputs]
    for n in range(len(accounts)):
        for verdict in VERDICTS:
            if len({r[n][verdict] for r in results}) != 1:
                raise MpcRunError(f"the parties opened different {verdict} for account {n}")
    return {"accounts": results[0], "wall_seconds": time.perf_counter() - started}
