"""`portfolio_totals`: the kernel over a whole book, into `PortfolioTotals` (per-account grid,
worst scenario, floor and add-ons, USD)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from crossmargin.core.book import Book
from crossmargin.core.margin.portfolio.backend import kernel_backend, kernel_work
from crossmargin.core.margin.portfolio.inputs import kernel_inputs
from crossmargin.core.margin.portfolio.kernel import KernelOutputs, account_streams
from crossmargin.core.margin.portfolio.parameters import ADDON_NAMES, PROVISIONS, AddOns
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import InstrumentValuation
from crossmargin.core.scenarios import ScenarioRevaluation, ScenarioSet
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


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
    kernel: str | None = None,
) -> PortfolioTotals:
    """Run the fused kernel over the whole book. Scenarios after `n_grid_scenarios` are the depeg
    group, reported as an add-on. `out`: buffers to overwrite (`PortfolioTotals.empty`), for a
    loop that recomputes every tick: fresh 88 MB per call on a 1M-account book cost ~5 ms of
    page faults (bench_portfolio reports both). `kernel`: "simd", "numba" or "python" (backend.py),
    None for the one CROSSMARGIN_KERNEL names for this much work; the numbers are the same."""
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
    if out is None:
        out = PortfolioTotals.empty(book.n_accounts)
    else:
        out.check_shape(book.n_accounts)
    streams = account_streams(book.position_runs_for(packed.general_underlyings), book.balance_csr)
    outputs = KernelOutputs(
        grid_usd=out.grid_usd,
        worst_scenario=out.worst_scenario,
        min_delta_usd=out.min_delta_usd,
        addons_usd=out.addons_usd,
    )
    kernel_backend(kernel, work=kernel_work(streams, packed.arrays)).book(streams, packed.arrays, outputs)
    return out
