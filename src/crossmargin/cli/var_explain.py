"""`crossmargin explain --model var`: the tail scenarios of one account and each position's and
collateral asset's component (Euler) of its ES or VaR."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from crossmargin.adapters.files import load_book
from crossmargin.engine.var_run import explain_var_report
from crossmargin.errors import CrossMarginError

TAIL_ROWS = 10


def _money(value: float) -> str:
    return f"{value:,.2f}"


def explain_var(book: Path, *, account: str, preset: str | None, as_json: bool) -> None:
    try:
        report = explain_var_report(load_book(book), account, preset=preset)
    except CrossMarginError as error:
        Console(stderr=True).print(
            f"[bold red]error[/]: {escape(str(error))}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(code=2) from None
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    render_var_explanation(report, Console(width=None if sys.stdout.isatty() else 132))


def render_var_explanation(report: dict[str, Any], console: Console) -> None:
    measure = "ES" if report["measure"] == "es" else "VaR"
    level = f"{report['confidence']:.1%}"
    console.print(
        f"[bold]{escape(report['account_id'])}[/] · {measure} {level}, {report['horizon_days']}-day, "
        f"{report['method']} ({escape(report['preset'])}): IM {_money(report['initial_margin_usd'])} USD, "
        f"MM {_money(report['maintenance_margin_usd'])} USD"
    )
    for g in report["groups"]:
        console.print(
            f"  {g['group']} window: {g['scenarios']} scenarios, weight {g['weight']:.2f}, "
            f"VaR {_money(g['var_usd'])}, ES {_money(g['es_usd'])}"
        )
    table = Table(title=f"component {measure} (sums to the requirement before the floor at 0)")
    for column in ("position / collateral", "quantity", "mean tail P&L USD", f"component {measure} USD"):
        table.add_column(column, justify="left" if column.startswith("position") else "right")
    for p in report["positions"]:
        table.add_row(
            escape(p["instrument_id"]),
            f"{p['quantity']:,.4g}",
            _money(p["tail_mean_pnl_usd"]),
            _money(p["component_usd"]),
        )
    for c in report["collateral"]:
        table.add_row(
            f"{escape(c['asset'])} collateral",
            f"{c['balance']:,.6g}",
            _money(c["tail_mean_pnl_usd"]),
            _money(c["component_usd"]),
        )
    console.print(table)
    tail = Table(title=f"worst scenarios ({len(report['tail'])} in the tail, first {TAIL_ROWS} shown)")
    for column in ("scenario", "loss USD", "moves"):
        tail.add_column(column, justify="right" if column == "loss USD" else "left")
    for t in report["tail"][:TAIL_ROWS]:
        moves = ", ".join(f"{k} {v:+.1%}" for k, v in t["price_moves"].items())
        tail.add_row(escape(t["label"]), _money(t["loss_usd"]), escape(moves))
    console.print(tail)
