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
        "assets": [asdict(a) | {"coverage": None if a.coverage == float("inf") else a.coverage} for a in report.assets],
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
        where = ", ".join(f"{escape(loc)} {u * scale:,.8g}" for loc, u in a.reserves_by_location_units.items())
        table.add_row(
            escape(a.asset),
            f"{a.liabilities_units * scale:,.8g}",
            f"{a.reserves_units * scale:,.8g}",
            _ratio(a.coverage),
            where or "—",
            f"{a.surplus_value_usd:,.2f}",
        )
    console().print(table)
