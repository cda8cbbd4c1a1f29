"""`crossmargin calibrate`: per-asset haircuts, IM/MM rates and tier sizes that reach a target
coverage on a fit window, with their back-test there and out of sample (engine.calibration).
Prints a Rich table; --json the whole report; --markdown PATH an evidence section (Markdown)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from crossmargin.adapters.files.staging import cannot_write, check_writable
from crossmargin.cli.render import fail
from crossmargin.core.calibration import AssetCalibration, CalibrationParams, Coverage, Evidence
from crossmargin.engine.calibration import CalibrationReport, Windows, calibration_json
from crossmargin.errors import CrossMarginError, InputError


def parse_window(text: str, name: str) -> tuple[str, str]:
    """FIRST:LAST (YYYY-MM-DD:YYYY-MM-DD)."""
    first, sep, last = text.partition(":")
    if not sep or not first or not last:
        raise InputError(name, f"expected FIRST:LAST as YYYY-MM-DD:YYYY-MM-DD, got {text!r}")
    return first.strip(), last.strip()


def _cov(c: Coverage) -> str:
    return f"{c.coverage:.2%} ({c.exceedances}/{c.days})"


def _pct(value: float) -> str:
    return f"{value:.2%}"


def _usd(value: float) -> str:
    if value != value:  # NaN: no volume data
        return "n/a"
    return f"{value / 1e6:,.1f} M"


def calibration_rich_table(report: CalibrationReport) -> Table:
    p = report.params
    w = report.windows
    table = Table(
        title=f"calibration · {p.coverage * 100:g}% of {p.horizon_days}-day losses"
        f" · fit {w.fit_first}..{w.fit_last} · test {w.test_first}..{w.test_last}"
    )
    columns = ("asset", "haircut", "fit", "test", "vol haircut now", "test", "IM", "test", "MM", "test",
               "limit USD", "tiers")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column == "asset" else "right")
    for a in report.assets:
        low = a.initial_evidence.test.kupiec_p_value < 0.05
        table.add_row(
            a.symbol,
            _pct(a.haircut),
            _cov(a.haircut_evidence.fit),
            _cov(a.haircut_evidence.test),
            _pct(a.haircut_now),
            _cov(a.haircut_evidence_dynamic.test),
            _pct(a.initial_rate),
            f"[red]{_cov(a.initial_evidence.test)}[/]" if low else _cov(a.initial_evidence.test),
            _pct(a.maintenance_rate),
            _cov(a.maintenance_evidence.test),
            _usd(a.position_limit_usd),
            str(len(a.tiers)),
        )
    return table


def _evidence_cells(e: Evidence) -> str:
    return (
        f"{e.fit.coverage:.2%} ({e.fit.exceedances}/{e.fit.days}), p {e.fit.kupiec_p_value:.2f} | "
        f"{e.test.coverage:.2%} ({e.test.exceedances}/{e.test.days}), p {e.test.kupiec_p_value:.2f}"
    )


def _asset_section(a: AssetCalibration, params: CalibrationParams) -> list[str]:
    lines = [
        f"### {a.symbol}",
        "",
        "| number | value | fit coverage (exc./days), Kupiec p | test coverage (exc./days), Kupiec p |",
        "|---|---:|---|---|",
        f"| static haircut ({params.horizon_days}-day fall) | {a.haircut:.2%} "
        f"| {_evidence_cells(a.haircut_evidence)} |",
        f"| vol haircut multiplier k (last {a.haircut_now:.2%}, test mean {a.haircut_mean_test:.2%}) "
        f"| {a.haircut_multiplier:.3f} "
        f"| {_evidence_cells(a.haircut_evidence_dynamic)} |",
        f"| IM rate ({params.horizon_days}-day, either side) | {a.initial_rate:.2%} "
        f"| {_evidence_cells(a.initial_evidence)} |",
        f"| MM rate ({params.liquidation_days}-day, either side) | {a.maintenance_rate:.2%} "
        f"| {_evidence_cells(a.maintenance_evidence)} |",
    ]
    for n, tier in enumerate(a.tiers, start=1):
        lines.append(
            f"| tier {n} IM up to {_usd(tier.ceiling_usd)} USD (impact {tier.impact_at_ceiling:.1%}) "
            f"| {tier.initial_rate:.2%} | {_evidence_cells(tier.evidence)} |"
        )
    lines += [
        "",
        f"Vol haircut changes with a {params.haircut_band:.0%} band: {a.haircut_changes} "
        f"(without the band: {a.haircut_changes_without_band}). Position limit "
        f"{_usd(a.position_limit_usd)} USD; fit-window median venue volume "
        f"{_usd(a.median_volume_usd)} USD/day, "
        f"median daily vol {a.median_volatility_daily:.2%}.",
        "",
    ]
    return lines


def calibration_markdown(report: CalibrationReport) -> str:
    """The evidence section: one summary table, then one table per asset with every number's
    coverage and Kupiec p-value on the fit window and out of sample."""
    p = report.params
    w = report.windows
    implied = ", ".join(report.implied_vol_symbols) or "none"
    lines = [
        f"Target: {p.coverage * 100:g} % of {p.horizon_days}-day losses covered "
        f"(MM: {p.liquidation_days}-day). "
        f"Fit window {w.fit_first}..{w.fit_last}; test window {w.test_first}..{w.test_last} "
        "(not used to fit). "
        f"Volatility: EWMA λ = {report.ewma_lambda}, or the larger of it and implied vol for {implied}. "
        f"Tier sizes: square-root impact Y = {p.impact_coefficient}, venue volume = {p.volume_share:.0%} of "
        f"the {report.volume_window_days}-day mean aggregate volume, tier rates capped at "
        f"{p.max_tier_rate:.0%}.",
        "",
        "| asset | haircut | fit | test | IM | fit | test | MM | fit | test | position limit USD |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for a in report.assets:
        lines.append(
            f"| {a.symbol} | {a.haircut:.2%} | {a.haircut_evidence.fit.coverage:.2%} "
            f"| {a.haircut_evidence.test.coverage:.2%} | {a.initial_rate:.2%} "
            f"| {a.initial_evidence.fit.coverage:.2%} | {a.initial_evidence.test.coverage:.2%} "
            f"| {a.maintenance_rate:.2%} | {a.maintenance_evidence.fit.coverage:.2%} "
            f"| {a.maintenance_evidence.test.coverage:.2%} | {_usd(a.position_limit_usd)} |"
        )
    lines.append("")
    for a in report.assets:
        lines += _asset_section(a, p)
    return "\n".join(lines)


def write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def calibrate(
    symbol: Annotated[
        list[str] | None, typer.Option(help="Asset to calibrate (repeatable; default: all)")
    ] = None,
    coverage: Annotated[float, typer.Option(help="Target coverage, e.g. 0.99")] = 0.99,
    horizon_days: Annotated[int, typer.Option(help="Margin period of risk (IM, haircuts), days")] = 2,
    liquidation_days: Annotated[int, typer.Option(help="Liquidation horizon (MM), days")] = 1,
    fit: Annotated[str, typer.Option(help="Fit window FIRST:LAST")] = "2018-01-01:2022-12-31",
    test: Annotated[str, typer.Option(help="Out-of-sample window FIRST:LAST")] = "2023-01-01:2025-02-09",
    band: Annotated[float, typer.Option(help="Haircut hysteresis band (absolute, 0.02 = 2 points)")] = 0.02,
    haircut_cap: Annotated[float, typer.Option(help="Largest haircut")] = 0.9,
    volume_share: Annotated[float, typer.Option(help="Venue's share of the aggregate daily volume")] = 0.10,
    implied_vol: Annotated[bool, typer.Option(help="Use implied vol (DVOL) where the data has it")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
    markdown: Annotated[Path | None, typer.Option(help="Write the Markdown evidence section here")] = None,
    book: Annotated[
        Path | None, typer.Option(help="Book to apply the calibration to (with --write-book)")
    ] = None,
    write_book: Annotated[
        Path | None,
        typer.Option(
            help="Write --book with the calibrated haircuts and delta-one IM/MM tiers to this new "
            "file (.yaml or .json; never overwrites)"
        ),
    ] = None,
) -> None:
    """Calibrate haircuts, IM/MM rates and tier sizes to a target coverage, with the back-test
    (fit window and out of sample) behind each number."""
    from crossmargin.adapters.history.market_series import shared_implied_vol, shared_volume
    from crossmargin.adapters.history.prices import shared_price_history
    from crossmargin.engine.calibration import run_calibration

    try:
        _check_book_target(book, write_book)
        for flag, target in (("--markdown", markdown), ("--write-book", write_book)):
            if target is not None:
                check_writable(target, flag)
        fit_first, fit_last = parse_window(fit, "fit")
        test_first, test_last = parse_window(test, "test")
        params = CalibrationParams(
            coverage=coverage,
            horizon_days=horizon_days,
            liquidation_days=liquidation_days,
            haircut_band=band,
            haircut_cap=haircut_cap,
            volume_share=volume_share,
        )
        windows = Windows(fit_first=fit_first, fit_last=fit_last, test_first=test_first, test_last=test_last)
        implied = shared_implied_vol() if implied_vol else None
        report = run_calibration(
            prices=shared_price_history(),
            windows=windows,
            params=params,
            symbols=symbol,
            volume=shared_volume(),
            implied=implied,
        )
        written = None
        if book is not None and write_book is not None:
            from crossmargin.adapters.files.calibrated_book import write_calibrated_book

            written = write_calibrated_book(book, write_book, report)
    except CrossMarginError as error:
        fail(error)
    if as_json:
        sys.stdout.write(json.dumps(calibration_json(report), indent=2) + "\n")
    else:
        Console(width=None if sys.stdout.isatty() else 180).print(calibration_rich_table(report))
    if markdown is not None:
        try:
            write_atomically(markdown, calibration_markdown(report) + "\n")
        except OSError as error:  # writable when checked, not now (a full disk, say)
            fail(cannot_write(markdown, error, "--markdown"))
        Console(stderr=True).print(f"wrote {markdown}")
    if written is not None:
        assets = ", ".join(written.assets) or "none"
        instruments = ", ".join(written.instruments) or "none"
        Console(stderr=True).print(
            f"wrote {written.path}: haircuts of {assets}; IM/MM of {instruments}", highlight=False
        )


def _check_book_target(book: Path | None, write_book: Path | None) -> None:
    """Before any work: --write-book needs --book and a path that does not exist yet."""
    if write_book is None:
        if book is not None:
            raise InputError("--book", "only read with --write-book (where to write the calibrated book)")
        return
    if book is None:
        raise InputError("--write-book", "needs --book, the book to apply the calibration to")
    if write_book.exists():
        raise InputError("--write-book", f"{write_book} exists; refusing to overwrite it")
    if write_book.suffix.lower() not in (".yaml", ".yml", ".json"):
        raise InputError("--write-book", f"{write_book}: the suffix must be .yaml, .yml or .json")
