"""Why one account needs what it needs: its positions' and collateral's P&L in every scenario,
recomputed densely (numpy, on demand)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from crossmargin.core.book import Book
from crossmargin.core.margin.portfolio.parameters import ADDON_NAMES
from crossmargin.core.margin.portfolio.scenarios import numeraire_factor
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import InstrumentValuation, revalue
from crossmargin.core.scenarios import ScenarioSet, item_scenario_pnl, revalue_scenarios

if TYPE_CHECKING:
    from crossmargin.core.margin.portfolio.model import PortfolioMargin

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class PortfolioExplanation:
    """Why one account needs what it needs (numpy, on demand).

    scenario_pnl_usd: (n_positions, S) per position; collateral_pnl_usd: (K, S) per asset; both
    in the numeraire at today's price (plain USD P&L under a USD numeraire);
    worst_scenario: the row that drove the largest group; per_group_usd: each group's worst
    weighted loss (in the numeraire, at today's price); min_delta_usd: the floor; addons_usd by name.
    """

    account_row: int
    scenarios: ScenarioSet
    position_instrument: IntArray
    quantity: FloatArray
    scenario_pnl_usd: FloatArray
    collateral_pnl_usd: FloatArray
    worst_scenario: int
    per_group_usd: FloatArray
    per_group_scenario: IntArray
    grid_usd: float
    min_delta_usd: float
    addons_usd: dict[str, float]
    initial_margin_usd: float
    maintenance_margin_usd: float


def explain_account(
    model: PortfolioMargin,
    book: Book,
    market: MarketState,
    account_row: int,
    valuation: InstrumentValuation | None = None,
) -> PortfolioExplanation:
    """Recompute one account densely: every position's and asset's P&L in every scenario."""
    valuation = valuation if valuation is not None else revalue(book.instruments, market)
    sub = book.select([account_row])
    scenarios = model.scenarios(sub, valuation)
    reval = revalue_scenarios(sub.instruments, sub.assets, market, valuation, scenarios)
    items = item_scenario_pnl(sub, 0, valuation, reval, market.asset_prices(sub.assets))
    inst, qty = items.instrument_index, items.quantity
    # In the numeraire, at today's price (numeraire_factor): (dV - V0·(f - 1)) / f per item.
    factor = numeraire_factor(scenarios, model.params.numeraire)
    position_pnl = (items.position_pnl_usd - items.position_value_usd[:, None] * (factor - 1.0)) / factor
    collateral_pnl = (
        items.collateral_pnl_usd - items.collateral_value_usd[:, None] * (factor - 1.0)
    ) / factor
    total = position_pnl.sum(axis=0) + collateral_pnl.sum(axis=0)
    loss = -scenarios.weight * total - scenarios.offsets
    per_group = np.zeros(scenarios.n_groups)
    per_group_scenario = np.zeros(scenarios.n_groups, dtype=np.int64)
    for g in range(scenarios.n_groups):  # a handful of groups
        rows = np.flatnonzero(scenarios.group == g)
        j = rows[int(np.argmax(loss[rows]))]
        per_group[g] = max(loss[j], 0.0)
        per_group_scenario[g] = j
    worst_group = int(np.argmax(per_group)) if per_group.size else 0
    totals = model.totals(sub, market, valuation)
    initial = float(totals.initial_margin_usd[0])
    return PortfolioExplanation(
        account_row=account_row,
        scenarios=scenarios,
        position_instrument=inst,
        quantity=qty,
        scenario_pnl_usd=position_pnl,
        collateral_pnl_usd=collateral_pnl,
        worst_scenario=int(per_group_scenario[worst_group]) if per_group.size else 0,
        per_group_usd=per_group,
        per_group_scenario=per_group_scenario,
        grid_usd=float(per_group.sum()),
        min_delta_usd=float(totals.min_delta_usd[0]),
        addons_usd={name: float(totals.addons_usd[0, n]) for n, name in enumerate(ADDON_NAMES)},
        initial_margin_usd=initial,
        maintenance_margin_usd=float(totals.maintenance_margin_usd(model.params.maintenance_fraction)[0]),
    )
