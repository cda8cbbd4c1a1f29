"""Cross-margin throughput benchmark: the fused numba kernel against a plain Python loop.

    python bench/bench_cross.py [--accounts N] [--large] [--seed S] [--repeats R]

Builds a seeded synthetic book (default 100,000 accounts, --large 1,000,000; ~10 positions per
account over ~2,000 instruments: BTC/ETH/SOL and a few alts; linear and inverse perpetuals, dated
futures, linear and inverse options; Deribit linear-growth and Binance-style notional-tier margin
schedules; heavy-tailed sizes; 6 collateral assets with progressive haircut tiers and some
borrowed balances), then times

  * CrossMargin().evaluate(book, market, valuation)   valuation precomputed (the hot path)
  * CrossMargin().evaluate(book, market)              including revalue()

after a warm-up (numba compiles once, cache=True), best and median of several repeats.

The baseline is a straightforward per-account Python loop written here (Python floats, the same
per-instrument arrays and tier tables) on a subsample; it must agree with the vectorised result
to 1e-9 relative (denominator max(|reference|, 1 USD)) or the script exits 1.

The machine's memory bandwidth is measured in the same run (numpy sum, numpy copy, and a numba
parallel sum using the same threads as the kernel), and the floor for reading the book's bytes
(indptr, indices, quantity, entry_price, balances) is reported next to the kernel time.

The last line printed is one JSON object (accounts_per_s, speedup, ...).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable

import numba
import numpy as np

from crossmargin.core.assets import Asset, AssetTable, HaircutTier
from crossmargin.core.book import Book
from crossmargin.core.instruments import (
    Instrument,
    InstrumentKind,
    InstrumentTable,
    MarginSchedule,
    OptionType,
    RateTier,
    Settlement,
)
from crossmargin.core.margin import CrossMargin
from crossmargin.core.margin.options_rule import OptionMarginParams, option_unit_margin
from crossmargin.core.margin.requirements import book_totals
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import InstrumentValuation, revalue
from machine import compiled_kernels

NS_PER_DAY = 86_400 * 10**9
VALUATION_NS = 1_748_736_000 * 10**9  # 2025-06-01T00:00:00Z
TOLERANCE_REL = 1e-9

# underlying: (index USD, ATM vol, Deribit-style inverse contract face USD, weight in the book)
UNDERLYINGS: dict[str, tuple[float, float, float, float]] = {
    "BTC": (104_000.0, 0.55, 10.0, 0.40),
    "ETH": (2_500.0, 0.70, 1.0, 0.25),
    "SOL": (155.0, 0.85, 1.0, 0.12),
    "XRP": (2.2, 0.90, 1.0, 0.06),
    "DOGE": (0.19, 1.00, 1.0, 0.05),
    "AVAX": (21.0, 0.95, 1.0, 0.04),
    "LINK": (14.0, 0.95, 1.0, 0.04),
    "BNB": (660.0, 0.60, 1.0, 0.04),
}


# ---------------------------------------------------------------------------------------------
# Synthetic market and book
# ---------------------------------------------------------------------------------------------


def binance_tiers(rng: np.random.Generator, n_tiers: int, base_floor: float, im0: float) -> MarginSchedule:
    """Binance-style notional tiers: floors x4-5 apart, IM rate doubling-ish, MM = IM / 2."""
    floors = [0.0]
    for _ in range(n_tiers - 1):
        floors.append((floors[-1] or base_floor / 4.5) * float(rng.uniform(4.0, 5.0)))
    tiers = []
    rate = im0
    for floor in floors:
        tiers.append(
            RateTier(
                above_notional_usd=round(floor, 2),
                initial_rate=min(rate, 1.0),
                maintenance_rate=min(rate, 1.0) / 2.0,
            )
        )
        rate *= 2.0 if rate < 0.1 else 1.5
    return MarginSchedule(tiers=tuple(tiers))


def deribit_growth(initial_rate: float, maintenance_rate: float, rate_per_unit: float) -> MarginSchedule:
    return MarginSchedule.flat(
        initial_rate=initial_rate, maintenance_rate=maintenance_rate, rate_per_unit=rate_per_unit
    )


def build_instruments(
    rng: np.random.Generator, target: int = 2_000
) -> tuple[list[Instrument], dict[str, float]]:
    """~`target` instruments; returns them and the implied vol of each option (by id)."""
    instruments: list[Instrument] = []
    vols: dict[str, float] = {}
    expiries_days = [3, 10, 17, 31, 59, 94, 122, 185, 276, 367]
    future_days = [10, 17, 31, 59, 94, 185]
    n_options_target = target - len(UNDERLYINGS) * (2 + 2 * len(future_days))
    for name, (spot, atm_vol, face, weight) in UNDERLYINGS.items():
        tick = 10.0 ** math.floor(math.log10(spot) - 2)
        first_floor = 50_000.0 if spot > 1_000 else (25_000.0 if spot > 100 else 5_000.0)
        # Perpetuals: linear USDT (tiered) and inverse coin-margined (Deribit growth).
        instruments.append(
            Instrument(
                id=f"{name}-USDT-PERP",
                kind=InstrumentKind.PERPETUAL,
                underlying=name,
                settlement=Settlement.LINEAR,
                contract_size=1.0,
                margin=binance_tiers(rng, int(rng.integers(6, 11)), first_floor, 0.008),
            )
        )
        instruments.append(
            Instrument(
                id=f"{name}-PERPETUAL",
                kind=InstrumentKind.PERPETUAL,
                underlying=name,
                settlement=Settlement.INVERSE,
                contract_size=face,
                margin=deribit_growth(0.02, 0.01, 5e-5 * spot / 104_000.0),
            )
        )
        # Dated futures: 4 linear (tiered) + 4 inverse (growth).
        for d in future_days:
            exp = VALUATION_NS + d * NS_PER_DAY
            instruments.append(
                Instrument(
                    id=f"{name}-USDT-{d}D",
                    kind=InstrumentKind.FUTURE,
                    underlying=name,
                    settlement=Settlement.LINEAR,
                    contract_size=1.0,
                    expiry_ns=exp,
                    margin=binance_tiers(rng, int(rng.integers(4, 9)), first_floor / 2.0, 0.01),
                )
            )
            instruments.append(
                Instrument(
                    id=f"{name}-{d}D",
                    kind=InstrumentKind.FUTURE,
                    underlying=name,
                    settlement=Settlement.INVERSE,
                    contract_size=face,
                    expiry_ns=exp,
                    margin=deribit_growth(0.025, 0.0125, 4e-5 * spot / 104_000.0),
                )
            )
        # Options: BTC/ETH inverse (Deribit) + linear; others linear (USDC options).
        n_opt = round(n_options_target * weight * 1.05)
        per_expiry = max(2, n_opt // len(expiries_days) // 2)  # calls + puts
        for d in expiries_days:
            exp = VALUATION_NS + d * NS_PER_DAY
            width = atm_vol * math.sqrt(d / 365.0)
            moneyness = np.exp(np.linspace(-2.0 * width, 2.0 * width, per_expiry))
            for j, m in enumerate(moneyness):
                strike = max(tick, round(spot * m / tick) * tick)
                inverse = name in ("BTC", "ETH") and j % 2 == 0
                settlement = Settlement.INVERSE if inverse else Settlement.LINEAR
                cs = 1.0 if inverse or spot > 100 else (100.0 if spot > 1 else 1000.0)
                for otype in (OptionType.CALL, OptionType.PUT):
                    oid = f"{name}-{d}D-{strike:.6g}-{'C' if otype == OptionType.CALL else 'P'}-{'I' if inverse else 'L'}"
                    if oid in vols:
                        continue
                    instruments.append(
                        Instrument(
                            id=oid,
                            kind=InstrumentKind.OPTION,
                            underlying=name,
                            settlement=settlement,
                            contract_size=cs,
                            expiry_ns=exp,
                            strike=strike,
                            option_type=otype,
                        )
                    )
                    skew = 0.15 * abs(math.log(m))
                    vols[oid] = atm_vol * (1.0 + skew) * float(rng.uniform(0.97, 1.03))
    return instruments, vols


def build_assets() -> AssetTable:
    def tiers(*pairs: tuple[float, float]) -> tuple[HaircutTier, ...]:
        return tuple(HaircutTier(above=a, haircut=h) for a, h in pairs)

    return AssetTable.from_assets(
        [
            Asset(
                symbol="USDT",
                haircut_tiers=tiers((0, 0.0), (1e6, 0.02), (5e6, 0.05), (2e7, 0.10)),
                borrow_rate_apr=0.08,
            ),
            Asset(
                symbol="USDC",
                haircut_tiers=tiers((0, 0.0), (2e6, 0.01), (1e7, 0.03)),
                borrow_rate_apr=0.07,
            ),
            Asset(
                symbol="BTC",
                haircut_tiers=tiers((0, 0.05), (10, 0.07), (50, 0.10), (200, 0.15), (1000, 0.25)),
                liability_weight=1.05,
                borrow_rate_apr=0.03,
            ),
            Asset(
                symbol="ETH",
                haircut_tiers=tiers((0, 0.05), (100, 0.08), (1000, 0.12), (10_000, 0.2)),
                liability_weight=1.05,
                borrow_rate_apr=0.04,
            ),
            Asset(
                symbol="SOL",
                haircut_tiers=tiers((0, 0.10), (2_000, 0.15), (20_000, 0.25), (100_000, 0.4)),
                liability_weight=1.1,
                borrow_rate_apr=0.06,
            ),
            Asset(
                symbol="BNB",
                haircut_tiers=tiers((0, 0.10), (500, 0.15), (5_000, 0.3)),
                liability_weight=1.1,
                borrow_rate_apr=0.05,
            ),
        ]
    )


STABLE_USD = {"USDT": 1.0, "USDC": 1.0}  # stablecoins at par; coins at their index (UNDERLYINGS)


def asset_prices_usd(assets: AssetTable) -> np.ndarray:
    """USD per unit of each of `assets` (what `build_market` prices them at)."""
    return np.array([STABLE_USD.get(s) or UNDERLYINGS[s][0] for s in assets.symbols])


def build_market(table: InstrumentTable, vols: dict[str, float]) -> MarketState:
    return MarketState.build(
        table,
        valuation_ns=VALUATION_NS,
        index_prices={u: v[0] for u, v in UNDERLYINGS.items()},
        rate=0.0,
        implied_vols=vols,
        asset_symbols=build_assets().symbols,  # coins at their index, stablecoins at par
        asset_prices=STABLE_USD,
    )


def build_book(
    rng: np.random.Generator,
    n_accounts: int,
    assets: AssetTable,
    table: InstrumentTable,
    valuation: InstrumentValuation,
) -> Book:
    """Vectorised, seeded synthetic book (see module docstring)."""
    n_inst = table.n_instruments
    # Positions per account: geometric-ish mixture around 10 (min 1, heavy right tail, capped).
    counts = np.minimum(rng.negative_binomial(3, 3.0 / 13.0, size=n_accounts) + 1, 200)
    rows = np.repeat(np.arange(n_accounts, dtype=np.int64), counts)
    # Instrument popularity: perps and near futures dominate, options Zipf-like.
    popularity = np.where(table.is_option, 1.0, 25.0) * (1.0 / (1.0 + rng.permutation(n_inst))) ** 0.6
    popularity /= popularity.sum()
    cols = rng.choice(n_inst, size=rows.size, p=popularity)
    # Drop duplicate (account, instrument) pairs: keys are sorted by construction after unique.
    key = np.unique(rows * n_inst + cols)
    rows, cols = key // n_inst, key % n_inst
    nnz = rows.size
    # Heavy-tailed USD notional: Pareto(alpha=1.1) from $2,000, capped at $500M.
    notional_usd = np.minimum(2_000.0 * (1.0 + rng.pareto(1.1, size=nnz)), 5e8)
    contracts = notional_usd / valuation.notional_usd[cols]
    # Inverse contracts and options trade whole or 0.1 contracts; keep at least one lot.
    lot = np.where(table.is_inverse[cols] & ~table.is_option[cols], 1.0, 0.1)
    contracts = np.maximum(np.round(contracts / lot) * lot, lot)
    sign = np.where(rng.random(nnz) < 0.5, -1.0, 1.0)
    quantity = sign * contracts
    # Entry prices around today's mark (settlement units: USD for linear, USD for inverse futures,
    # coin premium for inverse options, USD premium for linear options).
    option = table.is_option[cols]
    mark = np.where(option, valuation.option_premium_settlement[cols], valuation.mark_price[cols])
    mark = np.where(option, np.maximum(mark, 1e-9), mark)
    drift = np.exp(rng.normal(0.0, np.where(option, 0.3, 0.05)))
    entry = mark * drift
    # Balances: 6 assets, sparse, lognormal sizes; ~3% of held entries borrowed.
    k = assets.n_assets
    hold_p = np.array([0.85, 0.30, 0.35, 0.25, 0.10, 0.08])[:k]
    typical_usd = np.array([20_000.0, 15_000.0, 30_000.0, 15_000.0, 5_000.0, 4_000.0])[:k]
    held = rng.random((n_accounts, k)) < hold_p
    usd = typical_usd * rng.lognormal(0.0, 1.6, size=(n_accounts, k))
    balances = np.where(held, usd / asset_prices_usd(assets), 0.0)
    borrowed = held & (rng.random((n_accounts, k)) < 0.03)
    balances = np.where(borrowed, -0.3 * balances, balances)
    ids = [f"a{n}" for n in range(n_accounts)]
    return Book.from_arrays(
        account_ids=ids,
        assets=assets,
        instruments=table,
        account_index=rows,
        instrument_index=cols,
        quantity=quantity,
        entry_price=entry,
        balances=balances,
    )


# ---------------------------------------------------------------------------------------------
# Baseline: plain per-account Python loop
# ---------------------------------------------------------------------------------------------


def baseline_loop(
    book: Book,
    valuation: InstrumentValuation,
    params: OptionMarginParams,
    rows: np.ndarray,
    asset_price_usd: np.ndarray,
) -> tuple[list[float], list[float], list[float], list[float]]:
    """Reference implementation: for each account, for each position, Python floats only.

    value = q (unit + coeff * (1/E if inverse else E)); IM/MM = |q| notional (tier rate +
    rate_per_unit |q| size) - tier deduction + |q| option margin (short/long); collateral with
    progressive haircut tiers, borrowings at price x liability weight.
    """
    table = book.instruments
    assets = book.assets
    om = option_unit_margin(table, valuation, params)
    # The same per-instrument arrays, as Python lists (loaded once, not timed per account).
    inverse = table.is_inverse.tolist()
    unit = valuation.unit_value_usd.tolist()
    coeff = valuation.entry_coefficient_usd.tolist()
    notional = valuation.notional_usd.tolist()
    size_units = valuation.size_units.tolist()
    rpu = table.rate_per_unit.tolist()
    im_short, mm_short = om.initial_short_usd.tolist(), om.maintenance_short_usd.tolist()
    im_long, mm_long = om.initial_long_usd.tolist(), om.maintenance_long_usd.tolist()
    floors = table.tier_floor_usd.tolist()
    im_rate, mm_rate = table.tier_initial_rate.tolist(), table.tier_maintenance_rate.tolist()
    im_ded, mm_ded = table.tier_initial_deduction_usd.tolist(), table.tier_maintenance_deduction_usd.tolist()
    price = asset_price_usd.tolist()
    weight = assets.liability_weight.tolist()
    hc_floor, hc_cut, hc_below = (
        assets.tier_floor.tolist(),
        assets.tier_haircut.tolist(),
        assets.tier_value_below.tolist(),
    )
    indptr = book.positions.indptr
    indices = book.positions.indices
    qty_all = book.positions.data
    entry_all = book.entry_price
    balances = book.balances

    out_col, out_val, out_im, out_mm = [], [], [], []
    for a in rows.tolist():
        collateral = 0.0
        for kk, b in enumerate(balances[a].tolist()):
            if b >= 0.0:
                fl = hc_floor[kk]
                t = 0
                for c in range(1, len(fl)):
                    if b >= fl[c]:
                        t = c
                collateral += price[kk] * (hc_below[kk][t] + (1.0 - hc_cut[kk][t]) * (b - fl[t]))
            else:
                collateral += b * price[kk] * weight[kk]
        start, stop = int(indptr[a]), int(indptr[a + 1])
        value = im = mm = 0.0
        for i, q, e in zip(
            indices[start:stop].tolist(),
            qty_all[start:stop].tolist(),
            entry_all[start:stop].tolist(),
            strict=True,
        ):
            term = 1.0 / e if inverse[i] else e
            value += q * (unit[i] + coeff[i] * term)
            size = abs(q)
            n = size * notional[i]
            fl = floors[i]
            t = 0
            for c in range(1, len(fl)):
                if n >= fl[c]:
                    t = c
            growth = rpu[i] * size * size_units[i]
            im += n * (im_rate[i][t] + growth) - im_ded[i][t]
            mm += n * (mm_rate[i][t] + growth) - mm_ded[i][t]
            if q < 0.0:
                im += size * im_short[i]
                mm += size * mm_short[i]
            else:
                im += size * im_long[i]
                mm += size * mm_long[i]
        out_col.append(collateral)
        out_val.append(value)
        out_im.append(im)
        out_mm.append(mm)
    return out_col, out_val, out_im, out_mm


# ---------------------------------------------------------------------------------------------
# Timing and bandwidth
# ---------------------------------------------------------------------------------------------


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float, list[float]]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times), times


@numba.njit(parallel=True, cache=True, nogil=True)
def _parallel_sum(x):  # type: ignore[no-untyped-def]
    """Read bandwidth with the kernel's own threads: chunked sums, one per thread-ish block."""
    n = x.shape[0]
    n_chunks = 256
    partial = np.zeros(n_chunks)
    step = (n + n_chunks - 1) // n_chunks
    for c in numba.prange(n_chunks):
        s = 0.0
        for j in range(c * step, min(n, (c + 1) * step)):
            s += x[j]
        partial[c] = s
    return partial.sum()


def measure_bandwidth(gib: float = 1.0, repeats: int = 5) -> dict[str, float]:
    """GB/s (1e9 bytes) for: numpy sum (1 thread read), numba parallel sum (read, all threads),
    numpy copy (read + write, counted as 2x bytes). Arrays are touched before timing."""
    n = int(gib * (1 << 30)) // 8
    x = np.ones(n)
    nbytes = x.nbytes
    _parallel_sum(x[:1024])  # compile / load cache
    best_sum, _, _ = timed(lambda: x.sum(), repeats)
    best_psum, _, _ = timed(lambda: _parallel_sum(x), repeats)
    half = x[: n // 2]
    dst = np.empty_like(half)
    dst[:] = 0.0
    best_copy, _, _ = timed(lambda: np.copyto(dst, half), repeats)

    return {
        "numpy_sum_gb_s": nbytes / best_sum / 1e9,
        "parallel_sum_gb_s": nbytes / best_psum / 1e9,
        "numpy_copy_gb_s": 2 * (nbytes // 2) / best_copy / 1e9,
    }


def book_bytes(book: Book) -> int:
    p = book.positions
    return p.indptr.nbytes + p.indices.nbytes + p.data.nbytes + book.entry_price.nbytes + book.balances.nbytes


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=None, help="number of accounts (default 100,000)")
    parser.add_argument("--large", action="store_true", help="1,000,000 accounts")
    parser.add_argument("--seed", type=int, default=20250601)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--baseline-accounts", type=int, default=2_000)
    args = parser.parse_args(argv)
    print(f"CROSSMARGIN_KERNEL={compiled_kernels()} (steady state: compiled kernels, bench/machine.py)")
    n_accounts = args.accounts or (1_000_000 if args.large else 100_000)
    rng = np.random.default_rng(args.seed)

    print(f"crossmargin bench_cross: seed={args.seed} accounts={n_accounts:,}")
    print(
        f"numba {numba.__version__}, threads={numba.get_num_threads()}, numpy {np.__version__}, "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )

    t0 = time.perf_counter()
    instruments, vols = build_instruments(rng)
    table = InstrumentTable.from_instruments(instruments)
    assets = build_assets()
    market = build_market(table, vols)
    valuation = revalue(table, market)
    book = build_book(rng, n_accounts, assets, table, valuation)
    build_s = time.perf_counter() - t0
    nnz = book.positions.nnz
    n_tiers = table.tier_floor_usd.shape[1]
    kinds = np.bincount(table.kind, minlength=4)
    print(
        f"book built in {build_s:.2f} s: {n_accounts:,} accounts, {nnz:,} positions "
        f"({nnz / n_accounts:.2f}/account, max {np.diff(book.positions.indptr).max()}), "
        f"{table.n_instruments:,} instruments (perp {kinds[1]}, future {kinds[2]}, option {kinds[3]}; "
        f"{int(table.is_inverse.sum())} inverse), {len(table.underlyings)} underlyings, "
        f"{n_tiers} margin tier columns, {assets.n_assets} collateral assets "
        f"({int((book.balances < 0).sum()):,} borrowed balances)"
    )
    # How hard the tier search is exercised: positions per tier reached.
    idx = book.positions.indices.astype(np.int64)
    pos_notional = np.abs(book.positions.data) * valuation.notional_usd[idx]
    tier_reached = (pos_notional[:, None] >= table.tier_floor_usd[idx]).sum(axis=1) - 1
    print("positions by notional tier reached:", np.bincount(tier_reached, minlength=n_tiers).tolist())
    del idx, pos_notional, tier_reached

    model = CrossMargin()
    # Warm-up: numba JIT (or cache load) and first touch.
    t0 = time.perf_counter()
    result = model.evaluate(book, market, valuation)
    print(
        f"warm-up (compile or cache load + first run): {time.perf_counter() - t0:.3f} s; "
        f"threading layer: {numba.threading_layer()}"
    )
    model.evaluate(book, market)

    repeats = args.repeats
    best, median, _ = timed(lambda: model.evaluate(book, market, valuation), repeats)
    best_full, median_full, _ = timed(lambda: model.evaluate(book, market), repeats)
    prices_usd = market.asset_prices(assets)
    kernel_only = lambda: book_totals(book, valuation, model.params.option_margin, prices_usd)  # noqa: E731
    best_kernel, median_kernel, _ = timed(kernel_only, repeats)
    best_reval, median_reval, _ = timed(lambda: revalue(table, market), repeats)
    accounts_per_s = n_accounts / best
    print(
        f"\nevaluate(book, market, valuation): best {best * 1e3:8.2f} ms  median {median * 1e3:8.2f} ms  "
        f"-> {accounts_per_s / 1e6:.2f} M accounts/s, {nnz / best / 1e6:.1f} M positions/s"
    )
    print(
        f"evaluate(book, market) + revalue : best {best_full * 1e3:8.2f} ms  median {median_full * 1e3:8.2f} ms"
    )
    print(
        f"  of which book_totals (kernel)  : best {best_kernel * 1e3:8.2f} ms  median {median_kernel * 1e3:8.2f} ms"
    )
    print(
        f"  of which revalue               : best {best_reval * 1e3:8.2f} ms  median {median_reval * 1e3:8.2f} ms"
    )
    print(f"  MarginResult.pooled + checks   : ~{(best - best_kernel) * 1e3:.2f} ms")

    # Baseline on a subsample.
    n_base = min(args.baseline_accounts, n_accounts)
    sample = np.sort(np.random.default_rng(args.seed + 1).choice(n_accounts, size=n_base, replace=False))
    t0 = time.perf_counter()
    base = baseline_loop(book, valuation, model.params.option_margin, sample, market.asset_prices(assets))
    base_s = time.perf_counter() - t0
    baseline_accounts_per_s = n_base / base_s
    speedup = accounts_per_s / baseline_accounts_per_s
    fields = [
        result.collateral_value_usd,
        result.position_value_usd,
        result.initial_margin_usd,
        result.maintenance_margin_usd,
    ]
    max_rel = 0.0
    for ref, got in zip(base, fields, strict=True):
        ref_arr = np.asarray(ref)
        diff = np.abs(got[sample] - ref_arr) / np.maximum(np.abs(ref_arr), 1.0)
        max_rel = max(max_rel, float(diff.max()))
    base_positions = int(np.diff(book.positions.indptr)[sample].sum())
    print(
        f"\nbaseline Python loop: {n_base:,} accounts ({base_positions:,} positions) in {base_s:.3f} s "
        f"-> {baseline_accounts_per_s:,.0f} accounts/s; extrapolated {n_accounts / baseline_accounts_per_s:.1f} s "
        f"for the whole book"
    )
    print(f"speedup (kernel path vs Python loop): {speedup:,.0f}x")
    print(
        f"max relative difference vs baseline (collateral, value, IM, MM; denom max(|ref|, 1 USD)): "
        f"{max_rel:.3e}"
    )

    # Memory bandwidth and floor.
    bw = measure_bandwidth()
    bandwidth = max(bw["numpy_sum_gb_s"], bw["parallel_sum_gb_s"])
    read_bytes = book_bytes(book)
    written = 4 * n_accounts * 8
    floor_s = read_bytes / (bandwidth * 1e9)
    print(
        f"\nmemory bandwidth: numpy sum {bw['numpy_sum_gb_s']:.1f} GB/s (1 thread), numba parallel sum "
        f"{bw['parallel_sum_gb_s']:.1f} GB/s ({numba.get_num_threads()} threads), numpy copy "
        f"{bw['numpy_copy_gb_s']:.1f} GB/s (read+write)"
    )
    print(
        f"book bytes read: {read_bytes / 1e6:.1f} MB (indptr, indices, quantity, entry_price, balances) "
        f"+ {written / 1e6:.1f} MB totals written"
    )
    print(
        f"floor at {bandwidth:.1f} GB/s: {floor_s * 1e3:.2f} ms; kernel best {best_kernel * 1e3:.2f} ms = "
        f"{floor_s / best_kernel:.0%} of memory bound ({read_bytes / best_kernel / 1e9:.1f} GB/s effective); "
        f"evaluate best {best * 1e3:.2f} ms = {floor_s / best:.0%}"
    )

    load = os.getloadavg()[0]
    summary = {
        "accounts": n_accounts,
        "positions": nnz,
        "instruments": table.n_instruments,
        "seed": args.seed,
        "threads": numba.get_num_threads(),
        "threading_layer": numba.threading_layer(),
        "seconds": best,
        "seconds_median": median,
        "seconds_with_revalue": best_full,
        "seconds_with_revalue_median": median_full,
        "seconds_kernel": best_kernel,
        "accounts_per_s": accounts_per_s,
        "baseline_accounts": n_base,
        "baseline_accounts_per_s": baseline_accounts_per_s,
        "speedup": speedup,
        "max_rel_diff": max_rel,
        "bandwidth_gb_s": bandwidth,
        "bandwidth_detail_gb_s": bw,
        "bytes_read": read_bytes,
        "floor_seconds": floor_s,
        "load_average_1m": load,
    }
    if load > 1.2:
        print(
            f"note: load average {load:.2f} during the run; prange splits accounts statically across "
            f"threads, so another busy process on one core can double a repeat. Best-of-N is reported."
        )
    ok = max_rel <= TOLERANCE_REL
    if not ok:
        print(
            f"FAIL: baseline and vectorised results differ by {max_rel:.3e} > {TOLERANCE_REL:g}",
            file=sys.stderr,
        )
    print(json.dumps(summary))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
