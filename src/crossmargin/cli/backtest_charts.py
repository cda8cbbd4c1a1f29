"""Back-test charts (rendering, like the Rich tables): per account, the margin each model required
against the realised h-day loss, exceedances marked; a PNG per account and one self-contained
HTML page (PNGs inlined as base64).

matplotlib is imported inside the functions (Agg backend, no display): it is only needed here.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path

from crossmargin.adapters.extras import import_extra
from crossmargin.engine.backtest import BacktestRun, backtest_table

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


def account_chart_png(run: BacktestRun, account_id: str, models: Sequence[str] | None = None) -> bytes:
    """PNG bytes: realised loss (grey bars), each model's margin (lines), exceedances (markers)."""
    matplotlib = import_extra("matplotlib", extra="charts", purpose="back-test charts")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = list(models) if models is not None else list(run.models)
    first = run.get(account_id, chosen[0])
    days = first.days.astype("datetime64[D]").astype(object)  # the account's own days
    figure, axis = plt.subplots(figsize=(11, 4.2), dpi=100)
    loss = first.loss_usd
    axis.bar(
        days, loss, width=1.0, color="#999999", alpha=0.55, label=f"realised {run.horizon_days}-day loss"
    )
    for n, model in enumerate(chosen):
        series = run.get(account_id, model)
        color = COLORS[n % len(COLORS)]
        axis.plot(
            days,
            series.margin_usd,
            color=color,
            linewidth=1.1,
            label=f"{model} ({series.stats.exceedances} exc.)",
        )
        hits = series.exceeded
        if hits.any():
            axis.scatter(
                [d for d, h in zip(days, hits, strict=True) if h],
                series.loss_usd[hits],
                color=color,
                marker="x",
                s=28,
                zorder=3,
            )
    axis.axhline(0.0, color="black", linewidth=0.5)
    axis.set_title(f"{account_id}: initial margin vs realised {run.horizon_days}-day loss (x = exceedance)")
    axis.set_ylabel("USD")
    axis.legend(fontsize=7, ncol=3, loc="upper left")
    axis.grid(alpha=0.3)
    figure.autofmt_xdate()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def write_pngs(run: BacktestRun, directory: Path, *, prefix: str = "backtest") -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for account in run.account_ids:
        path = directory / f"{prefix}-{account}.png"
        path.write_bytes(account_chart_png(run, account))
        paths.append(path)
    return paths


def html_page(run: BacktestRun) -> str:
    """One self-contained page: the statistics table and every account's chart."""
    rows = backtest_table(run)
    head = (
        "<tr><th>account</th><th>model</th><th>days</th><th>exceedances</th><th>rate</th>"
        "<th>Kupiec p</th><th>Christoffersen p</th><th>worst shortfall USD</th><th>mean margin USD</th>"
        "<th>max 5d rise</th><th>max 30d rise</th><th>peak/trough</th></tr>"
    )
    body = []
    for r in rows:
        flag = ' class="bad"' if float(r["kupiec_p_value"]) < 0.05 else ""
        body.append(
            f"<tr{flag}><td>{html.escape(str(r['account_id']))}</td><td>{html.escape(str(r['model']))}</td>"
            f"<td>{r['days']}</td><td>{r['exceedances']}</td><td>{float(r['exceedance_rate']):.2%}</td>"
            f"<td>{float(r['kupiec_p_value']):.3f}</td><td>{float(r['christoffersen_p_value']):.3f}</td>"
            f"<td>{float(r['worst_shortfall_usd']):,.0f}</td><td>{float(r['mean_margin_usd']):,.0f}</td>"
            f"<td>{float(r['largest_5d_increase']):.0%}</td><td>{float(r['largest_30d_increase']):.0%}</td>"
            f"<td>{float(r['peak_to_trough']):.1f}</td></tr>"
        )
    images = []
    for account in run.account_ids:
        data = base64.b64encode(account_chart_png(run, account)).decode("ascii")
        images.append(
            f"<h2>{html.escape(account)}</h2>"
            f'<img alt="{html.escape(account)}" src="data:image/png;base64,{data}">'
        )
    first, last = str(run.days[0]), str(run.days[-1])
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>crossmargin back-test</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}td:nth-child(-n+2){text-align:left}"
        "tr.bad{background:#fde0e0}img{max-width:100%}</style></head><body>"
        f"<h1>Back-test · {html.escape(run.book)} · {first} .. {last}</h1>"
        f"<p>{run.horizon_days}-day realised loss vs initial margin; Kupiec at {1 - run.coverage:.1%} "
        "target exceedance rate (red rows: rejected at 5 %).</p>"
        f"<table>{head}{''.join(body)}</table>{''.join(images)}</body></html>"
    )
