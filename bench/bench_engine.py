"""Tick → margin calls through the long-lived engine, against a full recompute in the same run.

    python bench/bench_engine.py [--accounts N] [--ticks T] [--model cross|portfolio] [--concentrated]

Builds bench_cross.py's seeded synthetic book (default 1,000,000 accounts, ~10 positions each over
~2,000 instruments on 8 underlyings; 6 collateral assets), puts it in a `RiskEngine` and warms it
as a server does before it reports ready (`RiskEngine.warm_up`, timed apart), then:

  * full recompute: `model.evaluate(book, market)` after a price change (revaluation included):
    what a stateless pipeline pays per tick, the baseline;
  * `engine.on_tick` moving one underlying's index by ±0.5 % per tick, for each underlying
    (LINK ~4 % of positions ... BTC ~40 %): re-margins the holders only, reports p50 / p99 per tick,
    the accounts touched and how many of them only hold the moved asset as collateral (cross
    margin reprices those without running the model: `CollateralRevaluation`);
  * `engine.on_account`: one account's new positions and balances (a fill), p50 / p99 per event.

Every incremental result is checked equal (bit for bit) to a full recompute at the end; the script
exits 1 otherwise. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_cross import UNDERLYINGS, build_assets, build_book, build_instruments, build_market
from crossmargin.core.book import Book
from crossmargin.core.instruments import InstrumentTable
from crossmargin.core.margin import CrossMargin, MarginModel
from crossmargin.core.margin.portfolio import PortfolioMargin
from crossmargin.core.margin.presets import portfolio_preset
from crossmargin.core.margin.result import RESULT_ARRAYS
from crossmargin.core.pricing import revalue
from crossmargin.engine.risk_engine import AccountUpdate, PriceTick, RiskEngine
from machine import compiled_kernels, cpu_model


def percentile_ms(samples: list[float], q: float) -> float:
    return float(np.percentile(np.array(samples) * 1e3, q, method="higher"))


def concentrated(book: Book) -> Book:
    """The same book with each account's positions cut to those on the underlying of its first
    position (vectorised; accounts keep their balances)."""
    positions = book.positions
    owner = book.position_account
    underlying = book.instruments.underlying_index[positions.indices]
    first = positions.indptr[:-1][np.diff(positions.indptr) > 0]
    home = np.full(book.n_accounts, -1, dtype=np.int64)
    home[owner[first]] = underlying[first]
    keep = underlying == home[owner]
    return Book.from_arrays(
        account_ids=book.account_ids,
        assets=book.assets,
        instruments=book.instruments,
        account_index=owner[keep],
        instrument_index=positions.indices[keep].astype(np.int64),
        quantity=positions.data[keep],
        entry_price=book.entry_price[keep],
        balances=book.balances,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--ticks", type=int, default=20, help="ticks per underlying")
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--model", choices=("cross", "portfolio"), default="cross")
    parser.add_argument("--seed", type=int, default=20250601)
    parser.add_argument(
        "--concentrated",
        action="store_true",
        help="each account keeps only its positions on one underlying (that of its first position), "
        "as most venue accounts trade one or two markets",
    )
    args = parser.parse_args(argv)
    print(f"CROSSMARGIN_KERNEL={compiled_kernels()} (steady state: compiled kernels, bench/machine.py)")
    rng = np.random.default_rng(args.seed)
    shape = "one underlying per account" if args.concentrated else "diversified"
    print(
        f"crossmargin bench_engine: {args.accounts:,} accounts ({shape}), model {args.model}, CPU {cpu_model()}"
    )
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")

    instruments, vols = build_instruments(rng)
    table = InstrumentTable.from_instruments(instruments)
    market = build_market(table, vols)
    book = build_book(rng, args.accounts, build_assets(), table, revalue(table, market))
    if args.concentrated:
        book = concentrated(book)
    model: MarginModel = (
        CrossMargin() if args.model == "cross" else PortfolioMargin(portfolio_preset("deribit-pm"))
    )
    t0 = time.perf_counter()
    engine = RiskEngine(book, market, model)
    print(f"engine built (first full evaluation incl. compile/cache load): {time.perf_counter() - t0:.2f} s")
    # What a server does before it reports ready (Monitor.warm_up): the holder index built and
    # every kernel build a tick reaches loaded, so that the ticks below are the steady state
    # (without it the first tick of a kind paid them: BTC p99 270-300 ms, BNB 1.3-1.7 s over
    # 10 ticks on an AMD Zen 3, 2026-12-07).
    t0 = time.perf_counter()
    engine.warm_up()
    warm_up_s = time.perf_counter() - t0
    print(f"engine warm-up (holder index, every kernel build a tick reaches): {warm_up_s:.2f} s")

    # Baseline: a stateless full recompute per tick (revaluation included), best of the ticks.
    full_s: list[float] = []
    for n in range(5):
        moved = market.index_price_usd * (1.0 + 0.001 * (n + 1))
        shocked = market.with_index_prices(moved)  # collateral BTC, ETH... move with their index
        t0 = time.perf_counter()
        model.evaluate(book, shocked)
        full_s.append(time.perf_counter() - t0)
    full_best = min(full_s)
    print(
        f"full recompute per tick: best {full_best * 1e3:.1f} ms, median {statistics.median(full_s) * 1e3:.1f} ms"
    )

    per_underlying: dict[str, dict[str, float]] = {}
    all_ticks: list[float] = []
    held_by = book.instruments.underlying_index[book.positions.indices]
    for u, underlying in enumerate(market.underlyings):
        price = float(market.index_price_usd[u])
        samples: list[float] = []
        touched = collateral_only = 0
        for n in range(args.ticks):
            price *= 1.005 if n % 2 == 0 else 1.0 / 1.005
            t0 = time.perf_counter()
            change = engine.on_tick(PriceTick(prices_usd={underlying: price}))
            samples.append(time.perf_counter() - t0)
            touched = int(change.account_rows.size)
            collateral_only = int(change.collateral_only_rows.size)
        all_ticks += samples
        share = float(np.mean(held_by == u))
        per_underlying[underlying] = {
            "positions_share": share,
            "accounts_touched": touched,
            "collateral_only": collateral_only,  # of which repriced as collateral alone (no model run)
            "p50_ms": percentile_ms(samples, 50),
            "p99_ms": percentile_ms(samples, 99),
        }
        print(
            f"  tick {underlying:>5}: {share:6.1%} of positions, {touched:>9,} accounts re-margined "
            f"({collateral_only:,} collateral only), "
            f"p50 {per_underlying[underlying]['p50_ms']:7.1f} ms, p99 {per_underlying[underlying]['p99_ms']:7.1f} ms"
        )

    # Account events: each a random account's own positions scaled (a fill) and its balances kept.
    event_s: list[float] = []
    ids = book.instruments.ids
    for _ in range(args.events):
        row = int(rng.integers(book.n_accounts))
        lo, hi = book.positions.indptr[row], book.positions.indptr[row + 1]
        update = AccountUpdate(
            account_id=book.account_ids[row],
            instrument_ids=[ids[i] for i in book.positions.indices[lo:hi].tolist()],
            quantity=(book.positions.data[lo:hi] * 1.5).tolist(),
            entry_price=book.entry_price[lo:hi].tolist(),
            balances=dict(zip(book.assets.symbols, book.balances[row].tolist(), strict=True)),
        )
        t0 = time.perf_counter()
        engine.on_account(update)
        event_s.append(time.perf_counter() - t0)
    print(f"account event: p50 {percentile_ms(event_s, 50):.2f} ms, p99 {percentile_ms(event_s, 99):.2f} ms")

    # Correctness: the engine's incremental state equals a full recompute of its book, bit for bit.
    expected = model.evaluate(engine.book, engine.market)
    same = all(
        np.array_equal(getattr(engine.result, f), getattr(expected, f), equal_nan=f == "margin_ratio")
        for f in RESULT_ARRAYS
    )
    print(f"incremental == full recompute, bit for bit: {same}")
    small = min(per_underlying, key=lambda k: per_underlying[k]["positions_share"])
    summary = {
        "bench": "engine",
        "model": args.model,
        "concentrated": args.concentrated,
        "accounts": args.accounts,
        "positions": int(book.positions.nnz),
        "cpu": cpu_model(),
        "full_recompute_ms": full_best * 1e3,
        "warm_up_s": warm_up_s,
        "tick_p50_ms": percentile_ms(all_ticks, 50),
        "tick_p99_ms": percentile_ms(all_ticks, 99),
        "smallest_underlying": small,
        "smallest_tick_p50_ms": per_underlying[small]["p50_ms"],
        "btc_tick_p50_ms": per_underlying["BTC"]["p50_ms"] if "BTC" in per_underlying else None,
        "event_p50_ms": percentile_ms(event_s, 50),
        "event_p99_ms": percentile_ms(event_s, 99),
        "bit_identical": same,
        "underlyings": list(UNDERLYINGS),
    }
    print(json.dumps(summary))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
