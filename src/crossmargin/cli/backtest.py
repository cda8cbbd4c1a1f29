"""`crossmargin backtest BOOK --model M[:PRESET] ... --from DAY --to DAY`: fixed portfolios (the
book's accounts) walked through real history, each model's margin against the realised loss.
Prints the statistics table; writes a PNG per account and a self-contained HTML page."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from crossmargin.adapters.files.staging import cannot_write, staging_beside
from crossmargin.cli.backtest_charts import html_page, write_pngs
from crossmargin.cli.render import fail
from crossmargin.engine.backtest import DEFAULT_MODELS, BacktestRun, backtest_table, run_backtest
from crossmargin.errors import CrossMarginError, InputError


def backtest_rich_table(run: BacktestRun) -> Table:
    table = Table(
        title=f"back-test · {escape(run.book)} · {run.days[0]} .. {run.days[-1]} · "
        f"{run.horizon_days}-day loss vs IM · Kupiec at {1 - run.coverage:.1%}"
    )
    columns = ("account", "model", "exc.", "rate", "Kupiec p", "Chr. p", "worst short USD", "mean IM USD",
               "5d rise", "30d rise", "peak/trough")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column in ("account", "model") else "right")
    for r in backtest_table(run):
        bad = r["kupiec_p_value"] < 0.05
        table.add_row(
            escape(r["account_id"]),
            escape(r["model"]),
            str(r["exceedances"]),
            f"{r['exceedance_rate']:.2%}",
            f"[red]{r['kupiec_p_value']:.3f}[/]" if bad else f"{r['kupiec_p_value']:.3f}",
            f"{r['christoffersen_p_value']:.3f}",
            f"{r['worst_shortfall_usd']:,.0f}",
            f"{r['mean_margin_usd']:,.0f}",
            f"{r['largest_5d_increase']:.0%}",
            f"{r['largest_30d_increase']:.0%}",
            f"{r['peak_to_trough']:.1f}",
        )
    return table


def backtest(
    book: Annotated[Path, typer.Argument(help="Book file whose accounts are the fixed portfolios")],
    model: Annotated[
        list[str] | None,
        typer.Option(help="model[:preset], repeatable, e.g. cross, portfolio:deribit-pm, var:fhs-es975"),
    ] = None,
    first_day: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD)")] = "2024-01-01",
    last_day: Annotated[str, typer.Option("--to", help="Last day (YYYY-MM-DD)")] = "2025-02-09",
    horizon_days: Annotated[int, typer.Option(help="Margin period of risk, days")] = 2,
    coverage: Annotated[float, typer.Option(help="Target coverage for the Kupiec test")] = 0.99,
    account: Annotated[list[str] | None, typer.Option(help="Only these accounts (repeatable)")] = None,
    out: Annotated[Path | None, typer.Option(help="Directory for PNG charts and backtest.html")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the statistics as JSON")] = False,
) -> None:
    """Back-test margin models: exceedances, Kupiec and Christoffersen p-values, worst shortfall,
    procyclicality; charts of margin against realised loss with exceedances marked."""
    from crossmargin.adapters.extras import import_extra
    from crossmargin.adapters.files import load_book
    from crossmargin.adapters.history.prices import shared_price_history
    from crossmargin.adapters.volatility import GarchFilter

    console = Console(stderr=True)
    staging: Path | None = None
    try:
        if out is not None:  # before the walk, not after it
            import_extra("matplotlib", extra="charts", purpose="back-test charts (--out)")
            if out.exists() and not out.is_dir():
                raise InputError("--out", f"{out}: exists and is not a directory")
            staging = staging_beside(out)  # an --out that cannot be written is refused now
        loaded = load_book(book)
        with Progress(
            TextColumn("back-test"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=console, transient=True, disable=as_json,
        ) as progress:  # fmt: skip
            task = progress.add_task("days", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            run = run_backtest(
                loaded,
                model or list(DEFAULT_MODELS),
                history=shared_price_history(),
                volatility=GarchFilter(),
                first_day=first_day,
                last_day=last_day,
                horizon_days=horizon_days,
                coverage=coverage,
                account_ids=account,
                progress=advance,
            )
    except CrossMarginError as error:
        _remove(staging)
        fail(error)
    except BaseException:
        _remove(staging)
        raise
    for name, reason in run.skipped:
        console.print(f"back-test: {escape(name)} skipped: {escape(reason)}", highlight=False)
    covered = (str(run.days[0]), str(run.days[-1]))
    if covered != (first_day, last_day):  # said plainly: the walk is shorter than asked
        console.print(
            f"back-test: days {covered[0]}..{covered[1]} of the {first_day}..{last_day} asked (the days "
            f"with a close of every symbol and one {run.horizon_days} days later)",
            highlight=False,
        )
    if as_json:
        payload = {
            "book": run.book,
            "first_day": str(run.days[0]),
            "last_day": str(run.days[-1]),
            "horizon_days": run.horizon_days,
            "coverage": run.coverage,
            "rows": backtest_table(run),
            "skipped": [{"account_id": name, "reason": reason} for name, reason in run.skipped],
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        Console(width=None if sys.stdout.isatty() else 160).print(backtest_rich_table(run))
    if out is not None and staging is not None:
        try:
            names = [p.name for p in write_pngs(run, staging)]
            (staging / "backtest.html").write_text(html_page(run), encoding="utf-8")
            out.mkdir(parents=True, exist_ok=True)
            for name in [*names, "backtest.html"]:  # each file whole: written aside, then renamed
                os.replace(staging / name, out / name)
        except OSError as error:  # a full disk, say: refused naming --out
            fail(cannot_write(out, error))
        finally:
            _remove(staging)
        console.print(f"wrote {out / 'backtest.html'} and {len(names)} PNG charts under {out}")


def _remove(staging: Path | None) -> None:
    if staging is not None:
        shutil.rmtree(staging, ignore_errors=True)
