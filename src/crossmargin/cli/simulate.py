"""crossmargin simulate BOOK --prices PATH [--adl POLICY] [--insurance-usd X] [--out DIR] [--json]

Runs the price path over the book through the exact ledger and the liquidation engine; prints a
summary, and with --out writes the audit trail: events.jsonl (replayable), postings.parquet,
records.csv, summary.json.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from crossmargin.cli.render import console as render_console
from crossmargin.cli.render import fail
from crossmargin.core.liquidation.adl import ADL_POLICIES
from crossmargin.engine.simulation import (
    posting_rows,
    record_rows,
    run_price_path,
    simulation_from_book,
    summary,
)
from crossmargin.errors import CrossMarginError


def simulate(
    book: Annotated[Path, typer.Argument(help="Book file (YAML or JSON)")],
    prices: Annotated[Path, typer.Option(help="CSV price path: time, then one column per symbol")],
    adl: Annotated[str, typer.Option(help=f"ADL policy: {' | '.join(ADL_POLICIES)}")] = "queue",
    insurance_usd: Annotated[float, typer.Option(help="Initial insurance fund, USD")] = 0.0,
    out: Annotated[Path | None, typer.Option(help="Directory for the audit trail")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON summary")] = False,
) -> None:
    """Simulate liquidations over a price path: margin calls, partial liquidation, insurance
    fund, ADL, socialised loss and bad debt, every unit of money exact."""
    from crossmargin.adapters.eventlog import JsonLinesEventSink, write_table
    from crossmargin.adapters.files import load_book, read_price_path

    try:
        loaded = load_book(book)
        path = read_price_path(prices)
    except CrossMarginError as error:
        fail(error)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    # The event log is written as the run goes (events.jsonl, replayable); the rest at the end.
    with contextlib.ExitStack() as stack:
        sink = None if out is None else stack.enter_context(JsonLinesEventSink(out / "events.jsonl"))
        try:
            sim = simulation_from_book(loaded, adl_policy=adl, insurance_fund_usd=insurance_usd, sink=sink)
            run_price_path(sim, path)
        except CrossMarginError as error:
            fail(error)
    report = summary(sim)
    if out is not None:
        write_table(out / "postings.parquet", posting_rows(sim.postings))
        write_table(out / "records.csv", record_rows(sim.records))
        (out / "summary.json").write_text(json.dumps(report, indent=2) + "\n")
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    table = Table(title=f"simulate · {escape(str(book))} · ADL {escape(adl)}")
    table.add_column("")
    table.add_column("value", justify="right")
    for key in (
        "events",
        "rejected",
        "postings",
        "liquidation_fills",
        "bankruptcies",
        "socialised_loss_units",
    ):
        table.add_row(key, str(report[key]))
    for key in ("insurance_fund", "fees", "bad_debt"):
        table.add_row(key, ", ".join(f"{v:,.6g} {k}" for k, v in report[key].items()) or "0")
    for round_ in report["adl"]:
        table.add_row(
            f"ADL {round_['instrument']}",
            f"{round_['contracts']} contracts, overshoot {round_['overshoot_units']} units",
        )
    render_console().print(table)
