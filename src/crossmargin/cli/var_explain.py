"""`crossmargin explain --model var`: the tail scenarios of one account and each position's and
collateral asset's component (Euler) of its ES or VaR."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from crossmargin.cli.render import console as render_console
from crossmargin.cli.render import fail, items_table, money
from crossmargin.engine.var_run import explain_var_report
from crossmargin.errors import CrossMarginError

TAIL_ROWS = 10


def explain_var(book: Path, *, account: str, preset: str | None, as_json: bool) -> None:
    from crossmargin.adapters.files import load_book
    from crossmargin.adapters.history.prices import shared_price_history
    from crossmargin.adapters.volatility import GarchFilter

    try:
        report = explain_var_report(
            load_book(book),
            account,
            preset=preset,
            history=shared_price_history(),
            volatility=GarchFilter(),
        )
    except CrossMarginError as error:
        fail(error)
        return
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    render_var_explanation(report, render_console())


def render_var_explanation(report: dict[str, Any], console: Console) -> None:
    measure = "ES" if report["measure"] == "es" else "VaR"
    level = f"{report['confidence']:.1%}"
    console.print(
        f"[bold]{escape(report['account_id'])}[/] · {measure} {level}, {report['horizon_days']}-day, "
        f"{report['method']} ({escape(report['preset'])}): IM {money(report['initial_margin_usd'])} USD, "
        f"MM {money(report['maintenance_margin_usd'])} USD"
    )
    for g in report["groups"]:
        console.print(
            f"  {g['group']} window: {g['scenarios']} scenarios, weight {g['weight']:.2f}, "
            f"VaR {money(g['var_usd'])}, ES {money(g['es_usd'])}"
        )
    table = items_table(
        f"component {measure} (sums to the requirement before the floor at 0)",
        ("position / collateral", "quantity", "mean tail P&L USD", f"component {measure} USD"),
        report,
        pnl_key="tail_mean_pnl_usd",
        share_key="component_usd",
    )
    console.print(table)
    tail = Table(title=f"worst scenarios ({len(report['tail'])} in the tail, first {TAIL_ROWS} shown)")
    for column in ("scenario", "loss USD", "moves"):
        tail.add_column(column, justify="right" if column == "loss USD" else "left")
    for t in report["tail"][:TAIL_ROWS]:
        moves = ", ".join(f"{k} {v:+.1%}" for k, v in t["price_moves"].items())
        tail.add_row(escape(t["label"]), money(t["loss_usd"]), escape(moves))
    console.print(tail)
