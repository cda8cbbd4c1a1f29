"""`PortfolioMargin`: the margin-model face of the package (evaluate, breakdown, totals)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from crossmargin.core.book import Book
from crossmargin.core.checks import check_instance
from crossmargin.core.margin.cross import cross_breakdown
from crossmargin.core.margin.options_rule import OptionMarginParams
from crossmargin.core.margin.portfolio.backend import KERNELS
from crossmargin.core.margin.portfolio.parameters import PortfolioParams
from crossmargin.core.margin.portfolio.scenarios import build_scenarios, depeg_scenarios
from crossmargin.core.margin.portfolio.totals import PortfolioTotals, portfolio_totals
from crossmargin.core.margin.requirements import risk_based_result
from crossmargin.core.margin.result import Breakdown, MarginResult, allocate_requirement
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import InstrumentValuation, entry_term, revalue
from crossmargin.core.scenarios import ScenarioRevaluation, ScenarioSet, revalue_scenarios
from crossmargin.errors import InputError


@dataclass(frozen=True, slots=True)
class PortfolioMargin:
    """Portfolio margin under one methodology (`PortfolioParams`, see `presets`). kernel: the
    build that computes it, "simd", "numba" or "python" (backend.py), None for the one
    CROSSMARGIN_KERNEL names; the numbers are the same."""

    params: PortfolioParams = field(default_factory=PortfolioParams)
    kernel: str | None = None

    def __post_init__(self) -> None:
        check_instance(self.params, PortfolioParams, "params")
        if self.kernel is not None and self.kernel not in KERNELS:
            raise InputError("kernel", f"unknown kernel {self.kernel!r}: choose simd, numba or python")

    @property
    def name(self) -> str:
        return self.params.name

    def scenarios(self, book: Book, valuation: InstrumentValuation) -> ScenarioSet:
        return build_scenarios(book, valuation, self.params)

    def revalued_scenarios(
        self, book: Book, market: MarketState, valuation: InstrumentValuation
    ) -> RevaluedScenarios:
        """The methodology's grid, then its depeg rows, revalued once: what the kernel, the
        breakdown and the what-if snapshot all start from."""
        grid = self.scenarios(book, valuation)
        depeg = depeg_scenarios(book, self.params.addons, grid.factors)
        full = grid if depeg is None else grid.concat(depeg)
        reval = revalue_scenarios(book.instruments, book.assets, market, valuation, full)
        return RevaluedScenarios(scenarios=full, n_grid_scenarios=grid.n_scenarios, reval=reval)

    def evaluate(
        self, book: Book, market: MarketState, valuation: InstrumentValuation | None = None
    ) -> MarginResult:
        valuation = valuation if valuation is not None else revalue(book.instruments, market)
        totals = self.totals(book, market, valuation)
        # Equity is model-independent: the cross kernel's value pass (its requirements unused).
        initial = totals.initial_margin_usd
        return risk_based_result(
            self.name,
            book,
            market,
            valuation,
            initial_margin_usd=initial,
            maintenance_margin_usd=totals.maintenance_margin_usd(self.params.maintenance_fraction),
        )

    def breakdown(
        self,
        book: Book,
        market: MarketState,
        account_rows: Sequence[int],
        valuation: InstrumentValuation | None = None,
    ) -> Breakdown:
        """Per-position values (requirements are portfolio-level: see `explain_account`)."""
        valuation = valuation if valuation is not None else revalue(book.instruments, market)
        rows = np.asarray(account_rows, dtype=np.int64)
        base = cross_breakdown(book, market, valuation, OptionMarginParams(), rows)
        sub = book.select(rows)
        if sub.positions.nnz == 0:  # nothing to allocate (and maybe no scenario grid at all)
            return base
        revalued = self.revalued_scenarios(sub, market, valuation)
        totals = self.totals(sub, market, valuation, revalued)
        # Each position's share of the account requirement: its loss in the account's worst scenario.
        reval = revalued.reval
        counts = np.diff(sub.positions.indptr)
        worst = totals.worst_scenario[np.repeat(np.arange(rows.size), counts)]
        inst = base.position_instrument
        term = entry_term(base.entry_price, book.instruments.reciprocal_entry[inst])
        pnl = base.quantity * (
            reval.d_unit_value_usd[inst, worst] + term * reval.d_entry_coefficient_usd[inst, worst]
        )
        return allocate_requirement(
            base,
            positions_per_account=counts,
            initial_margin_usd=totals.initial_margin_usd,
            maintenance_margin_usd=totals.maintenance_margin_usd(self.params.maintenance_fraction),
            weight=-pnl,  # each position's loss in its account's worst scenario
        )

    def totals(
        self,
        book: Book,
        market: MarketState,
        valuation: InstrumentValuation,
        revalued: RevaluedScenarios | None = None,
    ) -> PortfolioTotals:
        """The kernel's totals (`revalued`: `revalued_scenarios` of this book, when the caller has
        it); an account without positions needs nothing (its collateral's own risk is priced by the
        haircuts, as under cross and VaR margin: one contract for every model,
        tests/property/test_model_contract.py)."""
        if book.positions.nnz == 0:  # also a book with no instrument, which has no scenario grid
            return _zero_totals(book.n_accounts)
        revalued = revalued if revalued is not None else self.revalued_scenarios(book, market, valuation)
        totals = portfolio_totals(
            book,
            market,
            valuation,
            revalued.scenarios,
            revalued.reval,
            self.params.addons,
            n_grid_scenarios=revalued.n_grid_scenarios,
            numeraire=self.params.numeraire,
            kernel=self.kernel,
        )
        idle = np.diff(book.positions.indptr) == 0
        if np.any(idle):
            totals.grid_usd[idle] = 0.0
            totals.min_delta_usd[idle] = 0.0
            totals.addons_usd[idle] = 0.0
        return totals


@dataclass(frozen=True, slots=True)
class RevaluedScenarios:
    """A book's full scenario set (grid rows, then depeg rows) and its revaluation."""

    scenarios: ScenarioSet
    n_grid_scenarios: int
    reval: ScenarioRevaluation


def _zero_totals(n_accounts: int) -> PortfolioTotals:
    totals = PortfolioTotals.empty(n_accounts)
    for array in (totals.grid_usd, totals.worst_scenario, totals.min_delta_usd, totals.addons_usd):
        array.fill(0)
    return totals
