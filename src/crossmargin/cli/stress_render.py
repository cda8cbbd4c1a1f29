"""Rich tables and PNG charts of venue-wide stresses and cascades (matplotlib, Agg backend,
imported inside the chart function: only a chart needs it)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from crossmargin.engine.stress import CascadeResult


def report_table(results: Sequence[CascadeResult], *, title: str) -> Table:
    """One row per scenario (or policy): the venue-wide report. The fund's columns add up: fund
    left = the fund given + fund in (liquidation fees, ADL surplus) - fund used."""
    table = Table(title=title)
    columns = (
        "scenario",
        "policy",
        "< MM",
        "< 0",
        "shortfall USD",
        "top-10 loss",
        "rounds",
        "liquidated USD",
        "collateral sold USD",
        "fund in USD",
        "fund used USD",
        "fund left USD",
        "ADL USD",
        "ADL haircut USD",
        "bad debt USD",
    )
    for c in columns:
        table.add_column(c, justify="left" if c in ("scenario", "policy") else "right")
    for r in results:
        bad = r.bad_debt_usd > 0
        table.add_row(
            escape(r.label),
            escape(r.policy),
            f"{r.under_maintenance:,}",
            f"{r.under_zero:,}",
            f"{r.shortfall_usd:,.0f}",
            f"{r.top10_loss_share:.0%}",
            str(r.active_rounds),
            f"{r.liquidated_notional_usd:,.0f}",
            f"{sum(r.collateral_sold_usd().values()):,.0f}",
            f"{r.fund_in_usd:,.0f}",
            f"{r.fund_used_usd:,.0f}",
            f"{r.fund_end_usd:,.0f}",
            f"{r.adl_notional_usd:,.0f}",
            f"{r.adl_haircut_usd:,.0f}",
            f"[red]{r.bad_debt_usd:,.0f}[/]" if bad else f"{r.bad_debt_usd:,.0f}",
        )
    return table


def path_table(result: CascadeResult) -> Table:
    """Round by round: prices, liquidated notional per underlying, fund, ADL, bad debt."""
    table = Table(title=f"cascade · {escape(result.label)} · {escape(result.policy)}")
    moved = [n for n, f in enumerate(result.factors) if any(r.price_factor[n] != 1.0 for r in result.rounds)]
    for c in (
        "step",
        "round",
        *(f"{result.factors[n]}" for n in moved),
        "accounts",
        "liquidated USD",
        "fund USD",
        "ADL USD",
        "bad debt USD",
    ):
        table.add_column(c, justify="right")
    for r in result.rounds:
        table.add_row(
            str(r.step),
            str(r.round),
            *(f"{r.price_factor[n] - 1:+.2%}" for n in moved),
            f"{r.liquidated_accounts:,}",
            f"{r.liquidated_notional_usd:,.0f}",
            f"{r.fund_usd:,.0f}",
            f"{r.adl_notional_usd:,.0f}",
            f"{r.bad_debt_usd:,.0f}",
        )
    return table


def write_chart(results: Sequence[CascadeResult], path: Path) -> Path:
    """Price path, insurance fund path and liquidated notional per round, one line per result;
    written to a temporary file and renamed (never half-written)."""
    from crossmargin.adapters.extras import import_extra

    matplotlib = import_extra("matplotlib", extra="charts", purpose="stress and cascade charts")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (prices, fund, volume) = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    for result in results:
        x = list(range(1, len(result.rounds) + 1))
        name = result.policy if len({r.label for r in results}) == 1 else result.label
        for n, factor in enumerate(result.factors):
            path_ = [r.price_factor[n] for r in result.rounds]
            if any(v != 1.0 for v in path_):
                prices.plot(x, [100 * (v - 1) for v in path_], marker="o", label=f"{factor} · {name}")
        fund.plot(x, [r.fund_usd / 1e6 for r in result.rounds], marker="o", label=name)
        volume.plot(x, [r.liquidated_notional_usd / 1e6 for r in result.rounds], marker="o", label=name)
    prices.set_ylabel("price move, %")
    fund.set_ylabel("insurance fund, M USD")
    volume.set_ylabel("liquidated, M USD")
    volume.set_xlabel("round")
    for axis in (prices, fund, volume):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, ncol=2)
    figure.suptitle(results[0].label if len({r.label for r in results}) == 1 else "stress scenarios")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(handle)
    try:
        figure.savefig(tmp, dpi=110)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a chart is for sharing
        os.replace(tmp, path)
    finally:
        plt.close(figure)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
