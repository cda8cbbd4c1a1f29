"""The fused per-account reduction, written once as plain Python for numba to compile (backend.py
builds it per backend: parallel for the book, serial for one account, and the what-if around the
serial build): scenario P&L, worst scenario per group, floor and add-ons, in one pass over the
book's position runs.

The bodies take typed tuples (NamedTuple: numba passes each field as its own typed value) and read
their fields by name, so no list of arguments has to be kept in the same order in two places:

    AccountStreams  the book side: position runs (core.position_runs) and balances (haircut units)
    KernelArrays    the market side (inputs.py): packed instrument data, scenario rows, weights
    KernelOutputs   per-account results, written in place (totals.PortfolioTotals' arrays)

The scenario pass is called by the names `two_stream_row_sum`, `two_stream_row_sum_worst` and
`first_worst`: bound here to the plain-numba versions (scenario_pass.py), rebound to core.simd's
intrinsics by the simd backend. numba's on-disk cache is keyed on this file: after changing
scenario_pass.py or core/simd.py, delete the cached builds (`__pycache__/kernel.*.nb*`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from crossmargin.core.jit import prange
from crossmargin.core.margin.portfolio.addons import FLOOR_LANE
from crossmargin.core.margin.portfolio.inputs import KernelArrays
from crossmargin.core.margin.portfolio.parameters import ADDON_NAMES, PROVISIONS
from crossmargin.core.margin.portfolio.scenario_pass import (
    first_worst,
    two_stream_row_sum,
    two_stream_row_sum_worst,
)
from crossmargin.core.position_runs import PositionRuns, copy_general, order_account
from crossmargin.core.simd_layout import LANES, MAX_VECTORS

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Int32Array = npt.NDArray[np.int32]
FlagArray = npt.NDArray[np.uint8]

FUNDING_COLUMN, FEE_COLUMN = PROVISIONS  # as compile-time constants for the compiled code
DEPEG_COLUMN = ADDON_NAMES.index("stablecoin_depeg")  # FLOOR_LANE's slot of the side sums
N_ADDONS = len(ADDON_NAMES)


class AccountStreams(NamedTuple):
    """Per account, what the kernel streams: its positions in risk-bucket runs and the general
    section (core.position_runs, same fields), then its balances (Book.balance_csr: row pointer
    (A + 1,), asset (nnz_b,), haircut units (nnz_b,))."""

    indptr: IntArray
    instrument: Int32Array
    quantity: FloatArray
    pnl_weight: FloatArray
    entry_weight: FloatArray
    side_weight: FloatArray
    general_indptr: IntArray
    general_row: Int32Array
    general_instrument: Int32Array
    general_quantity: FloatArray
    general_run_end: FlagArray
    balance_ptr: IntArray
    balance_asset: IntArray
    balance_units: FloatArray


def account_streams(runs: PositionRuns, balance_csr: tuple[IntArray, IntArray, FloatArray]) -> AccountStreams:
    balance_ptr, balance_asset, balance_units = balance_csr
    return AccountStreams(
        indptr=runs.indptr,
        instrument=runs.instrument,
        quantity=runs.quantity,
        pnl_weight=runs.pnl_weight,
        entry_weight=runs.entry_weight,
        side_weight=runs.side_weight,
        general_indptr=runs.general_indptr,
        general_row=runs.general_row,
        general_instrument=runs.general_instrument,
        general_quantity=runs.general_quantity,
        general_run_end=runs.general_run_end,
        balance_ptr=balance_ptr,
        balance_asset=balance_asset,
        balance_units=balance_units,
    )


class KernelOutputs(NamedTuple):
    """Per account (A,): grid requirement, worst scenario row, min-delta floor, USD; add-ons (A, 8)."""

    grid_usd: FloatArray
    worst_scenario: IntArray
    min_delta_usd: FloatArray
    addons_usd: FloatArray


class WhatIfBook(NamedTuple):
    """What a what-if reads from the book besides the kernel's market side: positions as stored
    (CSR: indptr (A + 1,), instrument (nnz,), quantity (nnz,), entry_price (nnz,)), balances
    (Book.balance_csr), and per instrument or bucket what orders a merged account into runs
    (reciprocal_entry (I,), bucket (I,), bucket_underlying (B,), general_underlying (U,) mask)."""

    indptr: npt.NDArray[np.int32] | IntArray
    instrument: npt.NDArray[np.int32] | IntArray
    quantity: FloatArray
    entry_price: FloatArray
    balance_ptr: IntArray
    balance_asset: IntArray
    balance_units: FloatArray
    reciprocal_entry: npt.NDArray[np.bool_]
    bucket: IntArray
    bucket_underlying: IntArray
    general_underlying: npt.NDArray[np.bool_]


CHUNK_ACCOUNTS = 256  # accounts per parallel task (64 and 1,024 measured the same)
# Positions ahead whose rows are prefetched. 0 (none): 2, 4 and 6 measured ~10 ms slower on an
# AMD Zen 5 (1 MB L2) and ~3 ms slower on an Intel Xeon (2 MB L2); only an older AMD machine
# measured 6 faster.
PREFETCH = 0
BLOCK_COLUMNS = MAX_VECTORS * LANES  # scenarios summed per register block
_ACCOUNT_ADDONS = LANES  # per-account add-on sums: the side-row lanes


def kernel_body(streams: AccountStreams, market: KernelArrays, out: KernelOutputs) -> None:
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

    Written once, compiled per backend (backend.py) twice: parallel over chunks of accounts for
    the book, serial for a one-account what-if. Inlined by hand: a call per account would pay
    numba's reference counting on some thirty array arguments, which measured 5x slower."""
    # The fields as locals, read by name: the loops below (and numba's parallel outlining) see
    # plain arrays and scalars, as if passed one by one.
    # fmt: off
    indptr, run_instrument, run_quantity = streams.indptr, streams.instrument, streams.quantity
    run_pnl_weight, run_entry_weight = streams.pnl_weight, streams.entry_weight
    run_side_weight, general_row = streams.side_weight, streams.general_row
    general_indptr, general_run_end = streams.general_indptr, streams.general_run_end
    general_instrument, general_quantity = streams.general_instrument, streams.general_quantity
    balance_ptr, balance_asset = streams.balance_ptr, streams.balance_asset
    balance_units = streams.balance_units
    inst, inverse_liquidity, side_rows = market.instrument_data, market.inverse_liquidity, market.side_rows
    scenario_rows, row_of, row_scale = market.scenario_rows, market.row_of, market.row_scale
    asset_pnl, asset_price, numeraire_move = market.asset_pnl, market.asset_price, market.numeraire_move
    weight, offset, group, rates = market.weight, market.offset, market.group, market.rates
    n_groups, n_grid, n_scen = market.n_groups, market.n_grid, market.n_scenarios
    bookkeeping, use_numeraire = market.bookkeeping, market.use_numeraire
    unit_value, coefficient = market.unit_value_usd, market.entry_coefficient_usd
    out_grid, out_worst = out.grid_usd, out.worst_scenario
    out_min_delta, out_addons = out.min_delta_usd, out.addons_usd
    # fmt: on
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
    for chunk in prange(n_general_chunks):
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
    for chunk in prange(n_chunks):
        pnl = np.empty(width)
        group_loss = np.empty(max(n_groups, 1))
        group_arg = np.empty(max(n_groups, 1), dtype=np.int64)
        stop = min((chunk + 1) * CHUNK_ACCOUNTS, n_accounts)
        for a in range(chunk * CHUNK_ACCOUNTS, stop):
            # The side sums go straight into the account's add-on row (its lanes are the add-on
            # columns; lane FLOOR_LANE, the floor, is read back before the depeg add-on takes it):
            # through a scratch vector and eight scalar copies they cost ~1 ms more (1M accounts).
            addon_row = out_addons[a]
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
                    sw, p1 if bookkeeping else p0, sr, general_sums, r, addon_row, worst,
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
                        sw, side_stop, sr, general_sums, r, addon_row,
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
            out_min_delta[a] = addon_row[FLOOR_LANE]
            addon_row[FUNDING_COLUMN] = max(addon_row[FUNDING_COLUMN], 0.0)  # a net receipt: no provision
            addon_row[DEPEG_COLUMN] = depeg


# The serial build of `kernel_body` that `what_if_body` calls: as Python, the body itself (`prange`
# is range there); each compiled backend rebinds the name to its own serial build (backend.py).
account_kernel = kernel_body


def what_if_body(
    book: WhatIfBook,
    market: KernelArrays,
    account: int,
    instrument: int,
    trade_quantity: float,
    trade_price: float,
    out: FloatArray,
) -> None:
    """Merge one trade into one account's positions, order them into runs and run the kernel on
    that account alone. out (5 + 8,): grid, min-delta floor, worst scenario, sum of add-ons,
    provisions, then the add-ons, USD.

    Here beside `kernel_body`, not in whatif.py: numba caches this build with the serial kernel
    compiled in, and invalidates the cache when this file changes."""
    indptr, indices, quantity, entry_price = book.indptr, book.instrument, book.quantity, book.entry_price
    reciprocal = book.reciprocal_entry
    start = indptr[account]
    stop = indptr[account + 1]
    n = stop - start
    idx = np.empty(n + 1, dtype=np.int64)
    qty = np.empty(n + 1)
    ent = np.empty(n + 1)
    is_reciprocal = reciprocal[instrument]
    m = 0
    merged = False
    for p in range(start, stop):
        i = indices[p]
        q = quantity[p]
        e = entry_price[p]
        if i == instrument:
            merged = True
            new_q = q + trade_quantity
            if new_q == 0.0:
                continue
            if is_reciprocal:
                e = new_q / (q / e + trade_quantity / trade_price)
            else:
                e = (q * e + trade_quantity * trade_price) / new_q
            q = new_q
        idx[m] = i
        qty[m] = q
        ent[m] = e
        m += 1
    if not merged and trade_quantity != 0.0:
        idx[m] = instrument
        qty[m] = trade_quantity
        ent[m] = trade_price
        m += 1
    run_instrument = np.empty(m, dtype=np.int32)
    run_quantity = np.empty(m)
    run_pnl_weight = np.empty(m)
    run_entry_weight = np.empty(m)
    run_end = np.empty(m, dtype=np.uint8)
    side_weight = np.empty(m)
    n_general = order_account(
        idx[:m],
        qty[:m],
        ent[:m],
        book.bucket,
        book.bucket_underlying,
        reciprocal,
        book.general_underlying,
        run_instrument,
        run_quantity,
        run_pnl_weight,
        run_entry_weight,
        run_end,
        side_weight,
    )
    general_instrument = np.empty(n_general, dtype=np.int32)
    general_quantity = np.empty(n_general)
    general_run_end = np.empty(n_general, dtype=np.uint8)
    copy_general(
        0, m, run_instrument, run_quantity, run_end, 0, general_instrument, general_quantity, general_run_end
    )
    has_general = int(n_general > 0)
    general_indptr = np.zeros(1 + has_general, dtype=np.int64)
    general_indptr[has_general] = n_general
    ptr = np.zeros(2, dtype=np.int64)
    ptr[1] = m
    b_start = book.balance_ptr[account]
    b_stop = book.balance_ptr[account + 1]
    b_ptr = np.zeros(2, dtype=np.int64)
    b_ptr[1] = b_stop - b_start
    streams = AccountStreams(
        indptr=ptr,
        instrument=run_instrument,
        quantity=run_quantity,
        pnl_weight=run_pnl_weight,
        entry_weight=run_entry_weight,
        side_weight=side_weight,
        general_indptr=general_indptr,
        general_row=np.zeros(1, dtype=np.int32),
        general_instrument=general_instrument,
        general_quantity=general_quantity,
        general_run_end=general_run_end,
        balance_ptr=b_ptr,
        balance_asset=book.balance_asset[b_start:b_stop],
        balance_units=book.balance_units[b_start:b_stop],
    )
    result = KernelOutputs(
        grid_usd=np.empty(1),
        worst_scenario=np.empty(1, dtype=np.int64),
        min_delta_usd=np.empty(1),
        addons_usd=np.empty((1, N_ADDONS)),
    )
    account_kernel(streams, market, result)
    addons = result.addons_usd
    out[0] = result.grid_usd[0]
    out[1] = result.min_delta_usd[0]
    out[2] = result.worst_scenario[0]
    out[3] = 0.0
    for j in range(N_ADDONS):
        out[5 + j] = addons[0, j]
        out[3] += addons[0, j]
    out[4] = addons[0, FUNDING_COLUMN] + addons[0, FEE_COLUMN]  # the provisions
