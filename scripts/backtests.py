"""Generate docs/backtests.md and its figures: every margin model on the same real history.

    python scripts/backtests.py [--from 2014-09-17] [--to 2025-02-09] [--book examples/backtest.yaml]

Walks the book's fixed portfolios day by day (crossmargin.engine.backtest), margins each with
cross (the book's standard schedules), every portfolio-margin preset, HS VaR 99 %, FHS ES 97.5 %
and MC ES 97.5 % using prices known up to that day, and compares with the realised 2-day loss.
Needs ../shared/data (or $CROSSMARGIN_DATA).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from crossmargin.adapters.files import load_book
from crossmargin.adapters.history.prices import shared_price_history
from crossmargin.adapters.volatility import GarchFilter
from crossmargin.cli.backtest_charts import write_pngs
from crossmargin.engine.backtest import COMPARISON_MODELS, BacktestRun, backtest_table, run_backtest

ROOT = Path(__file__).resolve().parents[1]


def _summary(run: BacktestRun) -> list[str]:
    lines = [
        "| model | exceedances / days | rate | Kupiec rejects (p < 5 %) | worst shortfall USD | mean IM USD "
        "| max 5-day rise | max 30-day rise |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = backtest_table(run)
    for model in run.models:
        mine = [r for r in rows if r["model"] == model]
        hits = sum(r["exceedances"] for r in mine)
        days = sum(r["days"] for r in mine)
        rejects = sum(r["kupiec_p_value"] < 0.05 for r in mine)
        worst = max(r["worst_shortfall_usd"] for r in mine)
        mean = sum(r["mean_margin_usd"] for r in mine)
        rise5 = max(r["largest_5d_increase"] for r in mine)
        rise30 = max(r["largest_30d_increase"] for r in mine)
        lines.append(
            f"| {model} | {hits} / {days} | {hits / days:.2%} | {rejects} of {len(mine)} "
            f"| {worst:,.0f} | {mean:,.0f} | {rise5:.0%} | {rise30:.0%} |"
        )
    return lines


def _account_table(run: BacktestRun, account: str) -> list[str]:
    lines = [
        "| model | exc. | rate | Kupiec p | Christoffersen p | worst shortfall USD | mean IM USD | 5d rise "
        "| 30d rise | peak/trough |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in backtest_table(run):
        if r["account_id"] != account:
            continue
        lines.append(
            f"| {r['model']} | {r['exceedances']} | {r['exceedance_rate']:.2%} "
            f"| {r['kupiec_p_value']:.3f} | {r['christoffersen_p_value']:.3f} "
            f"| {r['worst_shortfall_usd']:,.0f} | {r['mean_margin_usd']:,.0f} "
            f"| {r['largest_5d_increase']:.0%} | {r['largest_30d_increase']:.0%} "
            f"| {r['peak_to_trough']:.1f} |"
        )
    return lines


MARCH_2020 = (np.datetime64("2020-03-01"), np.datetime64("2020-03-31"))


def _march_2020(run: BacktestRun) -> list[str]:
    """Per account, the worst realised loss of March 2020 (the 12-13 March crash) against each
    model's margin that day."""
    lines = [
        "| account | day t | realised loss USD | " + " | ".join(run.models) + " |",
        "|---|---|---:|" + "---:|" * len(run.models),
    ]
    for account in run.account_ids:
        first = run.get(account, run.models[0])
        inside = np.flatnonzero((first.days >= MARCH_2020[0]) & (first.days <= MARCH_2020[1]))
        if inside.size == 0:
            continue
        worst = int(inside[np.argmax(first.loss_usd[inside])])
        cells = []
        for model in run.models:
            series = run.get(account, model)
            margin = series.margin_usd[worst]
            cells.append(f"{margin:,.0f}{' **x**' if series.loss_usd[worst] > margin else ''}")
        lines.append(
            f"| {account} | {first.days[worst]} | {first.loss_usd[worst]:,.0f} | " + " | ".join(cells) + " |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--book", default="examples/backtest.yaml")
    # The whole shared history: each account is walked over the part its own symbols cover.
    parser.add_argument("--from", dest="first_day", default="2014-09-17")
    parser.add_argument("--to", dest="last_day", default="2025-02-09")
    parser.add_argument("--out", default=str(ROOT / "docs" / "backtests.md"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    loaded = load_book(ROOT / args.book)

    def progress(done: int, total: int) -> None:
        if done % 100 == 0 or done == total:
            print(f"  {done}/{total} days", file=sys.stderr)

    run = run_backtest(
        loaded,
        COMPARISON_MODELS,
        history=shared_price_history(),
        volatility=GarchFilter(),
        first_day=args.first_day,
        last_day=args.last_day,
        progress=progress,
    )
    out = Path(args.out)
    figures = write_pngs(run, out.parent / "figures")
    lines = [
        "# Back-tests: margin against realised losses on real history",
        "",
        f"Generated by `python scripts/backtests.py` (book `{args.book}`, {run.days[0]} .. {run.days[-1]}, "
        f"{run.days.size} days). Do not edit by hand.",
        "",
        "Each account of the book is a fixed portfolio (spot/perpetuals and collateral; quantities never "
        "change). Every day t it is priced at that day's closes (`../shared/data/prices_daily_yahoo.csv`); "
        "each model computes the initial margin it would have required using prices known up to t; the "
        f"realised loss is equity(t) − equity(t + {run.horizon_days} days), both from full revaluation. "
        "An exceedance is a day whose realised loss is larger than the margin. Kupiec's POF test is at "
        f"the 99 % coverage a CCP targets ({1 - run.coverage:.0%} expected rate); Christoffersen's test "
        "looks for clustering (with overlapping 2-day losses, neighbouring hits are correlated by "
        "construction, so it rejects more often than for daily losses). Procyclicality: the largest "
        "rise of the requirement over any 5 and 30 days, and max / min over the period.",
        "",
        "Models: `cross` is the book's standard per-position rates (Binance-style notional tiers: "
        "1 % IM at the first tier); `portfolio:*` are the venue presets (one-day scenario grids, no "
        "history); `var:hs-var99` is historical-simulation VaR 99 % over the last 730 days of 2-day "
        "moves; `var:fhs-es975` filtered HS ES 97.5 % (EWMA λ = 0.94); `var:mc-es975` Monte Carlo ES "
        "97.5 % (Student-t copula, t(4) marginals at the EWMA volatility, 2,000 seeded draws).",
        "",
        "Each account is walked over the days its own history covers: the underlyings it trades and "
        "the book's collateral assets (USDC from 2018-10-08, SOL from 2020-04-10), the VaR models from "
        "a year after that history starts (they need a window). An account with no such day is left out.",
        "",
        "## All portfolios",
        "",
        *_summary(run),
        "",
        "## March 2020",
        "",
        "The 12-13 March 2020 crash (BTC -37 % close to close on the 12th), the hardest test of "
        "margin coverage in the data: each account's worst realised 2-day loss of the month against "
        "each model's margin that day (**x**: exceeded).",
        "",
        *_march_2020(run),
        "",
    ]
    for name, reason in run.skipped:
        lines += [f"{name} left out: {reason}.", ""]
    for account, figure in zip(run.account_ids, figures, strict=True):
        own = run.get(account, run.models[0]).days
        lines += [
            f"## {account}",
            "",
            f"{own[0]} .. {own[-1]}, {own.size} days.",
            "",
            *_account_table(run, account),
            "",
            f"![{account}](figures/{figure.name})",
            "",
        ]
    lines += [
        "## Reading the numbers",
        "",
        "- Kupiec's test rejects in both directions: the portfolio-margin grids reject because they are "
        "breached far less often than 1 % (they hold more margin than a 99 % cover needs on these "
        "delta-one books), cross margin because it is breached far more often.",
        "- A VaR 99 % model should see about 1 % exceedances; ES 97.5 % is built to sit near VaR 99 % "
        "(equal for normal tails), and on this history all three VaR/ES models land at 0.9-1.1 %.",
        "- Cross margin's low first-tier rates are designed for liquidation at 1-day notice by the "
        "venue's engine, not to cover a 2-day loss: its exceedance rate is the gap an insurance fund fills.",
        "- Filtered HS and Monte Carlo at the current (EWMA) volatility react within days to a "
        "volatility jump (higher 5-day rises: procyclicality), plain HS with a 2-year window reacts slowly "
        "and stays high long after; the stressed floor preset (`var:fhs-es975-floor`) trades one for "
        "the other.",
        "",
    ]
    out.write_text("\n".join(lines), encoding="utf-8")
    seconds = time.perf_counter() - started
    print(f"wrote {out} and {len(figures)} figures in {seconds:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
