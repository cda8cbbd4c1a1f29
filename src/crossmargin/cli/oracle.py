"""crossmargin oracle: the price layer from the command line.

crossmargin oracle run --asset BTC --source binance --source okx ... [--server URL] [--tick-ms 250]
crossmargin oracle replay QUOTES.csv|.parquet [--json] [--tick-ms N]
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from crossmargin.cli.render import console as render_console
from crossmargin.cli.render import fail
from crossmargin.core.oracle import NS_PER_MS, OracleParams
from crossmargin.engine.oracle_replay import param_table, price_message, replay
from crossmargin.errors import CrossMarginError, InputError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Robust multi-source oracle prices.")


def _params(min_sources: int, max_age_ms: int, max_move: float, confirm_updates: int) -> OracleParams:
    return OracleParams(
        min_sources=min_sources,
        max_age_ns=max_age_ms * NS_PER_MS,
        max_move_fraction=max_move,
        confirm_updates=confirm_updates,
    )


MinSources = Annotated[int, typer.Option(help="Minimum accepted sources, else the price is stale")]
MaxAgeMs = Annotated[int, typer.Option(help="A source older than this (ms) is dropped")]
MaxMove = Annotated[float, typer.Option(help="Circuit breaker: largest move per interval, fraction")]
ConfirmUpdates = Annotated[int, typer.Option(help="Consecutive updates that confirm a held move")]


@app.command()
def run(
    asset: Annotated[list[str], typer.Option(help="Asset to price (repeatable)")],
    source: Annotated[list[str], typer.Option(help="Source to listen to (repeatable)")],
    server: Annotated[str, typer.Option(help="NATS server URL")] = "nats://127.0.0.1:4222",
    tick_ms: Annotated[int, typer.Option(help="Update and publish every N ms")] = 250,
    duration_s: Annotated[float, typer.Option(help="Stop after N seconds (0: run until Ctrl-C)")] = 0.0,
    min_sources: MinSources = 3,
    max_age_ms: MaxAgeMs = 10_000,
    max_move: MaxMove = 0.05,
    confirm_updates: ConfirmUpdates = 3,
) -> None:
    """Subscribe to prices.<source>.<asset> on NATS; publish oracle.<asset> and oracle.events."""
    from crossmargin.adapters.clock import SystemClock
    from crossmargin.adapters.feeds.nats_feed import NatsOracle  # nats-py: only for this command

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        params = _params(min_sources, max_age_ms, max_move, confirm_updates)
        table = param_table(tuple(asset), params)
        oracle = NatsOracle(
            assets=tuple(asset), sources=tuple(source), params=table, clock_ns=SystemClock().now_ns
        )
    except CrossMarginError as error:
        fail(error)
    from nats.errors import Error as NatsError

    try:
        asyncio.run(oracle.run(server, tick_ns=tick_ms * NS_PER_MS, duration_s=duration_s or None))
    except KeyboardInterrupt:
        pass
    except (OSError, TimeoutError, NatsError) as error:
        # nats-py names a refused connection NoServersError: the --server that was given, said so.
        problem = str(error) or type(error).__name__
        fail(InputError(f"--server {server}", f"no NATS server answers ({problem})"))
    Console(stderr=True).print(
        f"{oracle.updates} updates, {oracle.received} quotes received, {oracle.ignored} ignored"
    )


@app.command("replay")
def replay_command(
    quotes: Annotated[Path, typer.Argument(help="Quote file (CSV or Parquet)")],
    tick_ms: Annotated[int, typer.Option(help="Update every N ms (0: at every quote time)")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print final prices and events as JSON")] = False,
    min_sources: MinSources = 3,
    max_age_ms: MaxAgeMs = 10_000,
    max_move: MaxMove = 0.05,
    confirm_updates: ConfirmUpdates = 3,
) -> None:
    """Replay a quote file through the oracle and print the final prices and liquidation pauses."""
    from crossmargin.adapters.feeds import QuoteFile

    try:
        table = QuoteFile(path=quotes).quote_table()
        params = _params(min_sources, max_age_ms, max_move, confirm_updates)
        steps = list(replay(table, params=params, tick_ns=tick_ms * NS_PER_MS or None))
    except CrossMarginError as error:
        fail(error)
    if not steps:
        Console(stderr=True).print("[bold red]error[/]: the quote file has no rows")
        raise typer.Exit(code=2)
    last = steps[-1].update
    prices = [price_message(i, name, last) for i, name in enumerate(table.assets)]
    pauses = [
        {"asset": p.asset, "as_of_ns": p.as_of_ns, "reason": p.reason, "age_ms": p.age_ms}
        for step in steps
        for p in step.pauses
    ]
    report: dict[str, Any] = {"quotes": len(table), "updates": len(steps), "prices": prices, "pauses": pauses}
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    view = Table(title=f"oracle replay · {escape(str(quotes))} · {len(table)} quotes, {len(steps)} updates")
    for column in ("asset", "price USD", "status", "age ms", "band USD", "sources", "add-on"):
        view.add_column(column, justify="left" if column in ("asset", "status") else "right")
    for p in prices:
        band = "—" if p["band_low_usd"] is None else f"{p['band_low_usd']:,.6g} – {p['band_high_usd']:,.6g}"
        view.add_row(
            escape(p["asset"]),
            "—" if p["price_usd"] is None else f"{p['price_usd']:,.6g}",
            p["status"],
            f"{p['age_ms']:,.0f}",
            band,
            str(p["n_sources"]),
            f"{p['uncertainty_addon']:.2%}",
        )
    render_console().print(view)
    Console().print(f"{len(pauses)} liquidation-pause events")
