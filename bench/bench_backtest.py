"""The back-test walk: numba's parallel kernels on one thread against the default thread pool.

    python bench/bench_backtest.py [--from 2020-03-01] [--to 2020-03-31] [--repeats 3]

Walks examples/backtest.yaml over [--from, --to] of the shared daily closes ($CROSSMARGIN_DATA)
under every comparison model (cross, four portfolio-margin presets, HS VaR 99 %, FHS and MC ES
97.5 %), as scripts/backtests.py does. Each day is one account of one to three positions: the
kernels' work (at most a few thousand scenarios) is smaller than a parallel region's fork and
join, which on a loaded machine waits for a second core. `run_backtest` runs the walk inside
`one_numba_thread`; the baseline is the same walk with that block replaced by a no-op (the
kernels on numba's default thread count). A and B alternate, best and median of --repeats each
after one warm-up walk (compiles and loads the kernels, reads the history). Timed: the process's
CPU seconds (user + system, all threads) and wall seconds of `run_backtest`. Checks: both give
bit-identical margins and losses.

The last line printed is one JSON object: cpu_seconds (one thread), baseline_cpu_seconds,
cpu_speedup, wall_seconds, baseline_wall_seconds, account_days, threads, load_average, ok.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

import numba
import numpy as np

from crossmargin.adapters.files import load_book
from crossmargin.adapters.history.prices import shared_price_history
from crossmargin.engine import backtest
from crossmargin.engine.backtest import COMPARISON_MODELS, BacktestRun, run_backtest

BOOK = Path(__file__).resolve().parents[1] / "examples" / "backtest.yaml"


def _walk(first_day: str, last_day: str, *, one_thread: bool) -> tuple[BacktestRun, float, float]:
    loaded = load_book(BOOK)
    history = shared_price_history()
    patch = (
        contextlib.nullcontext()
        if one_thread
        else mock.patch.object(backtest, "one_numba_thread", contextlib.nullcontext)
    )
    with patch:
        cpu, wall = time.process_time(), time.perf_counter()
        run = run_backtest(loaded, COMPARISON_MODELS, history=history, first_day=first_day, last_day=last_day)
        return run, time.process_time() - cpu, time.perf_counter() - wall


def _same(a: BacktestRun, b: BacktestRun) -> bool:
    return all(
        np.array_equal(x.margin_usd, y.margin_usd) and np.array_equal(x.loss_usd, y.loss_usd)
        for x, y in zip(a.series, b.series, strict=True)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--from", dest="first_day", default="2020-03-01")
    parser.add_argument("--to", dest="last_day", default="2020-03-31")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    _walk(args.first_day, args.last_day, one_thread=True)  # warm-up: kernels loaded, history read
    _walk(args.first_day, args.last_day, one_thread=False)
    cpu: dict[bool, list[float]] = {True: [], False: []}
    wall: dict[bool, list[float]] = {True: [], False: []}
    runs: dict[bool, BacktestRun] = {}
    for _ in range(args.repeats):
        for one_thread in (True, False):
            run, c, w = _walk(args.first_day, args.last_day, one_thread=one_thread)
            cpu[one_thread].append(c)
            wall[one_thread].append(w)
            runs[one_thread] = run
    account_days = sum(s.days.size for s in runs[True].series) // len(runs[True].models)
    ok = _same(runs[True], runs[False])
    load = os.getloadavg()[0]
    for one_thread, name in ((True, "one thread"), (False, f"{numba.get_num_threads()} threads")):
        print(
            f"{name:>10}: CPU median {statistics.median(cpu[one_thread]):.2f} s "
            f"(best {min(cpu[one_thread]):.2f}), wall median {statistics.median(wall[one_thread]):.2f} s "
            f"over {account_days:,} account-days x {len(COMPARISON_MODELS)} models"
        )
    summary = {
        "benchmark": "backtest_walk",
        "first_day": args.first_day,
        "last_day": args.last_day,
        "account_days": account_days,
        "models": len(COMPARISON_MODELS),
        "cpu_seconds": statistics.median(cpu[True]),
        "baseline_cpu_seconds": statistics.median(cpu[False]),
        "cpu_speedup": statistics.median(cpu[False]) / statistics.median(cpu[True]),
        "wall_seconds": statistics.median(wall[True]),
        "baseline_wall_seconds": statistics.median(wall[False]),
        "threads": numba.get_num_threads(),
        "load_average": load,
        "identical": ok,
        "ok": ok,
    }
    print(json.dumps(summary))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
