"""Oracle throughput benchmark: the vectorised core against a per-asset Python loop.

    python bench/bench_oracle.py [--assets 500] [--sources 7] [--ticks 400] [--baseline-ticks 40] [--seed S]

A seeded synthetic feed: per asset an honest random walk (2 bps a tick), seven sources quoting it
with 2 bps of noise, some quotes missing (5 %), some late (10 % one tick old), some corrupted
(1 % at ×10, 1 % at ×0.5), and now and then a +8 % jump of all sources that the circuit
breaker holds and then confirms. Each tick is one `core.oracle.update` over the whole
(assets × sources) matrix: aggregation, MAD filter, breaker, smoothing, uncertainty add-on.

The baseline is `core.oracle.reference.update_scalar`, the same rules one asset at a time in plain
Python, on the first --baseline-ticks ticks; both must agree (status exactly, prices to 1e-12
relative) on those ticks or the script exits 1.

An "update" is one asset's price refreshed from its sources: updates_per_s = assets × ticks / s.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time

import numpy as np

from crossmargin.core.oracle import NS_PER_SECOND, OracleParams, OracleState, ParamTable, QuoteMatrix, update
from crossmargin.core.oracle.reference import AssetState, update_scalar

TOLERANCE_REL = 1e-12


def build_feed(
    rng: np.random.Generator, n_assets: int, n_sources: int, n_ticks: int
) -> tuple[np.ndarray, np.ndarray]:
    """(prices (T, A, S), quote times (T, A, S) int64 ns) with one tick = 1 s."""
    steps = rng.normal(0.0, 0.0002, (n_ticks, n_assets))
    jumps = rng.random((n_ticks, n_assets)) < 0.002
    level = 100.0 * rng.lognormal(0.0, 2.0, n_assets) * np.exp(np.cumsum(steps + jumps * 0.08, axis=0))
    shape = (n_ticks, n_assets, n_sources)
    prices = level[:, :, None] * (1.0 + rng.normal(0.0, 0.0002, shape))
    draw = rng.random(shape)
    prices[draw < 0.01] *= 10.0
    prices[(draw >= 0.01) & (draw < 0.02)] *= 0.5
    prices[(draw >= 0.02) & (draw < 0.07)] = np.nan
    ticks = (np.arange(n_ticks, dtype=np.int64) + 1) * NS_PER_SECOND
    times = np.broadcast_to(ticks[:, None, None], shape).copy()
    times[rng.random(shape) < 0.10] -= NS_PER_SECOND
    return prices, times


def run_vectorised(
    prices: np.ndarray, times: np.ndarray, table: ParamTable, n_ticks: int
) -> tuple[float, list[tuple[np.ndarray, np.ndarray]]]:
    state = OracleState.initial(prices.shape[1])
    results = []
    start = time.perf_counter()
    for tick in range(n_ticks):
        quotes = QuoteMatrix(price_usd=prices[tick], time_ns=times[tick], weight=np.ones_like(prices[tick]))
        state, result = update(state, quotes, now_ns=(tick + 1) * NS_PER_SECOND, params=table)
        results.append((result.price_usd, result.status))
    return time.perf_counter() - start, results


def run_baseline(
    prices: np.ndarray, times: np.ndarray, params: OracleParams, n_ticks: int
) -> tuple[float, list[tuple[list[float], list[int]]]]:
    n_assets, n_sources = prices.shape[1], prices.shape[2]
    states = [AssetState() for _ in range(n_assets)]
    ones = [1.0] * n_sources
    # Python lists, as a per-asset service would hold them: conversion is not timed.
    price_lists = prices[:n_ticks].tolist()
    time_lists = times[:n_ticks].tolist()
    results = []
    start = time.perf_counter()
    for tick in range(n_ticks):
        now_ns = (tick + 1) * NS_PER_SECOND
        for a in range(n_assets):
            states[a] = update_scalar(
                states[a], price_lists[tick][a], time_lists[tick][a], ones, now_ns=now_ns, params=params
            )
        results.append(([s.price_usd for s in states], [s.status for s in states]))
    return time.perf_counter() - start, results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=500)
    parser.add_argument("--sources", type=int, default=7)
    parser.add_argument("--ticks", type=int, default=400)
    parser.add_argument("--baseline-ticks", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    prices, times = build_feed(rng, args.assets, args.sources, args.ticks)
    params = OracleParams(min_sources=3, max_age_ns=3 * NS_PER_SECOND, confirm_sources=args.sources)
    table = ParamTable.uniform(params, args.assets)

    run_vectorised(prices, times, table, min(10, args.ticks))  # warm-up
    timings = [run_vectorised(prices, times, table, args.ticks)[0] for _ in range(args.repeats)]
    best = min(timings)
    _, vector_results = run_vectorised(prices, times, table, args.baseline_ticks)
    baseline_seconds, baseline_results = run_baseline(prices, times, params, args.baseline_ticks)

    max_rel = 0.0
    status_mismatch = 0
    for (v_price, v_status), (b_price, b_status) in zip(vector_results, baseline_results, strict=True):
        b = np.array(b_price)
        both = np.isfinite(b) & np.isfinite(v_price)
        if not np.array_equal(np.isfinite(b), np.isfinite(v_price)):
            status_mismatch += 1
        if both.any():
            max_rel = max(max_rel, float(np.max(np.abs(v_price[both] / b[both] - 1.0))))
        status_mismatch += int(np.sum(v_status != np.array(b_status)))

    updates = args.assets * args.ticks
    updates_per_s = updates / best
    baseline_updates_per_s = args.assets * args.baseline_ticks / baseline_seconds
    held = sum(int(np.sum(s == 1)) for _, s in vector_results)
    summary = {
        "benchmark": "oracle_update",
        "assets": args.assets,
        "sources": args.sources,
        "ticks": args.ticks,
        "seconds_best": round(best, 6),
        "seconds_median": round(statistics.median(timings), 6),
        "ticks_per_s": round(args.ticks / best, 1),
        "tick_latency_us": round(best / args.ticks * 1e6, 1),
        "updates_per_s": round(updates_per_s),
        "baseline_updates_per_s": round(baseline_updates_per_s),
        "speedup": round(updates_per_s / baseline_updates_per_s, 1),
        "baseline_ticks": args.baseline_ticks,
        "max_rel_diff": max_rel,
        "status_mismatches": status_mismatch,
        "held_asset_ticks_in_check": held,
        "seed": args.seed,
    }
    print(
        f"oracle update, {args.assets} assets × {args.sources} sources: "
        f"{summary['tick_latency_us']} µs per tick, {updates_per_s:,.0f} asset-updates/s "
        f"(per-asset Python loop: {baseline_updates_per_s:,.0f}/s, ×{summary['speedup']})"
    )
    ok = status_mismatch == 0 and max_rel <= TOLERANCE_REL and math.isfinite(best)
    if not ok:
        print(
            f"FAIL: vectorised and loop differ ({status_mismatch} statuses, {max_rel:.3e} rel)",
            file=sys.stderr,
        )
    print(json.dumps(summary))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
