"""Venue-wide stress and a ten-round cascade at scale, single process against a Dask LocalCluster.

    python bench/bench_system.py [--accounts N] [--large] [--no-dask]

Default: 1,000,000 accounts of `crossmargin synth`'s seeded book (in memory). `--large`: 10,000,000
accounts written to Parquet block by block and read back by each Dask worker for its own shard
(out of core: the driver never holds the book); the single-process run reads the whole file.

  * baseline, same run: one full cross-margin pass of the engine over the book (`recompute`, the
    median of three), the floor every round pays;
  * stress: the FTX window of November 2022 from the shared data (joint close-to-close moves;
    a -25 % crypto shock without the data), forward (no impact), full close, queue ADL;
  * cascade: the 10 October 2025-like shock (BTC -12 %, ETH -16 %, SOL -31 %) reached in ten steps
    of a price path, one round per step (ten full re-margins at new prices), square-root impact
    with depth down 90 %;
  * the same two on a LocalCluster of 2 workers (2 shards), checked equal to the single process.

Preparing the shards (each builds its RiskEngine: the base evaluation) is timed apart: a venue keeps
that engine alive. Reports accounts/s, the driver's peak resident memory and each worker's resident memory with
its shard loaded, and beside each wall time the process's CPU time (steadier than the wall time on a
shared machine). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from crossmargin.core.margin import CrossMargin
from crossmargin.core.stress.impact import MarketDepth, SquareRootImpact
from crossmargin.core.synthetic import SynthSpec, synth_book, synth_market
from crossmargin.engine.stress import (
    LocalShards,
    Policy,
    Shock,
    StressShard,
    StressVenue,
    hypothetical_shock,
    prepare_venue,
    run_cascade,
    split_path,
    window_shock,
)
from machine import compiled_kernels, cpu_model

POLICY = Policy(name="full/queue")
FUND_USD = 50_000_000.0
# Illustrative depth of one venue (a few % of the aggregated volume in ../shared/data).
IMPACT = SquareRootImpact(
    depth={
        "BTC": MarketDepth(daily_volume_usd=3e9, daily_volatility=0.03),
        "ETH": MarketDepth(daily_volume_usd=1.5e9, daily_volatility=0.04),
        "SOL": MarketDepth(daily_volume_usd=3e8, daily_volatility=0.05),
        "USDC": MarketDepth(daily_volume_usd=5e8, daily_volatility=0.002),
        "USDT": MarketDepth(daily_volume_usd=5e9, daily_volatility=0.002),
    },
    depth_multiplier=0.1,
)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def stress_shock(venue: StressVenue) -> Shock:
    try:
        from crossmargin.adapters.history.stress_windows import historical_moves

        ftx = next(m for m in historical_moves(extra_windows=0) if m.window.name == "ftx-2022-11")
        return window_shock(venue, ftx)[0]
    except Exception as error:  # no shared data here: a hypothetical shock of the same size
        print(f"no shared data ({error}); stress is a -25 % crypto shock", file=sys.stderr)
        return hypothetical_shock(
            venue.book, label="crypto -25 %", moves={"BTC": -0.25, "ETH": -0.25, "SOL": -0.25}
        )


def cascade_path(venue: StressVenue) -> list[Shock]:
    shock = hypothetical_shock(venue.book, label="oct-10", moves={"BTC": -0.12, "ETH": -0.16, "SOL": -0.31})
    return split_path(shock, 10)


CPU_SECONDS: dict[str, float] = {}  # label -> CPU seconds of this process (every thread)


def timed(label: str, fn: Any) -> tuple[Any, float]:
    """Wall seconds of fn(); its CPU seconds go to CPU_SECONDS[label] (on a machine shared with
    other work the CPU time moves less than the wall time: both are printed)."""
    cpu = time.process_time()
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    CPU_SECONDS[label] = time.process_time() - cpu
    print(f"  {label:<34} {seconds:8.3f} s wall {CPU_SECONDS[label]:8.3f} s CPU", flush=True)
    return out, seconds


def single_process(venue: StressVenue, stress: Shock, path: list[Shock]) -> dict[str, Any]:
    n = venue.book.n_accounts
    shards, prepare = timed("prepare (engine per shard)", lambda: LocalShards.of(venue, CrossMargin()))
    shard: StressShard = shards.shards[0]
    # The floor: the median of three full passes (one alone moves with the machine's load).
    passes = [timed(f"baseline: one full margin pass #{k + 1}", shard.engine.recompute)[1] for k in range(3)]
    one_pass = float(np.median(passes))
    one_pass_cpu = float(
        np.median([CPU_SECONDS[f"baseline: one full margin pass #{k + 1}"] for k in range(3)])
    )
    stress_result, stress_s = timed(
        "stress (FTX window)",
        lambda: run_cascade(shards, venue, [stress], policy=POLICY, insurance_fund_usd=FUND_USD),
    )
    shards = LocalShards.of(venue, CrossMargin())
    cascade_result, cascade_s = timed(
        "cascade (ten rounds)",
        lambda: run_cascade(
            shards, venue, path, policy=POLICY, insurance_fund_usd=FUND_USD, impact=IMPACT, max_rounds=1
        ),
    )
    print(
        f"  stress rounds {stress_result.active_rounds}, cascade rounds {len(cascade_result.rounds)}, "
        f"{n / stress_s:,.0f} accounts/s stress, {n * len(cascade_result.rounds) / cascade_s:,.0f} account-rounds/s"
    )
    return {
        "prepare_seconds": prepare,
        "one_pass_seconds": one_pass,
        "one_pass_cpu_seconds": one_pass_cpu,
        "stress_seconds": stress_s,
        "stress_cpu_seconds": CPU_SECONDS["stress (FTX window)"],
        "cascade_seconds": cascade_s,
        "cascade_cpu_seconds": CPU_SECONDS["cascade (ten rounds)"],
        "cascade_rounds": len(cascade_result.rounds),
        "stress": stress_result.summary(),
        "cascade": cascade_result.summary(),
    }


def on_dask(
    venue: StressVenue | None, stress: Shock, path: list[Shock], *, loaders: Any = None
) -> dict[str, Any]:
    from crossmargin.adapters.dask import DaskShards, dask_client

    with dask_client("local", n_workers=2, processes=True) as client:

        def build() -> DaskShards:
            if loaders is not None:
                return DaskShards.from_loaders(client, loaders, CrossMargin())
            return DaskShards.of(client, venue, CrossMargin(), n_shards=2)

        runner, prepare = timed("dask prepare (2 workers)", build)
        stress_result, stress_s = timed(
            "dask stress",
            lambda: run_cascade(runner, venue, [stress], policy=POLICY, insurance_fund_usd=FUND_USD),
        )
        del runner  # release the stress's actors before the cascade's load their shards
        runner = build()
        cascade_result, cascade_s = timed(
            "dask cascade (ten rounds)",
            lambda: run_cascade(
                runner,
                venue,
                path,
                policy=POLICY,
                insurance_fund_usd=FUND_USD,
                impact=IMPACT,
                max_rounds=1,
            ),
        )
        # Resident memory now (the shards still live): a worker process's ru_maxrss may carry
        # its parent's from before the fork, so the peak is not measured there.
        workers = client.run(lambda: __import__("psutil").Process().memory_info().rss / 2**20)
    return {
        "prepare_seconds": prepare,
        "stress_seconds": stress_s,
        "cascade_seconds": cascade_s,
        "stress": stress_result.summary(),
        "cascade": cascade_result.summary(),
        "worker_rss_mb": sorted(workers.values()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=None)
    parser.add_argument("--large", action="store_true", help="10,000,000 accounts via Parquet, out of core")
    parser.add_argument("--no-dask", action="store_true")
    parser.add_argument(
        "--dask-only",
        action="store_true",
        help="the LocalCluster half only (with --large the driver never holds the book: each worker reads its own range)",
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"CROSSMARGIN_KERNEL={compiled_kernels()} (steady state: compiled kernels, bench/machine.py)")
    n = args.accounts or (10_000_000 if args.large else 1_000_000)
    spec = SynthSpec(n_accounts=n, seed=args.seed)
    print(f"bench_system: {n:,} accounts, CPU {cpu_model()}, {platform.python_version()}", flush=True)
    loaders = None
    with tempfile.TemporaryDirectory(prefix="bench_system_") as tmp:
        if args.large:
            from crossmargin.adapters.files.synth_parquet import read_synth, write_synth

            directory = Path(tmp) / "book"
            _, _write_s = timed("synth -> Parquet", lambda: write_synth(spec, directory))
            if args.dask_only:  # the driver reads no account: its view is the empty book
                book = read_synth(directory, n_accounts=0)
            else:
                book, _read_s = timed("read Parquet (single process)", lambda: read_synth(directory))
            bounds = np.linspace(0, n, 3).astype(np.int64)
            loaders = [
                _ParquetSlice(str(directory), int(lo), int(hi - lo)) for lo, hi in itertools.pairwise(bounds)
            ]
        else:
            book, _build_s = timed("synth (in memory)", lambda: synth_book(spec))
        venue = prepare_venue(book, synth_market(book.instruments))
        stress, path = stress_shock(venue), cascade_path(venue)
        if args.dask_only:
            return _dask_only(venue, stress, path, loaders, n)
        single = single_process(venue, stress, path)
        out: dict[str, Any] = {
            "benchmark": "bench_system",
            "cpu": cpu_model(),
            "accounts": n,
            "positions": int(book.positions.nnz),
            "stress_seconds": single["stress_seconds"],
            "cascade_seconds": single["cascade_seconds"],
            "cascade_rounds": single["cascade_rounds"],
            "prepare_seconds": single["prepare_seconds"],
            "baseline_one_pass_seconds": single["one_pass_seconds"],
            "stress_cpu_seconds": single["stress_cpu_seconds"],
            "cascade_cpu_seconds": single["cascade_cpu_seconds"],
            "baseline_one_pass_cpu_seconds": single["one_pass_cpu_seconds"],
            "stress_over_one_pass": single["stress_seconds"] / single["one_pass_seconds"],
            "stress_accounts_per_second": n / single["stress_seconds"],
            "cascade_account_rounds_per_second": n * single["cascade_rounds"] / single["cascade_seconds"],
            "stress_liquidated_usd": single["stress"]["liquidated_notional_usd"],
            "cascade_liquidated_usd": single["cascade"]["liquidated_notional_usd"],
        }
        if not args.no_dask:
            driver_view = (
                venue if loaders is None else prepare_venue(book.select([]), synth_market(book.instruments))
            )
            del book
            if loaders is not None:
                venue = driver_view
            dask = on_dask(driver_view, stress, path, loaders=loaders)
            equal = dask["stress"] == single["stress"] and dask["cascade"] == single["cascade"]
            print(f"  dask == single process: {equal}")
            out.update(
                {
                    "dask_workers": 2,
                    "dask_prepare_seconds": dask["prepare_seconds"],
                    "dask_stress_seconds": dask["stress_seconds"],
                    "dask_cascade_seconds": dask["cascade_seconds"],
                    "dask_equal": equal,
                    "worker_rss_mb": dask["worker_rss_mb"],
                }
            )
        out["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(out))
    return 0 if out.get("dask_equal", True) else 1


def _dask_only(venue: StressVenue, stress: Shock, path: list[Shock], loaders: Any, n: int) -> int:
    """The LocalCluster half alone; last line one JSON object."""
    dask = on_dask(venue, stress, path, loaders=loaders)
    out = {
        "benchmark": "bench_system",
        "cpu": cpu_model(),
        "accounts": n,
        "dask_workers": 2,
        "dask_prepare_seconds": dask["prepare_seconds"],
        "dask_stress_seconds": dask["stress_seconds"],
        "dask_cascade_seconds": dask["cascade_seconds"],
        "worker_rss_mb": dask["worker_rss_mb"],
        "stress_liquidated_usd": dask["stress"]["liquidated_notional_usd"],
        "cascade_liquidated_usd": dask["cascade"]["liquidated_notional_usd"],
        "driver_peak_rss_mb": peak_rss_mb(),
    }
    print(json.dumps(out))
    return 0


class _ParquetSlice:
    """Loader of one shard's accounts from the Parquet book (runs on the worker)."""

    def __init__(self, directory: str, first: int, count: int) -> None:
        self.directory, self.first, self.count = directory, first, count

    def __call__(self) -> tuple[StressVenue, int]:
        from crossmargin.adapters.files.synth_parquet import read_synth

        book = read_synth(Path(self.directory), first_account=self.first, n_accounts=self.count)
        return prepare_venue(book, synth_market(book.instruments)), self.first


if __name__ == "__main__":
    sys.exit(main())
