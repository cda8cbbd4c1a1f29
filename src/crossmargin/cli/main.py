"""crossmargin command line.

crossmargin margin BOOK [--model cross|isolated|portfolio|sensitivity|var] [--preset NAME]
                        [--account ID ...] [--prices QUOTES] [--levels] [--json]
crossmargin explain | compare | schema | backtest | simulate | oracle ...

Start-up: `crossmargin --help` imports Typer and Rich only. Each command imports the engine
modules it uses inside its body; the help texts name models and presets from `cli.names` (no
engine import); `backtest`, `simulate` and the `oracle` group are loaded on first use by
`LazyGroup` (their one-line help is repeated here and checked against theirs by the tests).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

try:
    from typer import _click as click  # Typer >= 0.2x vendors Click: its classes are these
except ImportError:  # pragma: no cover - older Typer runs on Click itself
    import click  # type: ignore[no-redef]

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from crossmargin.cli.margin_table import riskiest_report
from crossmargin.cli.names import MODELS, PORTFOLIO_PRESET_NAMES, TIER_PRESET_NAMES
from crossmargin.cli.render import console as render_console
from crossmargin.cli.render import fail, items_table, money, quantity, whole_dollars
from crossmargin.errors import CrossMarginError, InputError

if TYPE_CHECKING:
    from crossmargin.engine.margin_run import CrowdingHistory


@dataclass(frozen=True, slots=True)
class LazyCommand:
    """A command (function or Typer group) defined in `module`, imported only when invoked."""

    module: str
    attribute: str
    help: str  # what `crossmargin --help` lists, without importing `module`


LAZY_COMMANDS: dict[str, LazyCommand] = {
    "backtest": LazyCommand(
        "crossmargin.cli.backtest",
        "backtest",
        "Back-test margin models: exceedances, Kupiec and Christoffersen p-values, worst shortfall,\n"
        "procyclicality; charts of margin against realised loss with exceedances marked.",
    ),
    "simulate": LazyCommand(
        "crossmargin.cli.simulate",
        "simulate",
        "Simulate liquidations over a price path: margin calls, partial liquidation, insurance\n"
        "fund, ADL, socialised loss and bad debt, every unit of money exact.",
    ),
    "oracle": LazyCommand("crossmargin.cli.oracle", "app", "Robust multi-source oracle prices."),
    "stress": LazyCommand(
        "crossmargin.cli.stress",
        "stress",
        "Venue-wide stress: accounts under MM and zero, shortfall, fund used and left, ADL and who\n"
        "bears it, bad debt, top-10 concentration, liquidation volume per asset.",
    ),
    "cascade": LazyCommand(
        "crossmargin.cli.cascade",
        "cascade",
        "Cascading liquidations: liquidations sell into square-root impact (daily volume and vol per\n"
        "asset from the shared data), impacted prices liquidate more, to a fixed point.",
    ),
    "synth": LazyCommand(
        "crossmargin.cli.synth",
        "synth",
        "Write a synthetic book: heavy-tailed sizes, lognormal leverage, long skew, option sellers,\n"
        "whales; seeded and reproducible.",
    ),
    "prove": LazyCommand("crossmargin.cli.prove", "app", "Proofs of liabilities and solvency."),
    "verify": LazyCommand(
        "crossmargin.cli.prove",
        "verify",
        "Check inclusion proofs against published roots (standalone verifier, no other data).",
    ),
    "calibrate": LazyCommand(
        "crossmargin.cli.calibrate",
        "calibrate",
        "Calibrate haircuts, IM/MM rates and tier sizes to a target coverage, with the back-test\n"
        "(fit window and out of sample) behind each number.",
    ),
    "dashboard": LazyCommand(
        "crossmargin.cli.dashboard",
        "dashboard",
        "Serve the web dashboard over a book: overview, accounts, stress, back-test, warnings.",
    ),
    "serve": LazyCommand(
        "crossmargin.service.command",
        "serve",
        "Serve the venue over HTTP and WebSocket: accounts, deposits, withdrawals, fills, orders,\n"
        "prices, margin under any model, what-if, explain, the event log, a resumable stream.",
    ),
}


@functools.cache
def load_command(name: str) -> click.Command:
    """The Click command of a lazy command, imported and built on first use."""
    spec = LAZY_COMMANDS[name]
    target = getattr(importlib.import_module(spec.module), spec.attribute)
    if not isinstance(target, typer.Typer):  # a command function: a one-command app
        single = typer.Typer(add_completion=False)
        single.command(name=name)(target)
        target = single
    command = typer.main.get_command(target)
    command.name = name
    if isinstance(command, TyperGroup):  # `prove`, `oracle`: their own listing of subcommands
        for sub in command.commands.values():
            sub.short_help = sub.short_help or listing_line(sub.help)
    return command


def listing_line(help_text: str | None) -> str:
    """A command's help as a group's listing shows it: its first paragraph on one line. Typer's
    rich mode keeps a docstring's line breaks there, so a docstring wrapped at 100 columns was
    listed broken mid-sentence, every later line starting at the column's left."""
    first = inspect.cleandoc(help_text or "").split("\n\n")[0]
    return " ".join(first.split())


class LazyGroup(TyperGroup):
    """The top-level group: eager commands as Typer builds them, then `LAZY_COMMANDS`.

    While the group's own help is formatted, a lazy command is a stub carrying its help text;
    otherwise (invocation, `crossmargin NAME --help`) it is the real command, imported then."""

    _listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in LAZY_COMMANDS if n not in self.commands)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in LAZY_COMMANDS or cmd_name in self.commands:
            command = super().get_command(ctx, cmd_name)
            if command is not None and self._listing:
                command.short_help = command.short_help or listing_line(command.help)
            return command
        if self._listing:
            help_text = LAZY_COMMANDS[cmd_name].help
            return typer.core.TyperCommand(cmd_name, help=help_text, short_help=listing_line(help_text))
        return load_command(cmd_name)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    cls=LazyGroup, add_completion=False, no_args_is_help=True, help="Multi-asset cross-margin risk engine."
)

MAX_TABLE_ROWS = 30
MAX_ID_WIDTH = 20  # an account id wider than this folds (the numbers keep their width)


def _nearest_levels(prices: dict[str, float | None]) -> str:
    """`BTC 80,123.45` per underlying whose level exists, one per line, else an em dash."""
    shown = [f"{escape(name)} {money(price)}" for name, price in prices.items() if price is not None]
    return "\n".join(shown) if shown else "—"


def _status(account: dict[str, Any]) -> str:
    if account["bankrupt"]:
        return "[bold red]bankrupt[/]"
    if account["below_maintenance"]:
        return "[red]liquidate[/]"
    if account["available_usd"] < 0:
        return "[yellow]below IM[/]"
    return "[green]ok[/]"


def _title(report: dict[str, Any]) -> str:
    """`portfolio margin (deribit-pm) · BOOK · TIME · USD`: the model and the preset that ran."""
    preset = f" ({escape(report['preset'])})" if report.get("preset") else ""
    return f"{report['model']} margin{preset} · {escape(report['book'])} · {report['valuation_time']} · USD"


def _table(report: dict[str, Any], *, width: int | None = None, n_accounts: int | None = None) -> Table:
    """The riskiest accounts, every number whole (never cut with an ellipsis): short headers (the
    title says USD), one space between columns. On a console narrower than that, first the
    `available` column (equity − IM) is left out, then money is rounded to the dollar; the caption
    says which (--json has everything, exact). `n_accounts`: how many the run holds, when `report`
    carries only the riskiest (`riskiest_report` of a columnar run)."""
    accounts = report["accounts"]
    total = len(accounts) if n_accounts is None else n_accounts
    shown = sorted(
        accounts, key=lambda a: -(a["margin_ratio"] if a["margin_ratio"] is not None else float("inf"))
    )[:MAX_TABLE_ROWS]
    priced = bool(accounts) and "price_status" in accounts[0]  # --prices: the oracle's status
    levels = bool(accounts) and "liquidation_price" in accounts[0]  # --levels
    crowded = bool(accounts) and "crowding_addon_usd" in accounts[0]  # --crowding
    columns = ["account", "equity", "IM", "MM", *(["crowding"] if crowded else []), "available", "ratio"]
    columns.append("status")
    columns += (["prices"] if priced else []) + (["liquidation"] if levels else [])
    notes = [] if total <= MAX_TABLE_ROWS else [f"{MAX_TABLE_ROWS} riskiest of {total:,} accounts"]
    layouts = (
        (columns, money, notes),
        (
            [c for c in columns if c != "available"],
            money,
            [*notes, "available = equity − IM left out to fit"],
        ),
        (
            [c for c in columns if c != "available"],
            whole_dollars,
            [*notes, "available left out, USD rounded to the dollar to fit"],
        ),
    )
    for chosen, amount, chosen_notes in layouts:
        table = _margin_table(report, chosen, [_row(a, amount) for a in shown], chosen_notes)
        if width is None or Console(width=10_000).measure(table).maximum <= width:
            break
    return table


def _row(a: dict[str, Any], amount: Callable[[float], str]) -> dict[str, str]:
    row = {
        "account": escape(a["account_id"]),
        "equity": amount(a["equity_usd"]),
        "IM": amount(a["initial_margin_usd"]),
        "MM": amount(a["maintenance_margin_usd"]),
        "available": amount(a["available_usd"]),
        "ratio": "—" if a["margin_ratio"] is None else f"{a['margin_ratio']:.1%}",
        "status": _status(a),
    }
    if "crowding_addon_usd" in a:  # its IM part; MM carries maintenance_fraction of it
        row["crowding"] = amount(a["crowding_addon_usd"])
    if "price_status" in a:
        row["prices"] = _price_status(a["price_status"])
    if "liquidation_price" in a:
        row["liquidation"] = _nearest_levels(a["liquidation_price"])
    return row


def _cell_width(cell: str) -> int:
    """Terminal cells of a table cell's widest line, markup removed."""
    return max(Text.from_markup(line).cell_len for line in cell.split("\n"))


def _price_status(status: str) -> str:
    return status if status == "ok" else f"[yellow]{status}[/]"


def _margin_table(
    report: dict[str, Any], columns: list[str], rows: list[dict[str, str]], notes: list[str]
) -> Table:
    table = Table(
        title=_title(report),
        caption=" · ".join([*notes, "--json or --out for all"]) if notes else None,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    for column in columns:
        numeric = column in ("equity", "IM", "MM", "crowding", "available", "ratio")
        widest = max((_cell_width(r[column]) for r in rows), default=0)
        table.add_column(
            column,
            justify="right" if numeric else "left",
            no_wrap=numeric,
            # Numbers whole; an id longer than MAX_ID_WIDTH folds onto a second line, never "…".
            min_width=max(widest, len(column)) if numeric else min(max(widest, len(column)), MAX_ID_WIDTH),
            overflow="fold",
        )
    for r in rows:
        table.add_row(*(r[c] for c in columns))
    return table


def _positions_table(account: dict[str, Any]) -> Table:
    """An account's positions and collateral: quantities and balances exact (every digit)."""
    table = Table(
        title=f"{escape(account['account_id'])}: positions and collateral · USD",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    names = [p["instrument_id"] for p in account["positions"]] + [
        f"{c['asset']} (haircut {c['haircut']:.1%})" for c in account["collateral"]
    ]
    for column in ("instrument / asset", "quantity", "value", "uPnL", "IM", "MM"):
        left = column.startswith("instrument")
        widest = max((len(n) for n in names), default=len(column)) if left else None
        table.add_column(
            column,
            justify="left" if left else "right",
            overflow="fold",
            no_wrap=not left,
            min_width=None if widest is None else min(widest, 2 * MAX_ID_WIDTH),
        )
    for p in account["positions"]:
        table.add_row(
            escape(p["instrument_id"]),
            quantity(p["quantity"]),
            money(p["value_usd"]),
            money(p["unrealised_pnl_usd"]),
            money(p["initial_margin_usd"]),
            money(p["maintenance_margin_usd"]),
        )
    for c in account["collateral"]:
        table.add_row(
            f"{escape(c['asset'])} (haircut {c['haircut']:.1%})",
            quantity(c["balance"]),
            money(c["value_usd"]),
            "",
            "",
            "",
        )
    return table


def _history_note(window: dict[str, Any] | None) -> None:
    """On stderr, when the VaR window is stale: how many days, and the limit that would refuse it."""
    if window is None or not window["stale"]:
        return
    Console(stderr=True).print(
        f"[yellow]warning[/]: the VaR window ends {window['last_day']}, {window['gap_days']} days before the "
        f"last close known at the valuation time ({window['known_day']}); refused beyond "
        f"{window['limit_days']} days (--max-history-gap-days)",
        highlight=False,
    )


def _age(age_ms: float) -> str:
    for unit, ms in (("days", 86_400_000), ("h", 3_600_000), ("min", 60_000)):
        if age_ms >= ms:
            return f"{age_ms / ms:,.1f} {unit}"
    return f"{age_ms / 1000:,.1f} s"


def _price_notes(prices: list[dict[str, Any]]) -> None:
    """On stderr: each oracle price that is not `ok` (with its age) and each quoted asset the book
    does not use, so a table of `ok` accounts never hides a stale or ignored quote."""
    notes = [
        f"[yellow]{escape(p['asset'])}: {p['status']}[/] "
        f"(last quote {_age(p['age_ms'])} before the valuation time)"
        for p in prices
        if p["used_by_book"] and p["status"] != "ok"
    ]
    notes += [
        f"{escape(p['asset'])}: quoted, not in the book (unused)" for p in prices if not p["used_by_book"]
    ]
    for note in notes:
        Console(stderr=True).print(f"prices: {note}", highlight=False)


def _crowding_history() -> CrowdingHistory:
    """The shared open interest and funding history for --crowding; a missing file is an unknown
    signal (the add-on then runs on the book's own signals), not an error."""
    from crossmargin.adapters.history.market_series import shared_funding, shared_open_interest
    from crossmargin.engine.margin_run import CrowdingHistory

    open_interest, funding = shared_open_interest(), shared_funding()
    return CrowdingHistory(
        open_interest=open_interest if open_interest.path.is_file() else None,
        funding=funding if any(funding.directory.glob("funding_*usdt_binance_*.csv")) else None,
    )


def _print_json(data: Any) -> None:
    """Print JSON-ready data (`engine.reports.to_json` output: no NaN left, hence allow_nan=False)."""
    sys.stdout.write(json.dumps(data, indent=2, allow_nan=False) + "\n")


@app.command()
def margin(
    book: Annotated[Path, typer.Argument(help="Book file (YAML or JSON)")],
    model: Annotated[
        str | None, typer.Option(help=f"Margin model: {' | '.join(MODELS)} (default: the book's)")
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            help=f"portfolio: {' | '.join(PORTFOLIO_PRESET_NAMES)}; "
            f"cross/isolated: {' | '.join(TIER_PRESET_NAMES)}"
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
    max_history_gap_days: Annotated[
        int | None,
        typer.Option(
            help="var: refuse a price history ending more than N days before the valuation "
            "(default 366; a gap over 7 days is warned about)",
            min=0,
        ),
    ] = None,
    levels: Annotated[
        bool,
        typer.Option(
            "--levels",
            help="Also search each account's liquidation and bankruptcy prices per underlying "
            "(a root search: under portfolio, sensitivity and VaR margin ~100x the margin itself)",
        ),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write the report to a file, streamed (books of any size): .json (one account per "
            "line) or .parquet (accounts, positions and collateral tables; docs/cli.md)",
        ),
    ] = None,
    crowding: Annotated[
        bool,
        typer.Option(
            "--crowding",
            help="Add the crowding add-on (docs/crowding.md) to a pooled model: IM + add-on, "
            "MM + half of it, for accounts on a crowded side; each account's add-on in the table "
            "and as crowding_addon_usd in the JSON",
        ),
    ] = False,
) -> None:
    """Compute initial and maintenance margin for every account of a book."""
    from crossmargin.adapters.files import load_book
    from crossmargin.adapters.files.report_file import report_target, write_json_data, write_report
    from crossmargin.adapters.history.prices import shared_price_history
    from crossmargin.adapters.volatility import GarchFilter
    from crossmargin.cli.progress import stages
    from crossmargin.engine import margin_run
    from crossmargin.engine.report_columns import margin_columns
    from crossmargin.engine.reports import to_json
    from crossmargin.errors import InputError

    history, volatility = shared_price_history(), GarchFilter()  # read only by --model var
    columns = None  # the columnar report (plain margin runs); `report` (typed, as JSON data) otherwise
    report: dict[str, Any] = {}
    try:
        target = None if out is None else report_target(out)  # before any work: a bad --out is exit 2
        if target is not None and target.format == "parquet" and (levels or prices is not None):
            problem = "the Parquet report has no --levels or --prices keys: use .json"
            raise InputError("--out", f"{out}: {problem}")
        if target is not None and target.format == "parquet" and crowding:
            raise InputError("--out", f"{out}: the Parquet report has no --crowding keys: use .json")
        if crowding and prices is not None:
            problem = "not with --prices: the add-on is measured on the book's own market"
            raise InputError("--crowding", problem)
        crowding_history = _crowding_history() if crowding else None
        with stages() as progress:
            progress.stage("loading the book")
            loaded = load_book(book)
            progress.stage(f"margining {loaded.book.n_accounts:,} accounts")
            if prices is None:
                run = margin_run.run_margin(
                    loaded,
                    model=model,
                    preset=preset,
                    account_ids=account,
                    history=history,
                    volatility=volatility,
                    max_history_gap_days=max_history_gap_days,
                    crowding=crowding_history,
                )
                # The typed report for --levels and --crowding, and for VaR (its var_history
                # block: how stale the window is) unless the target is Parquet, which has no place
                # for either.
                parquet = target is not None and target.format == "parquet"
                if levels or crowding or (run.model == "var" and not parquet):
                    found = margin_run.price_levels(run) if levels else None
                    report = margin_run.margin_report(run, levels=found)
                else:
                    columns = margin_columns(run)
            else:
                from crossmargin.adapters.feeds import QuoteFile  # pyarrow: only with --prices
                from crossmargin.engine.priced_run import (
                    load_snapshot,
                    priced_margin_report,
                    run_priced_margin,
                )

                priced = run_priced_margin(
                    loaded,
                    load_snapshot(QuoteFile(path=prices), as_of_ns=loaded.market.valuation_ns),
                    model=model,
                    preset=preset,
                    account_ids=account,
                    history=history,
                    volatility=volatility,
                    max_history_gap_days=max_history_gap_days,
                )
                report = to_json(priced_margin_report(priced))  # the oracle block too: NaN → null
                if levels:  # the priced report is margin_report's plus oracle keys: add the level keys
                    rows = margin_run.account_price_levels(margin_run.price_levels(priced.run))
                    for entry, account_levels in zip(report["accounts"], rows, strict=True):
                        entry.update(to_json(account_levels))
            if target is not None:
                if columns is None:
                    write_json_data(report, target)
                else:
                    progress.stage(f"writing {out}", total=columns.n_accounts)
                    write_report(columns, target, progress=progress.advance_to)
            if as_json and columns is not None:
                from crossmargin.adapters.files.report_json import write_margin_json

                progress.stage("writing the JSON report", total=columns.n_accounts)
                write_margin_json(columns, sys.stdout.buffer, indent=True, progress=progress.advance_to)
                sys.stdout.flush()
    except CrossMarginError as error:
        fail(error)
        return
    _history_note(report.get("var_history"))
    if as_json:
        if columns is None:
            _print_json(report)
        return
    if target is not None:
        return
    console = render_console()
    if columns is not None:
        riskiest = riskiest_report(columns, MAX_TABLE_ROWS)
        console.print(_table(riskiest, width=console.width, n_accounts=columns.n_accounts))
        if account:
            report = margin_run.margin_report(run)
    else:
        console.print(_table(report, width=console.width))
    if prices is not None:
        _price_notes(report["prices"])
    if account:
        for a in report["accounts"]:
            console.print(_positions_table(a))


@app.command()
def explain(
    book: Annotated[Path, typer.Argument(help="Book file (YAML or JSON)")],
    account: Annotated[str, typer.Option(help="Account id")],
    preset: Annotated[
        str | None,
        typer.Option(help=f"Portfolio preset: {' | '.join(PORTFOLIO_PRESET_NAMES)} (default: the book's)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON explanation")] = False,
    scenarios: Annotated[bool, typer.Option("--scenarios", help="Also list every scenario's P&L")] = False,
    model: Annotated[str, typer.Option(help="portfolio | var (VaR/ES: component ES per item)")] = "portfolio",
) -> None:
    """Explain one account's portfolio margin: the scenario that drove it, each position's and
    collateral asset's P&L there, the per-underlying split and every add-on. With --model var:
    the tail scenarios and each position's and asset's component of ES (or VaR)."""
    if model not in ("portfolio", "var"):  # the other models have no scenario to explain
        fail(
            InputError(
                "model",
                f"explain covers portfolio and var, got {model!r} (margin --account shows the others)",
            )
        )
    if model == "var":
        from crossmargin.cli.var_explain import explain_var

        explain_var(book, account=account, preset=preset, as_json=as_json)
        return
    from crossmargin.adapters.files import load_book
    from crossmargin.engine.portfolio_run import explain_report
    from crossmargin.engine.reports import to_json

    try:
        report = explain_report(load_book(book), account, preset=preset)
    except CrossMarginError as error:
        fail(error)
        return
    if as_json:
        _print_json(to_json(report))
        return
    console = render_console()
    worst = report["worst_scenario"]
    console.print(
        f"[bold]{escape(report['account_id'])}[/] · portfolio margin ({escape(report['preset'])}): "
        f"IM {money(report['initial_margin_usd'])} USD, MM {money(report['maintenance_margin_usd'])} USD"
    )
    title = _print_grid(console, report)
    table = items_table(
        title,
        ("position / collateral", "quantity", "scenario P&L USD", "share of grid USD"),
        report,
        pnl_key="scenario_pnl_usd",
        share_key="contribution_usd",
    )
    console.print(table)
    split = Table(title=f"per underlying, in {escape(worst['label'])}")
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


def _print_grid(console: Console, report: dict[str, Any]) -> str:
    """The explanation's grid line and, when the grid sums several scenario groups' worst losses
    (one group per underlying under Deribit's, Paradex's and SPAN's rules), their table, since one
    scenario's P&L no longer explains it; returns the items table's title."""
    worst = report["worst_scenario"]
    losing = [g for g in report["groups"] if g["loss_usd"] > 0.0]
    if len(losing) <= 1:
        console.print(
            f"grid {money(report['grid_usd'])} (worst: {escape(worst['label'])}, total P&L "
            f"{money(worst['total_pnl_usd'])}), min-delta floor {money(report['min_delta_usd'])}"
        )
        return "in the worst scenario"
    console.print(
        f"grid {money(report['grid_usd'])}: the sum of each scenario group's worst loss, "
        f"min-delta floor {money(report['min_delta_usd'])}"
    )
    groups = Table(title="scenario groups")
    groups.add_column("group's worst scenario")
    groups.add_column("loss USD", justify="right")
    for g in losing:
        groups.add_row(escape(g["label"]), money(g["loss_usd"]))
    console.print(groups)
    return (
        f"P&L in {escape(worst['label'])}, the largest group's worst; "
        "share of grid: in each item's own group's worst"
    )


@app.command()
def compare(
    book: Annotated[Path, typer.Argument(help="Book file (YAML or JSON)")],
    account: Annotated[str, typer.Option(help="Account id")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON comparison")] = False,
) -> None:
    """What one account's portfolio costs under isolated, cross, each venue's tiers, each
    portfolio-margin preset and the sensitivity model, with the saving over isolated."""
    from crossmargin.adapters.files import load_book
    from crossmargin.adapters.history.prices import shared_price_history
    from crossmargin.engine.portfolio_run import compare_report
    from crossmargin.engine.reports import to_json

    history = shared_price_history()  # the VaR/ES rows, when the shared daily closes are there
    try:
        report = compare_report(load_book(book), account, history=history if history.is_available() else None)
    except CrossMarginError as error:
        fail(error)
        return
    if as_json:
        _print_json(to_json(report))
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
    from crossmargin.adapters.files import book_json_schema

    _print_json(book_json_schema())


def run() -> None:
    """The `crossmargin` console script: the Typer app, then a fast exit.

    A finished command's process would next spend 40-100 ms (measured on the example book,
    bench/bench_startup.py) tearing down numpy, scipy and pydantic module by module, freeing
    memory the operating system takes back at once anyway: as much as a warm margin run's own
    work. So after the command returns, this runs what an orderly exit must (the atexit handlers:
    logging's flush, temporary directories, Dask and multiprocessing shutdown; then the standard
    streams' flush) and ends the process with the command's exit code, skipping the teardown.
    Every file the commands write is closed by its own `with` block before they return."""
    import atexit
    import os

    try:
        app()
        code: int = 0
    except SystemExit as stop:
        code = _exit_code(stop.code)
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):  # a closed pipe (`| head`) or a closed stream
        code = code or 1
    os._exit(code)


def _exit_code(code: object) -> int:
    """sys.exit's argument as the process exit code: None is 0, an int itself, anything else is
    printed to stderr and exits 1 (as the interpreter does)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


if __name__ == "__main__":
    run()
