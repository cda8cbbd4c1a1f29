"""Rendering shared by the commands: money, errors, a console wide enough when piped, and the
positions-and-collateral table every explanation prints."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from crossmargin.errors import CrossMarginError


def money(value: float) -> str:
    """USD to the cent with thousands separators; a value that rounds to zero prints 0.00, never
    -0.00 (a sign on nothing reads as a loss)."""
    text = f"{value:,.2f}"
    return text[1:] if text == "-0.00" else text


def whole_dollars(value: float) -> str:
    """USD rounded to the dollar (narrow terminals), never -0."""
    text = f"{value:,.0f}"
    return text[1:] if text == "-0" else text


def quantity(value: float) -> str:
    """A quantity or balance exactly as held: the shortest decimal that reads back as the same
    float (so 0.001 BTC stays 0.001 and 45,000 contracts are not 4.5e+04), positional (no
    exponent), thousands separators, no trailing `.0`."""
    if not math.isfinite(value):
        return repr(float(value))
    if value == 0.0:
        return "0"
    text = format(Decimal(repr(float(value))), ",f")
    return text[:-2] if text.endswith(".0") else text


def fail(error: CrossMarginError) -> NoReturn:
    """Print the error (file, field, problem) to stderr and exit 2."""
    # escape: field paths like accounts[basis-trader] would otherwise be eaten as Rich markup tags.
    Console(stderr=True).print(f"[bold red]error[/]: {escape(str(error))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def console() -> Console:
    # Wide enough for tables when piped (Rich falls back to 80 columns without a terminal), unless
    # COLUMNS says how wide (Rich reads it): tables then fit that width (main._table).
    return Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 132)


def items_table(
    title: str, columns: Sequence[str], report: dict[str, Any], *, pnl_key: str, share_key: str
) -> Table:
    """One row per position, then per collateral asset: id, quantity, `pnl_key`, `share_key`."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="left" if column.startswith("position") else "right")
    for p in report["positions"]:
        table.add_row(
            escape(p["instrument_id"]), quantity(p["quantity"]), money(p[pnl_key]), money(p[share_key])
        )
    for c in report["collateral"]:
        table.add_row(
            f"{escape(c['asset'])} collateral", quantity(c["balance"]), money(c[pnl_key]), money(c[share_key])
        )
    return table
