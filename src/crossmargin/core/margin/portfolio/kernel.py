"""The fused per-account reduction: scenario P&L, worst scenario per group, floor and add-ons, in
one pass over the book's position runs; `portfolio_totals` runs it over a whole book."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from crossmargin.core.book import Book
from crossmargin.core.margin.portfolio.addons import FLOOR_LANE
from crossmargin.core.margin.portfolio.inputs import KernelInputs, kernel_inputs
from crossmargin.core.margin.portfolio.parameters import ADDON_NAMES, PROVISIONS, AddOns
from crossmargin.core.market import MarketState
from crossmargin.core.position_runs import PositionRuns
from crossmargin.core.pricing import InstrumentValuation
from crossmargin.core.scenarios import ScenarioRevaluation, ScenarioSet
from crossmargin.core.simd import (
    LANES,
    MAX_VECTORS,
    first_worst,
    two_stream_row_sum,
    two_stream_row_sum_worst,
)
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

FUNDING_COLUMN, FEE_COLUMN = PROVISIONS  # as compile-time constants for the compiled code


@dataclass(frozen=True, slots=True)
class PortfolioTotals:
    """Per account (n_accounts,): grid requirement, worst scenario row, the min-delta floor, and
    add-ons (n_accounts, len(ADDON_NAMES)), USD."""

    grid_usd: FloatArray
    worst_scenario: IntArray
    min_delta_usd: FloatArray
    addons_usd: FloatArray

    @property
    def initial_margin_usd(self) -> FloatArray:
        initial: FloatArray = np.maximum(self.grid_usd, self.min_delta_usd) + self.addons_usd.sum(axis=1)
        return initial

    @property
    def provisions_usd(self) -> FloatArray:
        """Funding and fee provisions: cash that will be paid, so MM keeps them whole (Paradex)."""
        provisions: FloatArray = self.addons_usd[:, PROVISIONS].sum(axis=1)
        return provisions

    @classmethod
    def empty(cls, n_accounts: int) -> PortfolioTotals:
        """Uninitialised buffers for `portfolio_totals(..., out=)`."""
        return cls(
            grid_usd=np.empty(n_accounts),
            worst_scenario=np.empty(n_accounts, dtype=np.int64),
            min_delta_usd=np.empty(n_accounts),
            addons_usd=np.empty((n_accounts, len(ADDON_NAMES))),
        )

    def check_shape(self, n_accounts: int) -> None:
        """Raise InputError unless these are buffers the kernel can write for n_accounts."""
        expected = (
            ("grid_usd", self.grid_usd, (n_accounts,), np.float64),
            ("worst_scenario", self.worst_scenario, (n_accounts,), np.int64),
            ("min_delta_usd", self.min_delta_usd, (n_accounts,), np.float64),
            ("addons_usd", self.addons_usd, (n_accounts, len(ADDON_NAMES)), np.float64),
        )
        for name, array, shape, dtype in expected:
            if array.shape != shape or array.dtype != dtype or not array.flags.c_contiguous:
                raise InputError(
                    f"out.{name}",
                    f"must be a C-contiguous {np.dtype(dtype).name} array of shape {shape}, "
                    f"got {array.dtype.name} {array.shape}",
                )

    def maintenance_margin_usd(self, fraction: float) -> FloatArray:
        """MM = fraction x (IM - provisions) + provisions."""
        provisions = self.provisions_usd
        maintenance: FloatArray = fraction * (self.initial_margin_usd - provisions) + provisions
        return maintenance


def _run_kernel(
    kernel: Callable[..., None],
    runs: PositionRuns,
    balance_csr: tuple[IntArray, IntArray, FloatArray],
    unit_value_usd: FloatArray,
    entry_coefficient_usd: FloatArray,
    k: KernelInputs,
    n_accounts: int,
    out: PortfolioTotals | None = None,
) -> PortfolioTotals:
    if out is None:
        out = PortfolioTotals.empty(n_accounts)
    else:
        out.check_shape(n_accounts)
    kernel(*_runs_arguments(runs), *balance_csr, unit_value_usd, entry_coefficient_usd, *k.kernel_arguments,
           out.grid_usd, out.worst_scenario, out.min_delta_usd, out.addons_usd)  # fmt: skip
    return out


def _runs_arguments(runs: PositionRuns) -> tuple[Any, ...]:
    """The position runs in the order `_kernel_body` takes them."""
    return (
        runs.indptr,
        runs.instrument,
        runs.quantity,
        runs.pnl_weight,
        runs.entry_weight,
        runs.side_weight,
        runs.max_positions,
        runs.general_indptr,
        runs.general_row,
        runs.general_instrument,
        runs.general_quantity,
        runs.general_run_end,
    )


def portfolio_totals(
    book: Book,
    market: MarketState,
    valuation: InstrumentValuation,
    scenarios: ScenarioSet,
    reval: ScenarioRevaluation,
    addons: AddOns,
    *,
    n_grid_scenarios: int,
    numeraire: str | None = None,
    out: PortfolioTotals | None = None,
) -> PortfolioTotals:
    """Run the fused kernel over the whole book. Scenarios after `n_grid_scenarios` are the depeg
    group, reported as an add-on. `out`: buffers to overwrite (`PortfolioTotals.empty`), for a
    loop that recomputes every tick: fresh 88 MB per call on a 1M-account book cost ~5 ms of
    page faults (bench_portfolio reports both)."""
    k = kernel_inputs(
        book,
        market,
        valuation,
        scenarios,
        reval,
        addons,
        n_grid_scenarios=n_grid_scenarios,
        numeraire=numeraire,
    )
    return _run_kernel(
        _portfolio_kernel,
        book.position_runs_for(k.general_underlyings),
        book.balance_csr,
        valuation.unit_value_usd,
        valuation.entry_coefficient_usd,
        k,
        book.n_accounts,
        out,
    )


CHUNK_ACCOUNTS = 256  # accounts per parallel task (64 and 1,024 measured the same)
# Positions ahead whose rows are prefetched. 0 (none): 2, 4 and 6 measured ~10 ms slower on an
# AMD Zen 5 (1 MB L2) and ~3 ms slower on an Intel Xeon (2 MB L2); only an older AMD machine
# measured 6 faster.
PREFETCH = 0
BLOCK_COLUMNS = MAX_VECTORS * LANES  # scenarios summed per register block
_ACCOUNT_ADDONS = LANES  # per-account add-on sums: the side-row lanes


def _kernel_body(
    indptr: np.ndarray,
    run_instrument: np.ndarray,
    run_quantity: np.ndarray,
    run_pnl_weight: np.ndarray,
    run_entry_weight: np.ndarray,
    run_side_weight: np.ndarray,
    max_positions: int,
    general_indptr: np.ndarray,
    general_row: np.ndarray,
    general_instrument: np.ndarray,
    general_quantity: np.ndarray,
    general_run_end: np.ndarray,
    balance_ptr: np.ndarray,
    balance_asset: np.ndarray,
    balance_units: np.ndarray,
    unit_value: np.ndarray,
    coefficient: np.ndarray,
    inst: np.ndarray,
    inverse_liquidity: np.ndarray,
    side_rows: np.ndarray,
    scenario_rows: np.ndarray,
    row_of: np.ndarray,
    row_scale: np.ndarray,
    asset_pnl: np.ndarray,
    asset_price: np.ndarray,
    weight: np.ndarray,
    numeraire_move: np.ndarray,
    offset: np.ndarray,
    group: np.ndarray,
    n_groups: int,
    n_grid: int,
    n_scen: int,
    rates: np.ndarray,
    bookkeeping: bool,
    use_numeraire: bool,
    out_grid: np.ndarray,
    out_worst: np.ndarray,
    out_min_delta: np.ndarray,
    out_addons: np.ndarray,
) -> None:
    """Reduce accounts to grid, worst scenario, min-delta floor and add-ons, in two passes.

    1. The general section (positions sharing an underlying with another, or on a concentration
       underlying; see core.position_runs), in one flat loop over its positions: a bucket's and
       an underlying's net delta and vega are running sums closed at each run's end (the run-end
       flags multiply, so there is no data-dependent branch), and so are an account's add-on
       sums, stored at every position into its row of `general_sums` (the last store is the
       account's total; account ends reset them the same way). Flat, because a loop per account
       of one to three positions paid a mispredicted exit each.
    2. Per account: scenario P&L (positions' pnl_weight x their scaled, shared scenario rows,
       then balances' units x asset_pnl rows) in one `two_stream_row_sum` per 32-column block,
       which in the last block also sums side_weight x side_rows (the add-ons of positions alone
       in their underlying; side_weight is 0 for general ones) onto the account's general sums;
       then the group maxima (one group: `first_worst`, in vector blocks) and the depeg add-on.
       When the scenarios fit one block in at most one group without a numeraire (`one_pass`),
       `two_stream_row_sum_worst` does all of this in one call, on the sums still in registers.

    Written once, compiled twice: parallel over chunks of accounts for the book, serial for a
    one-account what-if. Inlined by hand: a call per account would pay numba's reference counting
    on some thirty array arguments, which measured 5x slower."""
    n_accounts = indptr.shape[0] - 1
    width = scenario_rows.shape[1]
    power = rates[3]
    n_general = general_indptr.shape[0] - 1
    # One row per account with general positions, plus a zero row for the others. Every other row
    # is written by the pass below when it runs (zeroing 26 MB per call measured 2 ms).
    general_sums = np.empty((n_general + 1, _ACCOUNT_ADDONS))
    general_sums[n_general, :] = 0.0
    if not bookkeeping:
        general_sums[:, :] = 0.0
    n_general_chunks = (n_general + CHUNK_ACCOUNTS - 1) // CHUNK_ACCOUNTS if bookkeeping else 0
    for chunk in numba.prange(n_general_chunks):
        g = chunk * CHUNK_ACCOUNTS
        stop = min(g + CHUNK_ACCOUNTS, n_general)
        bucket_delta = net_delta = net_vega = 0.0
        roll = net_delta_sum = vega_sum = floor = short_c = funding = fees = conc = 0.0
        for p in range(general_indptr[g], general_indptr[stop]):
            i = general_instrument[p]
            row = inst[i]
            q = general_quantity[p]
            aq = abs(q)
            d = q * row[0]
            bucket_delta += d
            net_delta += d
            net_vega += q * row[1]
            floor += aq * row[2]
            short_c += max(-q, 0.0) * row[3]
            funding += q * row[4]
            fees += aq * row[5]
            flags = general_run_end[p]
            bucket_end = float(flags & 1)
            underlying_end = float((flags >> 1) & 1)
            account_end = float(flags >> 3)
            roll += bucket_end * abs(bucket_delta) * row[6]
            bucket_delta *= 1.0 - bucket_end  # reset after the close: add + multiply on the chain
            d_u = abs(net_delta)
            net_delta_sum += underlying_end * d_u
            vega_sum += underlying_end * abs(net_vega)
            floor += underlying_end * d_u * row[7]
            ratio = underlying_end * d_u * inverse_liquidity[i]
            if power == 0.5:
                conc += d_u * np.sqrt(ratio)
            elif ratio > 0.0:
                conc += d_u * ratio**power
            keep_underlying = 1.0 - underlying_end
            net_delta *= keep_underlying
            net_vega *= keep_underlying
            general_sums[g, 0] = roll
            general_sums[g, 1] = rates[0] * net_delta_sum
            general_sums[g, 2] = short_c
            general_sums[g, 3] = rates[2] * conc
            general_sums[g, 4] = rates[4] * net_delta_sum + rates[5] * vega_sum
            general_sums[g, 5] = funding
            general_sums[g, 6] = fees
            general_sums[g, FLOOR_LANE] = floor
            g += int(account_end)
            keep_account = 1.0 - account_end
            roll *= keep_account
            net_delta_sum *= keep_account
            vega_sum *= keep_account
            floor *= keep_account
            short_c *= keep_account
            funding *= keep_account
            fees *= keep_account
            conc *= keep_account

    n_chunks = (n_accounts + CHUNK_ACCOUNTS - 1) // CHUNK_ACCOUNTS
    ri, rw, rows = run_instrument, run_pnl_weight, scenario_rows
    ro, rsc, ba, bu, ap = row_of, row_scale, balance_asset, balance_units, asset_pnl
    sw, sr = run_side_weight, side_rows
    # One block of scenarios, at most one group, no numeraire (every preset of the bench's size):
    # the fused path. Otherwise pnl is stored and reduced below.
    one_pass = width <= BLOCK_COLUMNS and n_groups <= 1 and not use_numeraire
    worst = (weight, offset, n_grid, n_scen, rates[6])
    for chunk in numba.prange(n_chunks):
        pnl = np.empty(width)
        acc = np.empty(_ACCOUNT_ADDONS)
        group_loss = np.empty(max(n_groups, 1))
        group_arg = np.empty(max(n_groups, 1), dtype=np.int64)
        stop = min((chunk + 1) * CHUNK_ACCOUNTS, n_accounts)
        for a in range(chunk * CHUNK_ACCOUNTS, stop):
            p0 = indptr[a]
            p1 = indptr[a + 1]
            c0 = balance_ptr[a]
            c1 = balance_ptr[a + 1]
            r = general_row[a]
            if one_pass:
                # Scenario P&L, side sums, then the worst scenario and depeg loss on the sums
                # still in registers (the same numbers as the general path below).
                arg, total, depeg = two_stream_row_sum_worst(
                    ri, rw, p0, p1, ro, rsc, rows, ba, bu, c0, c1, ap, 0, pnl, width // LANES, PREFETCH,
                    sw, p1 if bookkeeping else p0, sr, general_sums, r, acc, worst,
                )  # fmt: skip
            else:
                # 1. Scenario P&L, one vector block of up to 32 scenarios at a time; the side sums
                # ride along in the last block.
                for col in range(0, width, BLOCK_COLUMNS):
                    # The side sums start from the general row at every call: only the last adds them.
                    side_stop = p1 if col + BLOCK_COLUMNS >= width and bookkeeping else p0
                    n_vectors = min((width - col) // LANES, MAX_VECTORS)
                    two_stream_row_sum(
                        ri, rw, p0, p1, ro, rsc, rows, ba, bu, c0, c1, ap, col, pnl, n_vectors, PREFETCH,
                        sw, side_stop, sr, general_sums, r, acc,
                    )  # fmt: skip
                if use_numeraire:
                    equity = 0.0
                    for p in range(p0, p1):
                        i = run_instrument[p]
                        equity += run_quantity[p] * unit_value[i] + coefficient[i] * run_entry_weight[p]
                    for c in range(c0, c1):
                        equity += balance_units[c] * asset_price[balance_asset[c]]
                    if equity != 0.0:
                        for s in range(n_scen):
                            pnl[s] -= equity * numeraire_move[s]
                # 2. Worst loss per group; the depeg rows after the grid.
                total = 0.0
                arg = 0
                if n_groups == 1:
                    arg = first_worst(pnl, weight, offset, n_grid)
                    total = max(-weight[arg] * pnl[arg] - offset[arg], 0.0)
                elif n_groups > 1:
                    for g in range(n_groups):
                        group_loss[g] = -np.inf
                        group_arg[g] = 0
                    for s in range(n_grid):
                        loss = -weight[s] * pnl[s] - offset[s]
                        g = group[s]
                        if loss > group_loss[g]:
                            group_loss[g] = loss
                            group_arg[g] = s
                    largest = -1.0
                    for g in range(n_groups):
                        contribution = max(group_loss[g], 0.0)
                        total += contribution
                        if contribution > largest:
                            largest = contribution
                            arg = group_arg[g]
                depeg = 0.0
                if p1 > p0:
                    for s in range(n_grid, n_scen):
                        loss = -weight[s] * pnl[s] - offset[s]
                        depeg = max(depeg, min(loss, rates[6] * total))
            out_worst[a] = arg
            out_grid[a] = total
            out_min_delta[a] = acc[FLOOR_LANE]
            for j in range(FLOOR_LANE):
                out_addons[a, j] = acc[j]
            out_addons[a, 5] = max(acc[5], 0.0)  # funding: a net receipt is no provision
            out_addons[a, 7] = depeg


_portfolio_kernel = numba.njit(parallel=True, cache=True, nogil=True)(_kernel_body)
# Not cached: two on-disk caches of one Python function collide (measured 2.9 ms per call).
_serial_kernel: Any = numba.njit(parallel=False, cache=False, nogil=True)(_kernel_body)
