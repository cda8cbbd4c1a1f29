"""Pre-trade what-if: one account's requirement after one hypothetical trade, against a snapshot
of the book's scenario revaluation (the kernel's serial build on that account alone)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from crossmargin.core import jit
from crossmargin.core.book import Book
from crossmargin.core.checks import check_number, check_row
from crossmargin.core.margin.portfolio.backend import (
    DEFAULT_KERNEL,
    KernelBackend,
    kernel_backend,
    kernel_work,
)
from crossmargin.core.margin.portfolio.inputs import KernelInputs, kernel_inputs
from crossmargin.core.margin.portfolio.kernel import WhatIfBook
from crossmargin.core.margin.portfolio.parameters import ADDON_NAMES, AddOns
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import InstrumentValuation, revalue
from crossmargin.core.scenarios import ScenarioRevaluation, ScenarioSet
from crossmargin.errors import InputError

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
    what_if_book: WhatIfBook  # the book's side of every what-if, built once (a what-if is ~7 us)
    backend: KernelBackend  # the build chosen at the snapshot (under auto, what-ifs may move on)
    what_if_call: Callable[..., None]  # backend.what_if_for(what_if_book, kernel.arrays)

    @classmethod
    def build(
        cls,
        model: PortfolioMargin,
        book: Book,
        market: MarketState,
        valuation: InstrumentValuation | None = None,
        *,
        kernel: str | None = None,
    ) -> PortfolioSnapshot:
        """`kernel`: "simd", "numba" or "python" (backend.py), None for the one
        CROSSMARGIN_KERNEL names for the whole book's work (a small book's what-ifs run as Python,
        ~1 ms each; a big one's compiled, ~10 us); the numbers are the same."""
        valuation = valuation if valuation is not None else revalue(book.instruments, market)
        revalued = model.revalued_scenarios(book, market, valuation)
        return cls.from_scenarios(
            book,
            market,
            valuation,
            revalued.scenarios,
            revalued.reval,
            model.params.addons,
            n_grid_scenarios=revalued.n_grid_scenarios,
            numeraire=model.params.numeraire,
            maintenance_fraction=model.params.maintenance_fraction,
            kernel=kernel,
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
        kernel: str | None = None,
    ) -> PortfolioSnapshot:
        """From an explicit scenario set and its revaluation (as `portfolio_totals` takes them)."""
        packed = kernel_inputs(
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
        balance_ptr, balance_asset, balance_units = book.balance_csr
        what_if_book = WhatIfBook(
            indptr=book.positions.indptr,
            instrument=book.positions.indices,
            quantity=book.positions.data,
            entry_price=book.entry_price,
            balance_ptr=balance_ptr,
            balance_asset=balance_asset,
            balance_units=balance_units,
            reciprocal_entry=book.instruments.reciprocal_entry,
            bucket=buckets.bucket,
            bucket_underlying=buckets.underlying,
            general_underlying=np.array(
                [u in packed.general_underlyings for u in book.instruments.underlyings], dtype=np.bool_
            ),
        )
        backend = kernel_backend(kernel, work=kernel_work(book.position_runs, packed.arrays))
        what_if_call = backend.what_if_for(what_if_book, packed.arrays)
        if kernel is None and backend.name == "python":  # auto: compiled once the budget is spent
            widest = int(book.position_runs.max_positions) + 1 + int(np.diff(balance_ptr).max(initial=0))
            what_if_call = _InterpretedWhileBudgetLasts(
                interpreted=what_if_call,
                compile=lambda: kernel_backend(DEFAULT_KERNEL).what_if_for(what_if_book, packed.arrays),
                work=widest * int(packed.arrays.scenario_rows.shape[1]),  # us, as kernel_work
            )
        return cls(
            book=book,
            kernel=packed,
            maintenance_fraction=maintenance_fraction,
            what_if_book=what_if_book,
            backend=backend,
            what_if_call=what_if_call,
        )

    def what_if(self, account_row: int, *, instrument: int, quantity: float, price: float) -> WhatIf:
        """The account's requirement if it traded `quantity` contracts of `instrument` at `price`
        (settlement units): merged into an existing position at the average entry (in 1/E for
        inverse delta-one, where PnL is linear in 1/E), or a new one. One compiled call.

        Checked before that call, each an InputError naming the argument: `account_row` and
        `instrument` integer rows of the book, `quantity` a finite number, `price` finite, >= 0
        (> 0 for an inverse delta-one instrument, whose entry enters as 1/E)."""
        account_row = check_row(account_row, size=self.book.n_accounts, name="account_row")
        instrument = check_row(instrument, size=self.book.instruments.n_instruments, name="instrument")
        quantity = check_number(quantity, "quantity")
        price = check_number(price, "price")
        if price < 0.0 or (price == 0.0 and self.what_if_book.reciprocal_entry[instrument]):
            bound = "> 0 (inverse: the entry enters as 1/price)" if price == 0.0 else ">= 0"
            raise InputError("price", f"must be {bound}, got {price!r}")
        out = np.empty(5 + len(ADDON_NAMES))
        self.what_if_call(
            self.what_if_book, self.kernel.arrays, account_row, instrument, quantity, price, out
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


@dataclass(slots=True)
class _InterpretedWhileBudgetLasts:
    """Under CROSSMARGIN_KERNEL=auto, a small book's what-ifs: interpreted (~1 ms each) while
    core.jit's budget of interpreted work lasts, then compiled (~10 us each) for the rest of the
    process, so a service answering many what-ifs pays numba's start-up once (core.jit)."""

    interpreted: Callable[..., None]
    compile: Callable[[], Callable[..., None]]
    work: int  # estimated microseconds of one interpreted what-if
    compiled: Callable[..., None] | None = None

    def __call__(self, *args: object) -> None:
        if self.compiled is None:
            if jit.interpret(self.work):
                self.interpreted(*args)
                return
            self.compiled = self.compile()
        self.compiled(*args)
