"""Portfolio margin: the worst loss of the whole portfolio over a scenario set, plus add-ons.

    grid_usd   = Σ_groups max(0, max_{s in group} -weight_s · PnL_s)
    PnL_s      = Σ_p q_p · (dA[i_p, s] + entry_term_p · dB[i_p, s])  +  Σ_k value_k · dF[k, s]
    IM         = grid_usd + Σ add-ons,     MM = maintenance_fraction · IM

positions, collateral and the scenario revaluation come from `core.scenarios` (one revaluation per
instrument per scenario); the whole book is reduced by one fused numba kernel that keeps each
account's S scenario P&Ls in a small local buffer, so the accounts x scenarios matrix is never
materialised. Add-ons (each a parameter object, None = off) work on per-underlying net
sensitivities accumulated in the same pass:

    delta contingency  rate · |D_u|                     D_u = net delta notional, USD
    short options      rate · Σ_short |q|·cs·S_u        (Deribit PM short-option contingency)
    concentration      c · |D_u| · (|D_u| / L_u)^power  L_u = liquidity (open interest), USD
    liquidity          half_spread_bps·1e-4·|D_u| + vega_half_spread·|V_u|   V_u = net vega USD/vol
    basis              rate · min(gross long, gross short) delta-one notional per underlying
    funding provision  max(0, Σ_p q·funding payment per contract)   (next payment, Paradex)
    fee provision      Σ_p |q| · closing fee per contract          (Paradex)
    stablecoin depeg   worst loss when one stablecoin alone moves by -depeg (Derive/Lyra, OKX MR9),
                       only for accounts holding positions
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numba
import numpy as np
import numpy.typing as npt

from crossmargin.core.book import Book
from crossmargin.core.checks import check_range
from crossmargin.core.collateral import value_collateral
from crossmargin.core.instruments import InstrumentKind
from crossmargin.core.margin.options_rule import OptionMarginParams
from crossmargin.core.margin.requirements import book_totals
from crossmargin.core.margin.result import MarginResult
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import InstrumentValuation, entry_term, revalue
from crossmargin.core.scenarios import (
    ScenarioRevaluation,
    ScenarioSet,
    VolShock,
    joint_scenarios,
    revalue_scenarios,
    underlying_grid,
)
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

ADDON_NAMES = (
    "delta_contingency",
    "short_option",
    "concentration",
    "liquidity",
    "basis",
    "funding_provision",
    "fee_provision",
    "stablecoin_depeg",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class GridSpec:
    """Price x vol grid on one underlying: `price_steps` moves over ±price_range, vol shocks,
    extreme moves at extreme_multiple x range counted at extreme_cover."""

    price_range: float
    price_steps: int = 9
    vol: VolShock = field(default_factory=VolShock)
    extreme_multiple: float = 0.0
    extreme_cover: float = 1.0

    def __post_init__(self) -> None:
        check_range(self.price_range, low=1e-6, high=0.99, name="grid.price_range")
        if self.price_steps < 1:
            raise InputError("grid.price_steps", "must be >= 1")
        check_range(self.extreme_cover, low=0.0, high=1.0, name="grid.extreme_cover")


@dataclass(frozen=True, slots=True, kw_only=True)
class JointSpec:
    """Correlated joint moves over factors (see scenarios.correlated_moves), each with vol up,
    same and down on every option."""

    factors: tuple[str, ...]
    ranges: tuple[float, ...]
    correlation: tuple[tuple[float, ...], ...]
    vol: VolShock = field(default_factory=VolShock)


@dataclass(frozen=True, slots=True, kw_only=True)
class AddOns:
    """Rates of each add-on; 0 switches one off. See the module docstring for the formulas."""

    delta_contingency_rate: float = 0.0
    short_option_rate: float = 0.0
    concentration_coefficient: float = 0.0
    concentration_power: float = 0.5
    liquidity_usd: Mapping[str, float] = field(default_factory=dict)
    delta_half_spread_bps: float = 0.0
    vega_half_spread: float = 0.0
    basis_rate: float = 0.0
    funding_periods: float = 0.0
    fee_rate: float = 0.0
    option_fee_cap: float = 0.125
    stablecoins: tuple[str, ...] = ()
    depeg_move: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "delta_contingency_rate",
            "short_option_rate",
            "concentration_coefficient",
            "basis_rate",
            "fee_rate",
            "depeg_move",
        ):
            check_range(getattr(self, name), low=0.0, high=1.0, name=f"addons.{name}")
        check_range(self.concentration_power, low=0.0, high=4.0, name="addons.concentration_power")
        check_range(self.funding_periods, low=0.0, high=100.0, name="addons.funding_periods")

    @property
    def any(self) -> bool:
        return any(
            (
                self.delta_contingency_rate,
                self.short_option_rate,
                self.concentration_coefficient,
                self.delta_half_spread_bps,
                self.vega_half_spread,
                self.basis_rate,
                self.funding_periods,
                self.fee_rate,
                self.depeg_move,
            )
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PortfolioParams:
    """A portfolio-margin methodology: scenarios, how they combine, add-ons, MM fraction."""

    name: str = "portfolio"
    grids: Mapping[str, GridSpec] = field(default_factory=dict)
    default_grid: GridSpec | None = field(default_factory=lambda: GridSpec(price_range=0.15))
    combine: str = "sum"
    joint: JointSpec | None = None
    addons: AddOns = field(default_factory=AddOns)
    maintenance_fraction: float = 0.8
    source: str = ""

    def __post_init__(self) -> None:
        if self.combine not in ("sum", "joint"):
            raise InputError("portfolio.combine", f"must be 'sum' or 'joint', got {self.combine!r}")
        if self.combine == "joint" and self.joint is None:
            raise InputError(
                "portfolio.joint", "combine: joint needs a joint spec (factors, ranges, correlation)"
            )
        check_range(self.maintenance_fraction, low=0.0, high=1.0, name="portfolio.maintenance_fraction")


def risk_factors(book: Book) -> tuple[str, ...]:
    """Underlyings, then collateral assets that are not underlyings (stablecoins, fiat)."""
    underlyings = book.instruments.underlyings
    return underlyings + tuple(a for a in book.assets.symbols if a not in underlyings)


def build_scenarios(book: Book, market: MarketState, params: PortfolioParams) -> ScenarioSet:
    """The methodology's scenario set for this book's instruments and factors."""
    factors = risk_factors(book)
    sets: list[ScenarioSet] = []
    if params.combine == "sum":
        for group, underlying in enumerate(book.instruments.underlyings):
            spec = params.grids.get(underlying, params.default_grid)
            if spec is None:
                raise InputError("portfolio.grids", f"no grid for underlying {underlying!r} and no default")
            sets.append(
                underlying_grid(
                    book.instruments,
                    market,
                    factors=factors,
                    underlying=underlying,
                    price_range=spec.price_range,
                    price_steps=spec.price_steps,
                    vol=spec.vol,
                    group=group,
                    extreme_multiple=spec.extreme_multiple,
                    extreme_cover=spec.extreme_cover,
                )
            )
    else:
        assert params.joint is not None
        joint = params.joint
        unknown = [f for f in joint.factors if f not in factors]
        missing = [u for u in book.instruments.underlyings if u not in joint.factors]
        if missing:
            raise InputError("portfolio.joint.factors", f"underlying {missing[0]!r} has no joint range")
        known = tuple(f for f in joint.factors if f not in unknown)
        keep = [joint.factors.index(f) for f in known]
        corr = np.asarray(joint.correlation, dtype=np.float64)[np.ix_(keep, keep)]
        ranges = {f: joint.ranges[joint.factors.index(f)] for f in known}
        moves = joint_scenarios(book.instruments, factors=known, ranges=ranges, correlation=corr, group=0)
        years = market.years_to_expiry(book.instruments)
        vols = [np.zeros(book.instruments.n_instruments)]
        names = [""]
        if joint.vol.up > 0.0:
            vols.append(np.where(book.instruments.is_option, joint.vol.shift(years, direction=1.0), 0.0))
            names.append(", vol up")
        if joint.vol.down > 0.0:
            vols.append(np.where(book.instruments.is_option, joint.vol.shift(years, direction=-1.0), 0.0))
            names.append(", vol down")
        cols = [factors.index(f) for f in known]
        factor_rows = np.ones((moves.n_scenarios * len(vols), len(factors)))
        factor_rows[:, cols] = np.tile(moves.price_factor, (len(vols), 1))
        sets.append(
            ScenarioSet(
                factors=factors,
                price_factor=factor_rows,
                vol_shift=np.repeat(np.array(vols), moves.n_scenarios, axis=0),
                weight=np.ones(factor_rows.shape[0]),
                group=np.zeros(factor_rows.shape[0], dtype=np.int64),
                labels=tuple(f"{label}{name}" for name in names for label in moves.labels),
            )
        )
    result = sets[0]
    for more in sets[1:]:
        result = result.concat(more)
    return result


def depeg_scenarios(book: Book, addons: AddOns, factors: tuple[str, ...]) -> ScenarioSet | None:
    """One scenario per stablecoin held as a factor: that coin alone falls by depeg_move."""
    coins = [c for c in addons.stablecoins if c in factors]
    if addons.depeg_move <= 0.0 or not coins:
        return None
    price = np.ones((len(coins), len(factors)))
    for row, coin in enumerate(coins):
        price[row, factors.index(coin)] = 1.0 - addons.depeg_move
    return ScenarioSet(
        factors=factors,
        price_factor=price,
        vol_shift=np.zeros((len(coins), book.instruments.n_instruments)),
        weight=np.ones(len(coins)),
        group=np.zeros(len(coins), dtype=np.int64),
        labels=tuple(f"{c} depeg {-addons.depeg_move:+.1%}" for c in coins),
    )


@dataclass(frozen=True, slots=True)
class InstrumentAddOnInputs:
    """Per contract, (I,): what the add-ons need from each instrument."""

    delta_notional_usd: FloatArray
    vega_usd: FloatArray
    short_option_notional_usd: FloatArray
    delta_one_notional_usd: FloatArray
    funding_payment_usd: FloatArray
    closing_fee_usd: FloatArray


def addon_inputs(
    book: Book, valuation: InstrumentValuation, market: MarketState, addons: AddOns
) -> InstrumentAddOnInputs:
    table = book.instruments
    option = table.is_option
    spot = valuation.spot_usd
    delta_one = ~option
    perp = table.kind == InstrumentKind.PERPETUAL
    # Funding: a long pays rate x notional per period when the rate is positive (zero-sum).
    funding = np.where(perp, valuation.notional_usd * market.funding_rate_8h * addons.funding_periods, 0.0)
    fee = addons.fee_rate * valuation.notional_usd
    fee = np.where(option, np.minimum(fee, addons.option_fee_cap * np.abs(valuation.unit_value_usd)), fee)
    return InstrumentAddOnInputs(
        delta_notional_usd=valuation.delta_usd * spot,
        vega_usd=valuation.vega_usd,
        short_option_notional_usd=np.where(option, table.contract_size * spot, 0.0),
        delta_one_notional_usd=np.where(delta_one, valuation.notional_usd, 0.0),
        funding_payment_usd=funding,
        closing_fee_usd=fee,
    )


@dataclass(frozen=True, slots=True)
class PortfolioTotals:
    """Per account (n_accounts,): grid requirement, worst scenario row, add-ons (n_accounts, 8)."""

    grid_usd: FloatArray
    worst_scenario: IntArray
    addons_usd: FloatArray


@dataclass(frozen=True, slots=True)
class PortfolioMargin:
    """Portfolio margin under one methodology (`PortfolioParams`, see `presets`)."""

    params: PortfolioParams = field(default_factory=PortfolioParams)

    @property
    def name(self) -> str:
        return self.params.name

    def scenarios(self, book: Book, market: MarketState) -> ScenarioSet:
        return build_scenarios(book, market, self.params)

    def evaluate(
        self, book: Book, market: MarketState, valuation: InstrumentValuation | None = None
    ) -> MarginResult:
        valuation = valuation if valuation is not None else revalue(book.instruments, market)
        totals = self.totals(book, market, valuation)
        return self.result(book, valuation, totals)

    def result(self, book: Book, valuation: InstrumentValuation, totals: PortfolioTotals) -> MarginResult:
        # Equity is model-independent: reuse the cross kernel's value pass (requirements unused).
        values = book_totals(book, valuation, OptionMarginParams())
        initial = totals.grid_usd + totals.addons_usd.sum(axis=1)
        return MarginResult.pooled(
            model=self.name,
            collateral_value_usd=values.collateral_value_usd,
            position_value_usd=values.position_value_usd,
            initial_margin_usd=initial,
            maintenance_margin_usd=self.params.maintenance_fraction * initial,
        )

    def totals(self, book: Book, market: MarketState, valuation: InstrumentValuation) -> PortfolioTotals:
        scenarios = self.scenarios(book, market)
        addons = self.params.addons
        depeg = depeg_scenarios(book, addons, scenarios.factors)
        full = scenarios if depeg is None else scenarios.concat(depeg)
        reval = revalue_scenarios(book.instruments, book.assets, market, valuation, full)
        return portfolio_totals(
            book, market, valuation, full, reval, addons, n_grid_scenarios=scenarios.n_scenarios
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
) -> PortfolioTotals:
    """Run the fused kernel over the whole book. Scenarios after `n_grid_scenarios` are the depeg
    group, reported as an add-on."""
    table = book.instruments
    inputs = addon_inputs(book, valuation, market, addons)
    collateral = value_collateral(book.balances, book.assets).value_usd
    liquidity = np.array([addons.liquidity_usd.get(u, np.inf) for u in table.underlyings], dtype=np.float64)
    n = book.n_accounts
    grid = np.empty(n)
    worst = np.empty(n, dtype=np.int64)
    out_addons = np.zeros((n, len(ADDON_NAMES)))
    has_coefficient = np.any(reval.d_entry_coefficient_usd != 0.0, axis=1)
    rates = np.array(
        [
            addons.delta_contingency_rate,
            addons.short_option_rate,
            addons.concentration_coefficient,
            addons.concentration_power,
            addons.delta_half_spread_bps * 1e-4,
            addons.vega_half_spread,
            addons.basis_rate,
        ]
    )
    _portfolio_kernel(
        book.positions.indptr.astype(np.int64, copy=False),
        book.positions.indices,
        book.positions.data,
        book.entry_price,
        table.reciprocal_entry,
        has_coefficient,
        reval.d_unit_value_usd,
        reval.d_entry_coefficient_usd,
        collateral,
        reval.d_asset_factor,
        scenarios.weight,
        scenarios.group,
        int(scenarios.group[:n_grid_scenarios].max()) + 1,
        n_grid_scenarios,
        table.underlying_index,
        len(table.underlyings),
        table.is_option,
        inputs.delta_notional_usd,
        inputs.vega_usd,
        inputs.short_option_notional_usd,
        inputs.delta_one_notional_usd,
        inputs.funding_payment_usd,
        inputs.closing_fee_usd,
        liquidity,
        rates,
        grid,
        worst,
        out_addons,
    )
    return PortfolioTotals(grid_usd=grid, worst_scenario=worst, addons_usd=out_addons)


CHUNK_ACCOUNTS = 4096


@numba.njit(parallel=True, cache=True, nogil=True)
def _portfolio_kernel(
    indptr: np.ndarray,
    indices: np.ndarray,
    quantity: np.ndarray,
    entry_price: np.ndarray,
    reciprocal: np.ndarray,
    has_coefficient: np.ndarray,
    d_unit: np.ndarray,
    d_coef: np.ndarray,
    collateral: np.ndarray,
    d_asset: np.ndarray,
    weight: np.ndarray,
    group: np.ndarray,
    n_groups: int,
    n_grid: int,
    underlying_index: np.ndarray,
    n_underlyings: int,
    is_option: np.ndarray,
    delta_notional: np.ndarray,
    vega: np.ndarray,
    short_option_notional: np.ndarray,
    delta_one_notional: np.ndarray,
    funding_payment: np.ndarray,
    closing_fee: np.ndarray,
    liquidity: np.ndarray,
    rates: np.ndarray,
    out_grid: np.ndarray,
    out_worst: np.ndarray,
    out_addons: np.ndarray,
) -> None:
    n_accounts = indptr.shape[0] - 1
    n_scen = d_unit.shape[1]
    n_assets = collateral.shape[1]
    n_chunks = (n_accounts + CHUNK_ACCOUNTS - 1) // CHUNK_ACCOUNTS
    for chunk in numba.prange(n_chunks):
        pnl = np.empty(n_scen)
        group_loss = np.empty(n_groups)
        group_arg = np.empty(n_groups, dtype=np.int64)
        net_delta = np.empty(n_underlyings)
        net_vega = np.empty(n_underlyings)
        short_opt = np.empty(n_underlyings)
        gross_long = np.empty(n_underlyings)
        gross_short = np.empty(n_underlyings)
        stop = min((chunk + 1) * CHUNK_ACCOUNTS, n_accounts)
        for a in range(chunk * CHUNK_ACCOUNTS, stop):
            pnl[:] = 0.0
            net_delta[:] = 0.0
            net_vega[:] = 0.0
            short_opt[:] = 0.0
            gross_long[:] = 0.0
            gross_short[:] = 0.0
            funding = 0.0
            fees = 0.0
            for p in range(indptr[a], indptr[a + 1]):
                i = indices[p]
                q = quantity[p]
                row = d_unit[i]
                for s in range(n_scen):
                    pnl[s] += q * row[s]
                if has_coefficient[i]:
                    e = entry_price[p]
                    qt = q * (1.0 / e if reciprocal[i] else e)
                    crow = d_coef[i]
                    for s in range(n_scen):
                        pnl[s] += qt * crow[s]
                u = underlying_index[i]
                net_delta[u] += q * delta_notional[i]
                net_vega[u] += q * vega[i]
                if is_option[i]:
                    if q < 0.0:
                        short_opt[u] -= q * short_option_notional[i]
                elif q > 0.0:
                    gross_long[u] += q * delta_one_notional[i]
                else:
                    gross_short[u] -= q * delta_one_notional[i]
                funding += q * funding_payment[i]
                fees += abs(q) * closing_fee[i]
            for k in range(n_assets):
                v = collateral[a, k]
                if v != 0.0:
                    drow = d_asset[k]
                    for s in range(n_scen):
                        pnl[s] += v * drow[s]
            group_loss[:] = 0.0
            group_arg[:] = -1
            for s in range(n_grid):
                loss = -weight[s] * pnl[s]
                g = group[s]
                if group_arg[g] < 0 or loss > group_loss[g]:
                    group_loss[g] = loss
                    group_arg[g] = s
            total = 0.0
            best = -1.0
            arg = 0
            for g in range(n_groups):
                contribution = max(group_loss[g], 0.0)
                total += contribution
                if contribution > best:
                    best = contribution
                    arg = group_arg[g]
            out_grid[a] = total
            out_worst[a] = arg
            has_positions = indptr[a + 1] > indptr[a]
            depeg = 0.0
            if has_positions:
                for s in range(n_grid, n_scen):
                    depeg = max(depeg, -pnl[s])
            delta_c = 0.0
            short_c = 0.0
            conc = 0.0
            liq = 0.0
            basis = 0.0
            for u in range(n_underlyings):
                d = abs(net_delta[u])
                delta_c += rates[0] * d
                short_c += rates[1] * short_opt[u]
                if rates[2] > 0.0 and d > 0.0:
                    conc += rates[2] * d * (d / liquidity[u]) ** rates[3]
                liq += rates[4] * d + rates[5] * abs(net_vega[u])
                basis += rates[6] * min(gross_long[u], gross_short[u])
            out_addons[a, 0] = delta_c
            out_addons[a, 1] = short_c
            out_addons[a, 2] = conc
            out_addons[a, 3] = liq
            out_addons[a, 4] = basis
            out_addons[a, 5] = max(funding, 0.0)
            out_addons[a, 6] = fees
            out_addons[a, 7] = depeg


@dataclass(frozen=True, slots=True)
class PortfolioExplanation:
    """Why one account needs what it needs (numpy, on demand).

    scenario_pnl_usd: (n_positions, S) per position; collateral_pnl_usd: (K, S) per asset;
    worst_scenario: the row that drove the largest group; per_group_usd: each group's worst
    weighted loss; addons_usd: by name.
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
    addons_usd: dict[str, float]


def explain_account(
    model: PortfolioMargin,
    book: Book,
    market: MarketState,
    account_row: int,
    valuation: InstrumentValuation | None = None,
) -> PortfolioExplanation:
    """Recompute one account densely: every position's and asset's P&L in every scenario."""
    valuation = valuation if valuation is not None else revalue(book.instruments, market)
    scenarios = model.scenarios(book, market)
    reval = revalue_scenarios(book.instruments, book.assets, market, valuation, scenarios)
    start, stop = int(book.positions.indptr[account_row]), int(book.positions.indptr[account_row + 1])
    inst = book.positions.indices[start:stop].astype(np.int64)
    qty = book.positions.data[start:stop]
    term = entry_term(book.entry_price[start:stop], book.instruments.reciprocal_entry[inst])
    position_pnl = qty[:, None] * (
        reval.d_unit_value_usd[inst] + term[:, None] * reval.d_entry_coefficient_usd[inst]
    )
    collateral = value_collateral(book.balances[account_row : account_row + 1], book.assets).value_usd[0]
    collateral_pnl = collateral[:, None] * reval.d_asset_factor
    total = position_pnl.sum(axis=0) + collateral_pnl.sum(axis=0)
    loss = -scenarios.weight * total
    per_group = np.zeros(scenarios.n_groups)
    per_group_scenario = np.zeros(scenarios.n_groups, dtype=np.int64)
    for g in range(scenarios.n_groups):  # a handful of groups
        rows = np.flatnonzero(scenarios.group == g)
        j = rows[int(np.argmax(loss[rows]))]
        per_group[g] = max(loss[j], 0.0)
        per_group_scenario[g] = j
    worst_group = int(np.argmax(per_group)) if per_group.size else 0
    totals = model.totals(book.select([account_row]), market, valuation)
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
        addons_usd={name: float(totals.addons_usd[0, n]) for n, name in enumerate(ADDON_NAMES)},
    )
