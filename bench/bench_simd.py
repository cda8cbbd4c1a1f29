"""The portfolio kernel's scenario pass: numba loops against the register-sum intrinsics.

    python bench/bench_simd.py [--accounts N] [--seed S] [--repeats R]

On bench_portfolio's book (default 1,000,000 accounts, 10.9 M positions, 32 scenarios), each
account's scenario P&L (positions' weight x scale x shared scenario row, then its balances) and its
worst grid scenario and grid requirement max(worst loss, 0), two ways, timed interleaved in the
same process (best and median of R):

  * plain numba   the package's portable scenario pass (core/margin/portfolio/scenario_pass.py,
                  CROSSMARGIN_KERNEL=numba): scalar loops, scenarios outside and positions
                  inside, in the intrinsics' order of additions
  * intrinsics    core.simd.two_stream_row_sum_worst (sums in vector registers, two sets, the
                  worst scenario reduced in registers; prefetch as the portfolio kernel's)

Both must give the same requirement to 1e-12 relative (and the same scenario) or the script exits
1 (they add in the same order, so they agree bit for bit). The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

import numba
import numpy as np

from bench_cross import build_assets
from bench_portfolio import ADDONS, build_book, build_scenario_set, build_table
from crossmargin.core import simd
from crossmargin.core.margin.portfolio import PREFETCH, kernel_inputs
from crossmargin.core.margin.portfolio import scenario_pass as plain
from crossmargin.core.pricing import revalue
from crossmargin.core.scenarios import revalue_scenarios
from crossmargin.core.simd import (
    LANES,
    MAX_VECTORS,
    first_worst,
    two_stream_row_sum,
    two_stream_row_sum_worst,
)

CHUNK = 256
plain.register_overloads()  # numba inlines the plain scenario pass into the kernel below
plain_first_worst = plain.first_worst.compiled()


@numba.njit(parallel=True, cache=True, nogil=True)
def plain_numba(indptr, instrument, weight, row_of, scale, rows, bptr, basset, bunits, asset_rows,
                loss_weight, offset, n_grid, out_loss, out_worst):  # type: ignore[no-untyped-def]  # fmt: skip
    """`intrinsics` with the package's plain-numba scenario pass (CROSSMARGIN_KERNEL=numba)."""
    n_accounts = indptr.shape[0] - 1
    width = rows.shape[1]
    for chunk in numba.prange((n_accounts + CHUNK - 1) // CHUNK):
        pnl = np.empty(width)
        for a in range(chunk * CHUNK, min((chunk + 1) * CHUNK, n_accounts)):
            p0, p1, c0, c1 = indptr[a], indptr[a + 1], bptr[a], bptr[a + 1]
            if width <= MAX_VECTORS * LANES:
                arg, grid, _ = plain.two_stream_row_sum_worst(
                    instrument, weight, p0, p1, row_of, scale, rows, basset, bunits, c0, c1, asset_rows, 0, pnl,
                    width // LANES, PREFETCH, None, None, None, None, None, None,
                    (loss_weight, offset, n_grid, n_grid, 0.0),
                )  # fmt: skip
            else:
                for col in range(0, width, MAX_VECTORS * LANES):
                    n_vectors = min((width - col) // LANES, MAX_VECTORS)
                    plain.two_stream_row_sum(instrument, weight, p0, p1, row_of, scale, rows, basset, bunits, c0, c1,
                                             asset_rows, col, pnl, n_vectors, PREFETCH, None, None, None, None, None,
                                             None)  # fmt: skip
                arg = plain_first_worst(pnl, loss_weight, offset, n_grid)
                grid = max(-loss_weight[arg] * pnl[arg] - offset[arg], 0.0)
            out_loss[a] = grid
            out_worst[a] = arg


@numba.njit(parallel=True, cache=True, nogil=True)
def intrinsics(indptr, instrument, weight, row_of, scale, rows, bptr, basset, bunits, asset_rows,
               loss_weight, offset, n_grid, out_loss, out_worst):  # type: ignore[no-untyped-def]  # fmt: skip
    n_accounts = indptr.shape[0] - 1
    width = rows.shape[1]
    for chunk in numba.prange((n_accounts + CHUNK - 1) // CHUNK):
        pnl = np.empty(width)
        for a in range(chunk * CHUNK, min((chunk + 1) * CHUNK, n_accounts)):
            p0, p1, c0, c1 = indptr[a], indptr[a + 1], bptr[a], bptr[a + 1]
            if width <= MAX_VECTORS * LANES:
                # One block: the worst scenario reduced on the sums still in registers.
                arg, grid, _ = two_stream_row_sum_worst(
                    instrument, weight, p0, p1, row_of, scale, rows, basset, bunits, c0, c1, asset_rows, 0, pnl,
                    width // LANES, PREFETCH, None, None, None, None, None, None,
                    (loss_weight, offset, n_grid, n_grid, 0.0),
                )  # fmt: skip
            else:
                for col in range(0, width, MAX_VECTORS * LANES):
                    n_vectors = min((width - col) // LANES, MAX_VECTORS)
                    two_stream_row_sum(instrument, weight, p0, p1, row_of, scale, rows, basset, bunits, c0, c1,
                                       asset_rows, col, pnl, n_vectors, PREFETCH, None, None, None, None, None, None)  # fmt: skip
                arg = first_worst(pnl, loss_weight, offset, n_grid)
                grid = max(-loss_weight[arg] * pnl[arg] - offset[arg], 0.0)
            out_loss[a] = grid
            out_worst[a] = arg


def all_vectors_in_one_pass() -> Callable[..., None]:
    """`intrinsics` built (uncached, at its first call) with all of a block's vectors summed in
    one pass over the positions, as on an AVX-512 host: on a host without AVX-512, the layout
    that `simd.host_vectors_per_pass` replaced (its sums spilled out of the 16 ymm registers)."""
    build = numba.njit(parallel=True, cache=False, nogil=True)(intrinsics.py_func)

    def call(*args: object) -> None:
        if build.signatures:
            build(*args)
            return
        chosen = simd.VECTORS_PER_PASS  # read by the intrinsics' code generation, at compile time
        simd.VECTORS_PER_PASS = MAX_VECTORS
        try:
            build(*args)
        finally:
            simd.VECTORS_PER_PASS = chosen

    return call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20250601)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    table, market = build_table(rng)
    assets = build_assets()
    valuation = revalue(table, market)
    book = build_book(rng, args.accounts, assets, table, valuation)
    scenarios, n_grid = build_scenario_set(rng, book, valuation)
    reval = revalue_scenarios(table, assets, market, valuation, scenarios)
    k = kernel_inputs(
        book, market, valuation, scenarios, reval, ADDONS, n_grid_scenarios=n_grid, numeraire=None
    ).arrays
    runs = book.position_runs
    bptr, basset, bunits = book.balance_csr
    n = book.n_accounts
    kernels = {"plain": plain_numba, "intrinsics": intrinsics}
    if simd.VECTORS_PER_PASS != MAX_VECTORS:
        kernels["one pass"] = all_vectors_in_one_pass()
    outs = {name: (np.empty(n), np.empty(n, dtype=np.int64)) for name in kernels}

    def call(name: str, out: tuple[np.ndarray, np.ndarray]) -> None:
        kernels[name](runs.indptr, runs.instrument, runs.pnl_weight, k.row_of, k.row_scale, k.scenario_rows,
                      bptr, basset, bunits, k.asset_pnl, k.weight, k.offset, n_grid, *out)  # fmt: skip

    for name in kernels:
        call(name, outs[name])  # compile or cache load; each build's own outputs, compared below
    # Timed into one set of output buffers, in an order reversed every repeat: on an Intel Xeon,
    # separate buffers per build (their pages placed differently) shifted one build's figure by
    # up to 8 % in portfolio-kernel A/Bs, and a fixed order by up to 20 % in VaR ones.
    timed_out = (np.empty(n), np.empty(n, dtype=np.int64))  # not a build's own: those are compared
    times: dict[str, list[float]] = {name: [] for name in kernels}
    names = list(kernels)
    for repeat in range(args.repeats):  # interleaved, so both see the same machine
        for name in names if repeat % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            call(name, timed_out)
            times[name].append(time.perf_counter() - t0)
    best = {name: min(t) for name, t in times.items()}
    median = {name: float(np.median(t)) for name, t in times.items()}
    ref_loss, ref_worst = outs["plain"]
    got_loss, got_worst = outs["intrinsics"]
    max_rel = float((np.abs(got_loss - ref_loss) / np.maximum(np.abs(ref_loss), 1.0)).max())
    worst_agree = float(np.mean(got_worst == ref_worst))
    speedup = best["plain"] / best["intrinsics"]
    # Every build adds in the same order: the same bits, whatever its pass width.
    same_bits = all(np.array_equal(outs[name][0], got_loss) for name in kernels if name != "plain")
    print(
        f"scenario pass over {n:,} accounts, {runs.instrument.size:,} positions, S = {scenarios.n_scenarios} "
        f"({k.scenario_rows.shape[0]:,} shared rows), {numba.get_num_threads()} threads"
    )
    for name in kernels:
        print(f"  {name:11s} best {best[name] * 1e3:7.2f} ms  median {median[name] * 1e3:7.2f} ms")
    print(
        f"speedup (best): {speedup:.2f}x; max relative difference {max_rel:.2e}; worst scenario agrees {worst_agree:.2%}"
    )
    one_pass = best.get("one pass")
    if one_pass is not None:
        print(
            f"vectors summed per pass over the positions: {simd.VECTORS_PER_PASS} (this host) against "
            f"{MAX_VECTORS} in one pass: {one_pass / best['intrinsics']:.2f}x faster (best), "
            f"{median['one pass'] / median['intrinsics']:.2f}x (median); same bits: {same_bits}"
        )
    ok = max_rel <= 1e-12 and worst_agree == 1.0 and same_bits
    print(
        json.dumps(
            {
                "accounts": n,
                "positions": int(runs.instrument.size),
                "scenarios": scenarios.n_scenarios,
                "seconds": best["intrinsics"],
                "seconds_plain_numba": best["plain"],
                "seconds_median": median["intrinsics"],
                "seconds_plain_numba_median": median["plain"],
                "speedup": speedup,
                "max_rel_diff": max_rel,
                "worst_agrees": worst_agree,
                "vectors_per_pass": simd.VECTORS_PER_PASS,
                "seconds_one_pass": one_pass,
            }
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
