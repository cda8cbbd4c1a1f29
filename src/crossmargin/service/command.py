"""crossmargin serve (registered by name in cli/main.py's LAZY_COMMANDS: the CLI and the service
are sibling layers and never import each other)

crossmargin serve [--book BOOK] [--db URL] [--host H] [--port P] [--admin-key-file F] [--once]
                  [--rate-limit ROLE=PER_S[/BURST] ...] [--snapshot-every N]
                  [--snapshot-busy-limit FRACTION] [--snapshot-encoder fork|thread]
                  [--verify-on-start full|since_snapshot]

Starts the margin service on the embedded default: a SQLite event log in the working directory
(`crossmargin.db`, WAL, synchronous=FULL) opened with the bundled example book
(examples/desk.yaml) as its opening state. `--db` (or CROSSMARGIN_DB) names another database,
e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test. On a database that already holds a log the
book is not read again: the venue recovers from its log.

On first start (no API keys yet) an admin key is minted and written to `--admin-key-file`
(mode 0600); use it to mint holder and risk keys (POST /v1/admin/keys). The OpenAPI document is at
/docs and /openapi.json.

Snapshots of the folded state shorten a restart (only the records after the last one are folded
again): one at least every `--snapshot-every` records (10,000), paced so that they take at most
`--snapshot-busy-limit` of the time (0.02: after one that took T seconds the next waits T / 0.02;
`VenueSettings.snapshot_busy_limit`, bench/bench_snapshots.py). A larger limit: more snapshots,
shorter restarts, more of the venue's time. `--snapshot-encoder`: where a snapshot is encoded,
"fork" (the default on Linux: a forked child with a copy-on-write image of the state, on another
CPU; the writer pauses for the fork itself, ~30 ms per GB resident, not for the encoding) or
"thread" (the venue's snapshot thread, sharing the GIL with the writer meanwhile).
`--verify-on-start`: "full" (the default) verifies the whole hash chain before serving, O(log):
~12 us a record here, minutes for tens of millions; "since_snapshot" trusts the newest snapshot
that verifies, verifies only the records after it and restores the idempotency-key filter the
snapshot carries (O(records since the snapshot), whatever the log's length), then audits the
records before it in the background, paced to 10 % of the time (`VenueSettings.verify_on_start`
and `audit_busy_limit`, `engine.venue.recovery`; a break found there is logged as an error, and
GET /readyz reports the audit).

`--once`: start, check readiness and read every account over HTTP on loopback, print them, shut
down gracefully (a smoke test of the whole service, and the README's first command).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from crossmargin.errors import CrossMarginError, InputError

if TYPE_CHECKING:  # imported when a command runs: `crossmargin --help` stays light
    from crossmargin.engine.venue import VenueSettings


def serve(
    book: Annotated[
        Path | None, typer.Option(help="Opening book for an empty log [default: examples/desk.yaml]")
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            help="SQLAlchemy URL of the event log [default: $CROSSMARGIN_DB or sqlite:///crossmargin.db]"
        ),
    ] = None,
    schema: Annotated[
        str | None,
        typer.Option(help="PostgreSQL schema of the log (one per venue); refused with a SQLite URL"),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[
        int | None,
        # Bounded: a port past 65535 was taken modulo 2^16 by the resolver, a silent other port.
        typer.Option(min=0, max=65535, help="Port, 0-65535 [default: 8000; with --once a free one]"),
    ] = None,
    admin_key_file: Annotated[
        Path, typer.Option(help="Where the first admin key is written (mode 0600)")
    ] = Path("crossmargin-admin.key"),
    once: Annotated[
        bool, typer.Option("--once", help="Start, read every account over HTTP, print, stop")
    ] = False,
    log_level: Annotated[str, typer.Option(help="debug | info | warning | error")] = "info",
    rate_limit: Annotated[
        list[str] | None,
        typer.Option(
            help="Requests per second of one key of a role: ROLE=PER_S or ROLE=PER_S/BURST, "
            "repeatable (e.g. admin=20000/40000); roles not named keep their defaults "
            "(holder 50/100, risk 5000/10000, admin 500/1000, anonymous 10/20 per address)"
        ),
    ] = None,
    snapshot_every: Annotated[
        int | None,
        typer.Option(help="Records between snapshots of the folded state, at least [default: 10000]"),
    ] = None,
    snapshot_busy_limit: Annotated[
        float | None,
        typer.Option(
            help="Largest share of time snapshots may take, in (0, 1]: after one that took T s the next "
            "waits T / this [default: 0.02]"
        ),
    ] = None,
    snapshot_encoder: Annotated[
        str | None,
        typer.Option(
            help="Where snapshots are encoded: fork (a forked child, on another CPU) or thread "
            "[default: fork on Linux, thread elsewhere]"
        ),
    ] = None,
    verify_on_start: Annotated[
        str | None,
        typer.Option(
            help="full: verify the whole log before serving; since_snapshot: only the records after "
            "the newest verified snapshot, the rest audited once serving [default: full]"
        ),
    ] = None,
) -> None:
    """Serve the venue over HTTP and WebSocket: accounts, deposits, withdrawals, fills, orders,
    prices, margin under any model, what-if, explain, the event log, a resumable stream."""
    try:
        from crossmargin.adapters.sql import DEFAULT_URL
        from crossmargin.service.limits import RateLimits, with_overrides
        from crossmargin.service.runtime import default_book, run_forever, run_once
        from crossmargin.service.settings import ServiceSettings
    except ImportError as error:  # the service extra is not installed
        sys.stderr.write(
            f"error: crossmargin serve needs the service extra ({error.name} is missing): "
            "pip install -e '.[service]'\n"
        )
        raise typer.Exit(code=2) from None

    try:
        rate_limits = with_overrides(RateLimits(), rate_limit or [])
        venue = venue_settings(
            snapshot_every=snapshot_every,
            snapshot_busy_limit=snapshot_busy_limit,
            snapshot_encoder=snapshot_encoder,
            verify_on_start=verify_on_start,
        )
    except CrossMarginError as error:
        _fail(error)
    settings = ServiceSettings(
        venue=venue,
        rate_limits=rate_limits,
        database_url=db or os.environ.get("CROSSMARGIN_DB") or DEFAULT_URL,
        schema=schema,
        book=book if book is not None else default_book(),
        admin_key_file=admin_key_file,
        host=host,
        port=port if port is not None else (0 if once else 8000),
    )
    try:
        if once:
            _print_once(run_once(settings, log_level="warning" if log_level == "info" else log_level))
        else:
            run_forever(settings, log_level=log_level)
    except InputError as error:
        # The store names the URL it was given; the user gave it as a flag or in the environment.
        given_as = (
            "--db" if db else "$CROSSMARGIN_DB" if os.environ.get("CROSSMARGIN_DB") else "the default URL"
        )
        flag = {"url": given_as, "schema": "--schema"}.get(error.field)
        _fail(InputError(flag, error.problem) if flag else error)
    except CrossMarginError as error:
        _fail(error)


def venue_settings(**given: Any) -> VenueSettings:
    """`VenueSettings` with the options given (None: the venue's default); a bad one refused
    naming its flag (`--snapshot-every`), not the field."""
    from crossmargin.engine.venue import VenueSettings
    from crossmargin.errors import InputError

    try:
        return VenueSettings(**{name: value for name, value in given.items() if value is not None})
    except InputError as error:
        raise InputError(f"--{error.field.replace('_', '-')}", error.problem) from None


def _fail(error: CrossMarginError) -> None:
    """The error (field and problem) on stderr, exit 2, as every crossmargin command does."""
    import sys

    sys.stderr.write(f"error: {error}\n")
    raise typer.Exit(code=2)


def _print_once(report: dict[str, Any]) -> None:
    """The accounts the service returned over HTTP, riskiest first; exit 1 when it was not ready."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    out = Console(width=None if sys.stdout.isatty() else 132)
    ready = report["ready"]
    if report["status"] != 200 or ready.get("status") != "ready":
        out.print(f"[bold red]not ready[/]: {escape(str(ready))} / {escape(str(report['accounts']))}")
        raise typer.Exit(code=1)
    accounts = report["accounts"]["accounts"]
    table = Table(title=f"crossmargin serve · {escape(report['url'])} · log sequence {ready['sequence']}")
    for column in ("account", "status", "equity", "IM", "MM", "available", "withdrawable"):
        table.add_column(
            column, justify="left" if column in ("account", "status", "withdrawable") else "right"
        )
    accounts.sort(key=lambda a: a["available_usd"])
    for a in accounts:
        withdrawable = (
            ", ".join(f"{w['amount']} {w['asset']}" for w in a["withdrawable"] if w["units"] > 0) or "—"
        )
        table.add_row(
            escape(a["account"]),
            a["status"],
            f"{a['equity_usd']:,.2f}",
            f"{a['initial_margin_usd']:,.2f}",
            f"{a['maintenance_margin_usd']:,.2f}",
            f"{a['available_usd']:,.2f}",
            escape(withdrawable),
        )
    out.print(table)
    out.print("served over HTTP on loopback, then shut down gracefully (crossmargin serve runs until Ctrl-C)")
