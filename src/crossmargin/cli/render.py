"""Rendering shared by the commands: money, errors, a console wide enough when piped, and the
positions-and-collateral table every explanation prints."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from crossmargin.errors import CrossMarginError


def money(value: float) -> str:
    return f"{value:,.2f}"


def fail(error: CrossMarginError) -> NoReturn:
    """Print the error (file, field, problem) to stderr and exit 2."""
    # escape: field paths like accounts[basis-trader] would otherwise be eaten as Rich markup tags.
    Console(stderr=True).print(f"[bold red]error[/]: {escape(str(error))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def console() -> Console:
    # Wide enough for tables when piped (Rich falls back to 80 columns without a terminal).
    return Console(width=None if sys.stdout.isatty() else 132)


def items_table(
    title: str, columns: Sequence[str], report: dict[str, Any], *, pnl_key: str, share_key: str
) -> Table:
    """One row per position, then per collateral asset: id, quantity, `pnl_key`, `share_key`."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="left" if column.startswith("position") else "right")
    for p in report["positions"]:
        table.add_row(
            escape(p["instrument_id"]), f"{p['quantity']:,.4g}", money(p[pnl_key]), money(p[share_key])
        )
    for c in report["collateral"]:
        table.add_row(
            f"{escape(c['asset'])} collateral", f"{c['balance']:,.6g}", money(c[pnl_key]), money(c[share_key])
        )
    return table
