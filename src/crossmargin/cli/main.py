"""crossmargin command line.

crossmargin margin BOOK [--model cross|isolated] [--account ID ...] [--prices QUOTES] [--json]
crossmargin schema
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from crossmargin.adapters.files import book_json_schema, load_book
from crossmargin.cli.backtest import backtest
from crossmargin.cli.render import console as render_console
from crossmargin.cli.render import fail, items_table, money
from crossmargin.cli.var_explain import explain_var
from crossmargin.core.margin.presets import PORTFOLIO_PRESETS, TIER_PRESETS
from crossmargin.engine.margin_run import MODELS, margin_report, run_margin
from crossmargin.engine.portfolio_run import compare_report, explain_report
from crossmargin.engine.priced_run import load_snapshot, priced_margin_report, run_priced_margin
from crossmargin.errors import CrossMarginError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Multi-asset cross-margin risk engine.")

MAX_TABLE_ROWS = 30


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
    priced = bool(accounts) and "price_status" in accounts[0]  # --prices: the oracle's status
    columns = ("account", "equity USD", "IM USD", "MM USD", "available USD", "MM/equity", "status")
    for column in columns + (("prices",) if priced else ()):
        table.add_column(column, justify="left" if column in ("account", "status", "prices") else "right")
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
            money(a["equity_usd"]),
            money(a["initial_margin_usd"]),
            money(a["maintenance_margin_usd"]),
            money(a["available_usd"]),
            "—" if ratio is None else f"{ratio:.1%}",
            status,
            *(
                (a["price_status"] if a["price_status"] == "ok" else f"[yellow]{a['price_status']}[/]",)
                if priced
                else ()
            ),
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
            money(p["value_usd"]),
            money(p["unrealised_pnl_usd"]),
            money(p["initial_margin_usd"]),
            money(p["maintenance_margin_usd"]),
        )
    for c in account["collateral"]:
        table.add_row(
            f"{c['asset']} (haircut {c['haircut']:.1%})",
            f"{c['balance']:,.6g}",
            money(c["value_usd"]),
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
    preset: Annotated[
        str | None,
        typer.Option(
            help=f"portfolio: {' | '.join(PORTFOLIO_PRESETS)}; cross/isolated: {' | '.join(TIER_PRESETS)}"
        ),
    ] = None,
    account: Annotated[list[str] | None, typer.Option(help="Only these account ids (repeatable)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON report")] = False,
    prices: Annotated[
        Path | None,
        typer.Option(
            help="Oracle quote file (CSV or Parquet, as `oracle replay` reads): margin on its prices"
        ),
    ] = None,
) -> None:
    """Compute initial and maintenance margin for every account of a book."""
    from crossmargin.adapters.feeds import QuoteFile
    from crossmargin.adapters.history.prices import shared_price_history
    from crossmargin.adapters.volatility import GarchFilter

    history, volatility = shared_price_history(), GarchFilter()  # read only by --model var
    try:
        loaded = load_book(book)
        if prices is None:
            run = run_margin(
                loaded,
                model=model,
                preset=preset,
                account_ids=account,
                history=history,
                volatility=volatility,
            )
            report = margin_report(run)
        else:
            snapshot = load_snapshot(QuoteFile(path=prices))
            report = priced_margin_report(
                run_priced_margin(
                    loaded,
                    snapshot,
                    model=model,
                    preset=preset,
                    account_ids=account,
                    history=history,
                    volatility=volatility,
                )
            )
    except CrossMarginError as error:
        fail(error)
        return
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    console = render_console()
    console.print(_table(report))
    if account:
        for a in report["accounts"]:
            console.print(_positions_table(a, report["model"]))


@app.command()
def explain(
    book: Annotated[Path, typer.Argument(help="Book file (YAML or JSON)")],
    account: Annotated[str, typer.Option(help="Account id")],
    preset: Annotated[
        str | None,
        typer.Option(help=f"Portfolio preset: {' | '.join(PORTFOLIO_PRESETS)} (default: the book's)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON explanation")] = False,
    scenarios: Annotated[bool, typer.Option(help="Also list every scenario's P&L")] = False,
    model: Annotated[str, typer.Option(help="portfolio | var (VaR/ES: component ES per item)")] = "portfolio",
) -> None:
    """Explain one account's portfolio margin: the scenario that drove it, each position's and
    collateral asset's P&L there, the per-underlying split and every add-on. With --model var:
    the tail scenarios and each position's and asset's component of ES (or VaR)."""
    if model == "var":
        explain_var(book, account=account, preset=preset, as_json=as_json)
        return
    try:
        report = explain_report(load_book(book), account, preset=preset)
    except CrossMarginError as error:
        fail(error)
        return
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    console = render_console()
    worst = report["worst_scenario"]
    console.print(
        f"[bold]{escape(report['account_id'])}[/] · portfolio margin ({escape(report['preset'])}): "
        f"IM {money(report['initial_margin_usd'])} USD, MM {money(report['maintenance_margin_usd'])} USD"
    )
    console.print(
        f"grid {money(report['grid_usd'])} (worst: {escape(worst['label'])}, total P&L "
        f"{money(worst['total_pnl_usd'])}), min-delta floor {money(report['min_delta_usd'])}"
    )
    table = items_table(
        "in the worst scenario",
        ("position / collateral", "quantity", "scenario P&L USD", "share of grid USD"),
        report,
        pnl_key="scenario_pnl_usd",
        share_key="contribution_usd",
    )
    console.print(table)
    split = Table(title="per underlying (worst scenario)")
    split.add_column("underlying")
    split.add_column("P&L USD", justify="right")
    for name, value in report["per_underlying"].items():
        split.add_row(escape(name), money(value))
    console.print(split)
    addons = Table(title="add-ons")
    addons.add_column("add-on")
    addons.add_column("USD", justify="right")
    for name, value in report["addons"].items():
        if value:
            addons.add_row(name, money(value))
    console.print(addons)
    if scenarios:
        grid = Table(title="all scenarios")
        for column in ("scenario", "P&L USD", "counted loss USD"):
            grid.add_column(column, justify="left" if column == "scenario" else "right")
        for sc in report["scenarios"]:
            grid.add_row(escape(sc["label"]), money(sc["pnl_usd"]), money(sc["loss_usd"]))
        console.print(grid)


@app.command()
def compare(
    book: Annotated[Path, typer.Argument(help="Book file (YAML or JSON)")],
    account: Annotated[str, typer.Option(help="Account id")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON comparison")] = False,
) -> None:
    """What one account's portfolio costs under isolated, cross, each venue's tiers, each
    portfolio-margin preset and the sensitivity model, with the saving over isolated."""
    from crossmargin.adapters.history.prices import shared_price_history

    history = shared_price_history()  # the VaR/ES rows, when the shared daily closes are there
    try:
        report = compare_report(load_book(book), account, history=history if history.is_available() else None)
    except CrossMarginError as error:
        fail(error)
        return
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    table = Table(title=f"{escape(account)} · {escape(report['book'])}")
    for column in ("model", "preset", "IM USD", "MM USD", "saving vs isolated"):
        table.add_column(column, justify="left" if column in ("model", "preset") else "right")
    for r in report["rows"]:
        pct = r["saving_vs_isolated_pct"]
        saving = money(r["saving_vs_isolated_usd"]) + ("" if pct is None else f" ({pct:+.0%})")
        table.add_row(
            r["model"],
            r["preset"] or "—",
            money(r["initial_margin_usd"]),
            money(r["maintenance_margin_usd"]),
            saving,
        )
    for skipped in report.get("skipped", []):
        table.caption = f"{skipped['model']} not computed: {skipped['reason']} (set $CROSSMARGIN_DATA)"
    render_console().print(table)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the book file."""
    sys.stdout.write(json.dumps(book_json_schema(), indent=2) + "\n")


from crossmargin.cli.oracle import app as oracle_app  # noqa: E402  (sub-app, registered last)

app.add_typer(oracle_app, name="oracle")


app.command()(backtest)  # crossmargin backtest: cli/backtest.py


from crossmargin.cli.simulate import simulate  # noqa: E402  (crossmargin simulate: cli/simulate.py)

app.command()(simulate)

if __name__ == "__main__":
    app()
