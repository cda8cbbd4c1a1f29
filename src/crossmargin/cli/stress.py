"""`crossmargin stress BOOK`: venue-wide stresses (historical windows, hypothetical shocks,
depegs, reverse stress) with the venue report as a Rich table, JSON and a chart."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from crossmargin.adapters.files.staging import cannot_write, check_writable
from crossmargin.cli.arguments import check_usd
from crossmargin.cli.render import fail
from crossmargin.errors import CrossMarginError, InputError


def load_venue(book: Path) -> tuple[Any, Any]:
    """A venue and its margin model from a book file (its default model) or a synth directory
    (cross margin)."""
    from crossmargin.adapters.files.synth_parquet import is_synth_dir, read_synth
    from crossmargin.core.margin import CrossMargin
    from crossmargin.core.synthetic import synth_market
    from crossmargin.engine.stress import prepare_venue

    if is_synth_dir(book):
        loaded = read_synth(book)
        return prepare_venue(loaded, synth_market(loaded.instruments)), CrossMargin()
    from crossmargin.adapters.files import load_book
    from crossmargin.engine.margin_run import make_model

    loaded_book = load_book(book)
    choice = make_model(loaded_book.default_model, loaded_book)
    return prepare_venue(choice.book, loaded_book.market), choice.model


def parse_moves(text: str, *, name: str) -> dict[str, float]:
    """'BTC=-0.12,ETH=-0.16' -> {'BTC': -0.12, 'ETH': -0.16}."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        symbol, sep, value = part.partition("=")
        try:
            out[symbol.strip()] = float(value)
        except ValueError:
            raise InputError(name, f"{part!r}: expected SYMBOL=FRACTION, e.g. BTC=-0.12") from None
        if not sep:
            raise InputError(name, f"{part!r}: expected SYMBOL=FRACTION")
    if not out:
        raise InputError(name, "no moves given")
    return out


def stress(
    book: Annotated[Path, typer.Argument(help="Book file, or a directory written by `crossmargin synth`")],
    shock: Annotated[
        list[str] | None,
        typer.Option(help="Hypothetical shock SYMBOL=MOVE,...; a stablecoin's move is a depeg (repeatable)"),
    ] = None,
    vol: Annotated[
        str | None, typer.Option(help="Vol shift per underlying for the shocks, e.g. BTC=0.2 (vol points)")
    ] = None,
    historical: Annotated[bool, typer.Option(help="Run the historical windows from the shared data")] = True,
    trough: Annotated[
        bool, typer.Option(help="Historical windows at each asset's trough, not the joint close")
    ] = False,
    fund: Annotated[float, typer.Option(help="Insurance fund, USD")] = 1_000_000.0,
    policy: Annotated[
        str, typer.Option(help="Liquidation policy, e.g. full/queue, partial/pro_rata, full/no-adl")
    ] = "full/queue",
    reverse: Annotated[
        str | None,
        typer.Option(help="Reverse stress along the first shock: 'fund' (exhausts the fund) or 'bad_debt'"),
    ] = None,
    bad_debt_threshold: Annotated[
        float, typer.Option(help="Bad debt threshold, USD, for --reverse bad_debt")
    ] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the reports as JSON")] = False,
    chart: Annotated[Path | None, typer.Option(help="Write a PNG chart of the stresses")] = None,
) -> None:
    """Venue-wide stress: accounts under MM and zero, shortfall, fund used and left, ADL and who
    bears it, bad debt, top-10 concentration, liquidation volume per asset."""
    from crossmargin.cli.stress_render import report_table, write_chart
    from crossmargin.engine.stress import (
        forward_stress,
        hypothetical_shock,
        policy_named,
        reverse_stress,
        window_shock,
    )

    console = Console(stderr=True)
    try:
        if chart is not None:
            check_writable(chart, "--chart")
        check_usd(fund, "--fund")
        check_usd(bad_debt_threshold, "--bad-debt-threshold")
        venue, model = load_venue(book)
        chosen = policy_named(policy)
        shocks = []
        notes: list[str] = []
        vol_shift = parse_moves(vol, name="--vol") if vol else None
        for n, text in enumerate(shock or []):
            moves = parse_moves(text, name="--shock")
            label = ", ".join(f"{s} {m:+.0%}" for s, m in moves.items())
            shocks.append(
                hypothetical_shock(
                    venue.book, label=label or f"shock {n + 1}", moves=moves, vol_shift=vol_shift
                )
            )
        if historical and reverse is None:
            from crossmargin.adapters.history.stress_windows import historical_moves

            for move in historical_moves():
                s, proxied = window_shock(venue, move, trough=trough)
                shocks.append(s)
                if proxied:
                    notes.append(f"{s.label}: {', '.join(proxied)} had no data and moved with BTC")
        if not shocks:
            raise InputError("--shock", "nothing to run: give --shock or --historical")
        if reverse is not None:
            found = reverse_stress(
                venue,
                model,
                shocks[0],
                policy=chosen,
                insurance_fund_usd=fund,
                target=reverse,
                threshold_usd=bad_debt_threshold,
            )
            results = [found.holds, found.breaks]
            payload: dict[str, Any] = {
                "direction": found.direction,
                "target": found.target,
                "scale": found.search.scale,
                "bracket": [found.search.lower, found.search.upper],
                "found": found.search.found,
                "forward_stresses": found.search.evaluations,
                "holds": found.holds.summary(),
                "breaks": found.breaks.summary(),
            }
        else:
            results = []
            with Progress(
                TextColumn("stress"),
                BarColumn(),
                MofNCompleteColumn(),
                console=console,
                transient=True,
                disable=as_json,
            ) as progress:
                task = progress.add_task("scenarios", total=len(shocks))
                for s in shocks:
                    results.append(forward_stress(venue, model, s, policy=chosen, insurance_fund_usd=fund))
                    progress.advance(task)
            payload = {
                "book": str(book),
                "policy": chosen.name,
                "fund_usd": fund,
                "notes": notes,
                "scenarios": [r.summary() for r in results],
            }
    except CrossMarginError as error:
        fail(error)
    if as_json:
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        out = Console(width=None if sys.stdout.isatty() else 200)
        title = f"venue stress · {book} · {chosen.name} · fund {fund:,.0f} USD"
        if reverse is not None:
            title += f" · reverse ({reverse}): scale {payload['scale']:.4f} of {payload['direction']}"
        out.print(report_table(results, title=title))
        for note in notes:
            out.print(f"note: {note}")
    if chart is not None:
        try:
            write_chart(results, chart)
        except CrossMarginError as error:  # the charts extra (matplotlib) missing
            fail(error)
        except OSError as error:  # writable when checked, not now (a full disk, say)
            fail(cannot_write(chart, error, "--chart"))
        console.print(f"wrote {chart}")
