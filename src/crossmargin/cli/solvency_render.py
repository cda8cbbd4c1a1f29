"""Rich and JSON rendering of the solvency report (`crossmargin prove solvency`)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import Any

from rich.markup import escape
from rich.table import Table

from crossmargin.cli.render import console
from crossmargin.core.solvency.reserves import SolvencyReport


def _ratio(value: float) -> str:
    return "∞" if value == float("inf") else f"{value:.4f}"


def solvency_dict(report: SolvencyReport) -> dict[str, Any]:
    return {
        "assets": [
            asdict(a) | {"coverage": None if a.coverage == float("inf") else a.coverage}
            for a in report.assets
        ],
        "covered_usd": report.covered_usd,
        "liabilities_usd": report.liabilities_usd,
        "ratio": None if report.ratio == float("inf") else report.ratio,
        "shortfall_assets": list(report.shortfall_assets),
    }


def render_solvency(report: SolvencyReport, *, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(solvency_dict(report), indent=2) + "\n")
        return
    table = Table(title=f"solvency · overall ratio {_ratio(report.ratio)} (haircut reserves / liabilities)")
    for column in ("asset", "liabilities", "reserves", "coverage", "by location", "surplus value USD"):
        table.add_column(column, justify="left" if column in ("asset", "by location") else "right")
    for a in report.assets:
        scale = 10.0**-a.decimals
        where = ", ".join(
            f"{escape(loc)} {u * scale:,.8g}" for loc, u in a.reserves_by_location_units.items()
        )
        table.add_row(
            escape(a.asset),
            f"{a.liabilities_units * scale:,.8g}",
            f"{a.reserves_units * scale:,.8g}",
            _ratio(a.coverage),
            where or "—",
            f"{a.surplus_value_usd:,.2f}",
        )
    console().print(table)


def render_custody(report: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    failures = report["locations"][1:]
    table = Table(title="collateral by location · cross margin, USD")
    for column in ("account", "where", "equity", "MM", "mobilised equity", *(f"{f} fails" for f in failures)):
        table.add_column(escape(column), justify="left" if column in ("account", "where") else "right")
    for a in report["accounts"]:
        where = ", ".join(f"{escape(k)} {v:,.0f}" for k, v in a["collateral_usd_by_location"].items())
        cells = [
            f"{a['failure_equity_usd'][f]:,.2f}"
            + (" [red]< MM[/]" if f in a["failure_below_maintenance"] else "")
            for f in failures
        ]
        table.add_row(
            escape(a["account"]),
            where or "—",
            f"{a['equity_usd']:,.2f}",
            f"{a['maintenance_margin_usd']:,.2f}",
            f"{a['mobilised_equity_usd']:,.2f}",
            *cells,
        )
    console().print(table)
