"""crossmargin command line.

crossmargin margin BOOK [--model cross|isolated] [--account ID ...] [--json]
crossmargin schema
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from crossmargin.adapters.files import book_json_schema, load_book
from crossmargin.engine.margin_run import MODELS, margin_report, run_margin
from crossmargin.errors import CrossMarginError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Multi-asset cross-margin risk engine.")

MAX_TABLE_ROWS = 30


def _fail(error: CrossMarginError) -> None:
    # escape: field paths like accounts[basis-trader] would otherwise be eaten as Rich markup tags.
    Console(stderr=True).print(f"[bold red]error[/]: {escape(str(error))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _table(report: dict[str, Any]) -> Table:
    accounts = report["accounts"]
    shown = sorted(
        accounts, key=lambda a: -(a["margin_ratio"] if a["margin_ratio"] is not None else float("inf"))
    )
    table = Table(
        title=f"{report['model']} margin · {report['book']} · {report['valuation_time']}",
        caption=None
        if len(accounts) <= MAX_TABLE_ROWS
        else f"{MAX_TABLE_ROWS} riskiest of {len(accounts)} accounts (use --json for all)",
    )
    for column in ("account", "equity USD", "IM USD", "MM USD", "available USD", "MM/equity", "status"):
        table.add_column(column, justify="left" if column in ("account", "status") else "right")
    for a in shown[:MAX_TABLE_ROWS]:
        ratio = a["margin_ratio"]
        if a["bankrupt"]:
            status = "[bold red]bankrupt[/]"
        elif a["below_maintenance"]:
            status = "[red]liquidate[/]"
        elif a["available_usd"] < 0:
            status = "[yellow]below IM[/]"
        else:
            status = "[green]ok[/]"
        table.add_row(
            escape(a["account_id"]),
            _money(a["equity_usd"]),
            _money(a["initial_margin_usd"]),
            _money(a["maintenance_margin_usd"]),
            _money(a["available_usd"]),
            "—" if ratio is None else f"{ratio:.1%}",
            status,
        )
    return table


def _positions_table(account: dict[str, Any], model: str) -> Table:
    table = Table(title=f"{escape(account['account_id'])}: positions and collateral")
    for column in ("instrument / asset", "quantity", "value USD", "uPnL USD", "IM USD", "MM USD"):
        table.add_column(column, justify="left" if column.startswith("instrument") else "right")
    for p in account["positions"]:
        table.add_row(
            escape(p["instrument_id"]),
            f"{p['quantity']:,.4g}",
            _money(p["value_usd"]),
            _money(p["unrealised_pnl_usd"]),
            _money(p["initial_margin_usd"]),
            _money(p["maintenance_margin_usd"]),
        )
    for c in account["collateral"]:
        table.add_row(
            f"{c['asset']} (haircut {c['haircut']:.1%})",
            f"{c['balance']:,.6g}",
            _money(c["value_usd"]),
            "",
            "",
            "",
        )
    return table


@app.command()
def margin(
    book: Annotated[Path, typer.Argument(help="Book file (YAML or JSON)")],
    model: Annotated[
        str | None, typer.Option(help=f"Margin model: {' | '.join(MODELS)} (default: the book's)")
    ] = None,
    account: Annotated[list[str] | None, typer.Option(help="Only these account ids (repeatable)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON report")] = False,
) -> None:
    """Compute initial and maintenance margin for every account of a book."""
    try:
        loaded = load_book(book)
        run = run_margin(loaded, model=model, account_ids=account)
    except CrossMarginError as error:
        _fail(error)
        return
    report = margin_report(run)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    # Wide enough for the table when piped (Rich falls back to 80 columns without a terminal).
    console = Console(width=None if sys.stdout.isatty() else 132)
    console.print(_table(report))
    if account:
        for a in report["accounts"]:
            console.print(_positions_table(a, report["model"]))


@app.command()
def schema() -> None:
    """Print the JSON Schema of the book file."""
    sys.stdout.write(json.dumps(book_json_schema(), indent=2) + "\n")


if __name__ == "__main__":
    app()
