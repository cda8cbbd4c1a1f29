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
    """USD to the cent with thousands separators; a value that rounds to zero prints 0.00, never
    -0.00 (a sign on nothing reads as a loss)."""
    text = f"{value:,.2f}"
    return text[1:] if text == "-0.00" else text


def quantity(value: float) -> str:
    """A quantity or balance exactly as held: every significant digit (shortest repr that round-
    trips, so 0.001 BTC stays 0.001 and 45,000 contracts are not 4.5e+04), thousands separators,
    no exponent."""
    if value == 0.0:
        return "0"
    shortest = repr(float(value))
    if "inf" in shortest or "nan" in shortest:
        return shortest
    if "e+" in shortest:  # >= 1e16: an integer in float64, printed whole
        return f"{value:,.0f}"
    if "e-" in shortest:  # tiny: positional, with the repr's digits
        return f"{value:,.{_decimals(shortest)}f}"
    whole, _, fraction = shortest.partition(".")
    sign = "-" if whole.startswith("-") else ""
    return sign + f"{int(whole.lstrip('-')):,}" + ("" if fraction == "0" else "." + fraction)


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


def _decimals(shortest: str) -> int:
    """Decimal places a positional form needs to show every digit of `1.5e-07`-style repr text."""
    mantissa, _, exponent = shortest.lstrip("-").partition("e")
    digits = len(mantissa.replace(".", "")) - 1
    return max(0, digits - int(exponent))
