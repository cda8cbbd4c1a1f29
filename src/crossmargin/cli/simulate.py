"""crossmargin simulate BOOK --prices PATH [--adl POLICY] [--insurance-usd X] [--out DIR] [--json]

Runs the price path over the book through the exact ledger and the liquidation engine; prints a
summary, and with --out writes the audit trail: events.jsonl (replayable), postings.parquet,
records.csv, summary.json (with every rejected event and its reason). --out must be new (or an
empty directory): the trail is written beside it and renamed into place when the run completes.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from crossmargin.adapters.files.staging import cannot_write, staging_beside
from crossmargin.cli.arguments import check_usd
from crossmargin.cli.render import console as render_console
from crossmargin.cli.render import fail, money, quantity
from crossmargin.core.liquidation.adl import ADL_POLICIES
from crossmargin.engine.simulation import (
    posting_rows,
    record_rows,
    run_price_path,
    simulation_from_book,
    summary,
)
from crossmargin.errors import CrossMarginError, InputError


def _check_out(out: Path) -> None:
    """--out names a directory that does not exist yet, or an empty one: the trail is written
    beside it and renamed into place, so a run that fails leaves nothing half-written."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}", "exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        raise InputError(
            f"--out {out}", "the directory is not empty (the trail is never mixed with other files)"
        )
    if not out.parent.is_dir():
        raise InputError(f"--out {out}", f"the parent directory {out.parent} does not exist")


def simulate(
    book: Annotated[Path, typer.Argument(help="Book file (YAML or JSON)")],
    prices: Annotated[
        Path, typer.Option(help="CSV price path: time, then one column per symbol (examples/price_path.csv)")
    ],
    adl: Annotated[str, typer.Option(help=f"ADL policy: {' | '.join(ADL_POLICIES)}")] = "queue",
    insurance_usd: Annotated[float, typer.Option(help="Initial insurance fund, USD (>= 0)")] = 0.0,
    out: Annotated[Path | None, typer.Option(help="New (or empty) directory for the audit trail")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON summary")] = False,
) -> None:
    """Simulate liquidations over a price path: margin calls, partial liquidation, insurance
    fund, ADL, socialised loss and bad debt, every unit of money exact."""
    from crossmargin.adapters.eventlog import JsonLinesEventSink, write_table
    from crossmargin.adapters.files import load_book, read_price_path

    try:
        check_usd(insurance_usd, "--insurance-usd")
        if out is not None:
            _check_out(out)
        loaded = load_book(book)
        symbols = set(loaded.book.instruments.underlyings) | set(loaded.book.assets.symbols)
        path = read_price_path(prices, symbols=symbols)
    except CrossMarginError as error:
        fail(error)
    # Written into a temporary sibling directory and renamed into place at the end: a failed run
    # leaves no partial trail (the event log streams as the run goes, replayable).
    try:
        staging = None if out is None else staging_beside(out)
    except CrossMarginError as error:
        fail(error)
    try:
        with contextlib.ExitStack() as stack:
            sink = (
                None if staging is None else stack.enter_context(JsonLinesEventSink(staging / "events.jsonl"))
            )
            try:
                sim = simulation_from_book(
                    loaded, adl_policy=adl, insurance_fund_usd=insurance_usd, sink=sink
                )
                run_price_path(sim, path)
            except CrossMarginError as error:
                fail(error)
        report = summary(sim)
        if staging is not None and out is not None:
            write_table(staging / "postings.parquet", posting_rows(sim.postings))
            write_table(staging / "records.csv", record_rows(sim.records))
            (staging / "summary.json").write_text(json.dumps(report, indent=2) + "\n")
            if out.is_dir():
                out.rmdir()  # empty (checked above)
            staging.rename(out)
            staging = None
    except OSError as error:  # no permission, a full disk: refused naming --out, nothing left
        assert out is not None  # only the trail is written
        fail(cannot_write(out, error))
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    render_console().print(summary_table(report, book=book, adl=adl))


def _amounts(amounts: dict[str, float]) -> str:
    """`0.03 BTC, 1,250.5 USDC`: asset amounts exactly as the ledger holds them (no rounding)."""
    return ", ".join(f"{quantity(v)} {k}" for k, v in amounts.items()) or "0"


def summary_table(report: dict[str, Any], *, book: Path, adl: str) -> Table:
    table = Table(title=f"simulate · {escape(str(book))} · ADL {escape(adl)}")
    table.add_column("")
    table.add_column("value", overflow="fold")
    for key in ("events", "rejected", "postings", "liquidation_fills", "bankruptcies"):
        table.add_row(key, str(report[key]))
    for r in report["rejected_events"]:
        named = " ".join(str(r[k]) for k in ("account", "instrument", "asset") if k in r)
        table.add_row(
            f"[yellow]rejected {escape(r['event'])}[/]", escape(f"{named}: {r['field']}: {r['problem']}")
        )
    for instrument, price in report["expiries"].items():
        table.add_row(f"expired {escape(instrument)}", f"settled at {money(price)} USD")
    for key in ("insurance_fund", "fees", "bad_debt", "socialised_loss"):
        table.add_row(key, _amounts(report[key]))
    for round_ in report["adl"]:
        table.add_row(
            f"ADL {escape(round_['instrument'])}",
            f"{round_['contracts']} contracts, overshoot {quantity(round_['overshoot'])} {round_['asset']}",
        )
    return table
