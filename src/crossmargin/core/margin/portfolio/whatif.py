"""Pre-trade what-if: one account's requirement after one hypothetical trade, against a snapshot
of the book's scenario revaluation (the kernel's serial build on that account alone)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numba
import numpy as np
import numpy.typing as npt

from crossmargin.core.book import Book
from crossmargin.core.margin.portfolio.inputs import KernelInputs, kernel_inputs
from crossmargin.core.margin.portfolio.kernel import FEE_COLUMN, FUNDING_COLUMN, _serial_kernel
from crossmargin.core.margin.portfolio.parameters import ADDON_NAMES, AddOns
from crossmargin.core.margin.portfolio.scenarios import depeg_scenarios
from crossmargin.core.market import MarketState
from crossmargin.core.position_runs import copy_general, order_account
from crossmargin.core.pricing import InstrumentValuation, revalue
from crossmargin.core.scenarios import ScenarioRevaluation, ScenarioSet, revalue_scenarios

if TYPE_CHECKING:
    from crossmargin.core.margin.portfolio.model import PortfolioMargin

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class WhatIf:
    """One account's portfolio requirement after a hypothetical trade, USD."""

    initial_margin_usd: float
    maintenance_margin_usd: float
    grid_usd: float
    min_delta_usd: float
    addons_usd: FloatArray
    worst_scenario: int


@dataclass(frozen=True, slots=True)
class PortfolioSnapshot:
    """A book revalued under one methodology at one market state, ready for pre-trade what-ifs:
    the scenario revaluation and the packed kernel inputs are computed once, and each what-if runs
    the same kernel (serial build) on the one account with the trade merged in."""

    book: Book
    kernel: KernelInputs
    maintenance_fraction: float
    unit_value_usd: FloatArray
    entry_coefficient_usd: FloatArray
    reciprocal_entry: npt.NDArray[np.bool_]
    bucket: IntArray
    bucket_underlying: IntArray
    general_underlying: npt.NDArray[np.bool_]  # (U,): KernelInputs.general_underlyings as a mask
    kernel_arguments: tuple[Any, ...]  # kernel.kernel_arguments, built once (a what-if is ~7 us)

    @classmethod
    def build(
        cls,
        model: PortfolioMargin,
        book: Book,
        market: MarketState,
        valuation: InstrumentValuation | None = None,
    ) -> PortfolioSnapshot:
        valuation = valuation if valuation is not None else revalue(book.instruments, market)
        scenarios = model.scenarios(book, valuation)
        depeg = depeg_scenarios(book, model.params.addons, scenarios.factors)
        full = scenarios if depeg is None else scenarios.concat(depeg)
        reval = revalue_scenarios(book.instruments, book.assets, market, valuation, full)
        return cls.from_scenarios(
            book,
            market,
            valuation,
            full,
            reval,
            model.params.addons,
            n_grid_scenarios=scenarios.n_scenarios,
            numeraire=model.params.numeraire,
            maintenance_fraction=model.params.maintenance_fraction,
        )

    @classmethod
    def from_scenarios(
        cls,
        book: Book,
        market: MarketState,
        valuation: InstrumentValuation,
        scenarios: ScenarioSet,
        reval: ScenarioRevaluation,
        addons: AddOns,
        *,
        n_grid_scenarios: int,
        numeraire: str | None,
        maintenance_fraction: float,
    ) -> PortfolioSnapshot:
        """From an explicit scenario set and its revaluation (as `portfolio_totals` takes them)."""
        kernel = kernel_inputs(
            book,
            market,
            valuation,
            scenarios,
            reval,
            addons,
            n_grid_scenarios=n_grid_scenarios,
            numeraire=numeraire,
        )
        buckets = book.risk_buckets
        return cls(
            book=book,
            kernel=kernel,
            maintenance_fraction=maintenance_fraction,
            unit_value_usd=valuation.unit_value_usd,
            entry_coefficient_usd=valuation.entry_coefficient_usd,
            reciprocal_entry=book.instruments.reciprocal_entry,
            bucket=buckets.bucket,
            bucket_underlying=buckets.underlying,
            general_underlying=np.array(
                [u in kernel.general_underlyings for u in book.instruments.underlyings], dtype=np.bool_
            ),
            kernel_arguments=kernel.kernel_arguments,
        )

    def what_if(self, account_row: int, *, instrument: int, quantity: float, price: float) -> WhatIf:
        """The account's requirement if it traded `quantity` contracts of `instrument` at `price`
        (settlement units): merged into an existing position at the average entry (in 1/E for
        inverse delta-one, where PnL is linear in 1/E), or a new one. One compiled call."""
        book = self.book
        out = np.empty(5 + len(ADDON_NAMES))
        _what_if(
            book.positions.indptr,
            book.positions.indices,
            book.positions.data,
            book.entry_price,
            *book.balance_csr,
            account_row,
            instrument,
            quantity,
            price,
            self.reciprocal_entry,
            self.bucket,
            self.bucket_underlying,
            self.general_underlying,
            self.unit_value_usd,
            self.entry_coefficient_usd,
            out,
            *self.kernel_arguments,
        )
        # Totals summed in the compiled call: numpy reductions on 8 numbers cost more than the kernel.
        grid, floor, worst, addon_sum, provisions = out[:5].tolist()
        initial = max(grid, floor) + addon_sum
        return WhatIf(
            initial_margin_usd=initial,
            maintenance_margin_usd=self.maintenance_fraction * (initial - provisions) + provisions,
            grid_usd=grid,
            min_delta_usd=floor,
            addons_usd=out[5:],
            worst_scenario=int(worst),
        )


@numba.njit(cache=False, nogil=True)
def _what_if(
    indptr: np.ndarray,
    indices: np.ndarray,
    quantity: np.ndarray,
    entry_price: np.ndarray,
    balance_ptr: np.ndarray,
    balance_asset: np.ndarray,
    balance_units: np.ndarray,
    account: int,
    instrument: int,
    trade_quantity: float,
    trade_price: float,
    reciprocal: np.ndarray,
    bucket: np.ndarray,
    bucket_underlying: np.ndarray,
    general_underlying: np.ndarray,
    unit_value: np.ndarray,
    coefficient: np.ndarray,
    out: np.ndarray,
    *kernel_arguments: Any,
) -> None:
    """Merge one trade into one account's positions, order them into runs and run the kernel on
    that account alone. out: grid, min-delta floor, worst scenario, sum of add-ons, provisions,
    then the add-ons. kernel_arguments: KernelInputs.kernel_arguments, passed through."""
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
        bucket,
        bucket_underlying,
        reciprocal,
        general_underlying,
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
    general_row = np.zeros(1, dtype=np.int32)
    ptr = np.zeros(2, dtype=np.int64)
    ptr[1] = m
    grid = np.empty(1)
    worst = np.empty(1, dtype=np.int64)
    floor = np.empty(1)
    addons = np.empty((1, 8))
    b_start = balance_ptr[account]
    b_stop = balance_ptr[account + 1]
    b_ptr = np.zeros(2, dtype=np.int64)
    b_ptr[1] = b_stop - b_start
    _serial_kernel(
        ptr,
        run_instrument,
        run_quantity,
        run_pnl_weight,
        run_entry_weight,
        side_weight,
        m,
        general_indptr,
        general_row,
        general_instrument,
        general_quantity,
        general_run_end,
        b_ptr,
        balance_asset[b_start:b_stop],
        balance_units[b_start:b_stop],
        unit_value,
        coefficient,
        *kernel_arguments,
        grid,
        worst,
        floor,
        addons,
    )
    out[0] = grid[0]
    out[1] = floor[0]
    out[2] = worst[0]
    out[3] = 0.0
    for j in range(8):
        out[5 + j] = addons[0, j]
        out[3] += addons[0, j]
    out[4] = addons[0, FUNDING_COLUMN] + addons[0, FEE_COLUMN]  # the provisions
