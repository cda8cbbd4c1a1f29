"""Portfolio margin: the worst loss of the whole portfolio over a scenario set, plus add-ons.

    PnL_s      = Σ_p q_p · (dA[i_p, s] + entry_term_p · dB[i_p, s])  +  Σ_k value_k · dF[k, s]
    loss_s     = weight_s · (-PnL_s) / f_num(s) - offset_s         (f_num: numeraire's price factor)
    grid_usd   = Σ_groups max(0, max_{s in group} loss_s)
    IM         = max(grid_usd, min_delta_usd) + Σ add-ons,        MM = maintenance_fraction · IM

Positions, collateral and the scenario revaluation come from `core.scenarios` (one revaluation per
instrument per scenario); the whole book is reduced by one fused numba kernel that keeps each
account's S scenario P&Ls in a small local buffer, so the accounts x scenarios matrix is never
materialised. With a coin numeraire (Deribit S:PM margins each currency in that coin) losses are
measured in the coin and converted back at today's price: a coin balance then carries no risk.

Floor and add-ons (each a parameter, 0 = off), on per-underlying net sensitivities accumulated in
the same pass (D_u: net delta, USD; G_u: gross delta, USD; V_u: net vega, USD per 1.00 vol):

    min delta (floor)  (unhedged·|D_u| + hedged·(G_u - |D_u|)/2)       Paradex "MinDeltaRisk"
    roll shock         Σ_{u,expiry} |D_{u,e}| · max(min_move, move_risk · T_e)    Deribit PM, OKX MR4
    delta contingency  rate · |D_u|
    short options      rate · Σ_short |q|·cs·S_u                 Derive optionPercent, legacy Deribit PM
    concentration      c · |D_u| · (|D_u| / L_u)^power            L_u = liquidity (open interest), USD
    liquidity          half_spread_bps·1e-4·|D_u| + vega_half_spread·|V_u|
    funding provision  max(0, Σ_p q · next funding payment per contract)     Paradex
    fee provision      Σ_p |q| · closing fee per contract                     Paradex
    stablecoin depeg   when one stablecoin alone falls by depeg_move, the loss on the collateral
                       that backs the requirement: max over coins of min(loss, depeg_move·grid)
                       (accounts with positions only; an idle balance's depeg is a haircut
                       matter, not a margin one)             after Derive/Lyra depeg, OKX MR9
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from crossmargin.core.book import Book
from crossmargin.core.checks import check_all, check_range
from crossmargin.core.instruments import NO_EXPIRY_NS, InstrumentKind, InstrumentTable
from crossmargin.core.margin.cross import cross_breakdown
from crossmargin.core.margin.options_rule import OptionMarginParams
from crossmargin.core.margin.requirements import risk_based_result
from crossmargin.core.margin.result import Breakdown, MarginResult, allocate_requirement
from crossmargin.core.market import MarketState
from crossmargin.core.position_runs import PositionRuns, copy_general, order_account
from crossmargin.core.pricing import InstrumentValuation, entry_term, revalue
from crossmargin.core.scenarios import (
    GridSpec,
    ScenarioRevaluation,
    ScenarioSet,
    VolShock,
    item_scenario_pnl,
    joint_scenarios,
    revalue_scenarios,
    underlying_grid,
)
from crossmargin.core.simd import (
    LANES,
    MAX_VECTORS,
    SIDE_SHORT_LANE,
    SIDE_SIGNED_LANE,
    first_worst,
    two_stream_row_sum,
    two_stream_row_sum_worst,
)
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

ADDON_NAMES = (
    "roll_shock",
    "delta_contingency",
    "short_option",
    "concentration",
    "liquidity",
    "funding_provision",
    "fee_provision",
    "stablecoin_depeg",
)
PROVISIONS = [ADDON_NAMES.index("funding_provision"), ADDON_NAMES.index("fee_provision")]
_FUNDING_COLUMN, _FEE_COLUMN = PROVISIONS  # as compile-time constants for the what-if


@dataclass(frozen=True, slots=True, kw_only=True)
class JointSpec:
    """Correlated joint moves over factors (see scenarios.correlated_moves), each with the vol
    shocks of `vol` on every option, plus optional extreme joint moves (all factors by the same
    return, counted at extreme_cover)."""

    factors: tuple[str, ...]
    ranges: tuple[float, ...]
    correlation: tuple[tuple[float, ...], ...]
    vol: VolShock = field(default_factory=VolShock)
    extreme_moves: tuple[float, ...] = ()
    extreme_cover: float = 1.0
    extreme_weights: tuple[float, ...] | None = None
    extreme_delta_one_cap: float | None = None
    default_range: float | None = None
    default_correlation: float = 0.5

    def __post_init__(self) -> None:
        if len(self.ranges) != len(self.factors) or len(self.correlation) != len(self.factors):
            raise InputError("portfolio.joint", "factors, ranges and correlation rows must align")
        for factor, value in zip(self.factors, self.ranges, strict=True):
            check_range(value, low=1e-6, high=0.99, name=f"portfolio.joint.ranges.{factor}")
        check_range(self.extreme_cover, low=0.0, high=1.0, name="portfolio.joint.extreme_cover")
        if self.extreme_weights is not None and len(self.extreme_weights) != len(self.extreme_moves):
            raise InputError("portfolio.joint.extreme_weights", "one weight per extreme move")
        check_range(self.default_correlation, low=-1.0, high=1.0, name="portfolio.joint.default_correlation")

    def for_underlyings(
        self, underlyings: tuple[str, ...], factors: tuple[str, ...]
    ) -> tuple[tuple[str, ...], dict[str, float], FloatArray]:
        """(factors, ranges, correlation) restricted to this book's factors, with every underlying
        the spec does not name added at default_range and default_correlation (error if None)."""
        names = [f for f in self.factors if f in factors]
        extra = [u for u in underlyings if u not in self.factors]
        if extra and self.default_range is None:
            raise InputError("portfolio.joint.factors", f"underlying {extra[0]!r} has no joint range")
        all_names = names + extra
        given = {f: n for n, f in enumerate(self.factors)}
        corr = np.full((len(all_names), len(all_names)), self.default_correlation)
        for a, fa in enumerate(all_names):
            for b, fb in enumerate(all_names):
                if fa in given and fb in given:
                    corr[a, b] = self.correlation[given[fa]][given[fb]]
            corr[a, a] = 1.0
        ranges = {
            f: (self.ranges[given[f]] if f in given else float(self.default_range or 0.0)) for f in all_names
        }
        return tuple(all_names), ranges, corr


@dataclass(frozen=True, slots=True, kw_only=True)
class AddOns:
    """Rates of the floor and each add-on; 0 switches one off (module docstring has formulas)."""

    min_delta_unhedged: float = 0.0
    min_delta_hedged: float = 0.0
    min_delta_by_underlying: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    annualised_move_risk: float = 0.0
    min_annualised_move: float = 0.0
    delta_contingency_rate: float = 0.0
    short_option_rate: float = 0.0
    concentration_coefficient: float = 0.0
    concentration_power: float = 0.5
    liquidity_usd: Mapping[str, float] = field(default_factory=dict)
    delta_half_spread_bps: float = 0.0
    vega_half_spread: float = 0.0
    funding_periods: float = 0.0
    fee_rate: float = 0.0
    option_fee_cap: float = 0.125
    stablecoins: tuple[str, ...] = ()
    depeg_move: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "min_delta_unhedged",
            "min_delta_hedged",
            "annualised_move_risk",
            "min_annualised_move",
            "delta_contingency_rate",
            "short_option_rate",
            "concentration_coefficient",
            "fee_rate",
            "option_fee_cap",
            "depeg_move",
            "vega_half_spread",
        ):
            check_range(getattr(self, name), low=0.0, high=1.0, name=f"addons.{name}")
        check_range(self.concentration_power, low=0.0, high=4.0, name="addons.concentration_power")
        check_range(self.funding_periods, low=0.0, high=100.0, name="addons.funding_periods")
        check_range(self.delta_half_spread_bps, low=0.0, high=10_000.0, name="addons.delta_half_spread_bps")
        for name, value in self.liquidity_usd.items():
            check_range(value, low=1e-9, high=np.inf, name=f"addons.liquidity_usd.{name}")
        for name, (unhedged, hedged) in self.min_delta_by_underlying.items():
            check_range(unhedged, low=0.0, high=1.0, name=f"addons.min_delta_by_underlying.{name}")
            check_range(hedged, low=0.0, high=1.0, name=f"addons.min_delta_by_underlying.{name}")

    def min_delta_rates(self, underlyings: tuple[str, ...]) -> tuple[FloatArray, FloatArray]:
        """(unhedged, hedged) min-delta rates per underlying, (U,) each."""
        default = (self.min_delta_unhedged, self.min_delta_hedged)
        pairs = [self.min_delta_by_underlying.get(u, default) for u in underlyings]
        return np.array([p[0] for p in pairs], dtype=np.float64), np.array(
            [p[1] for p in pairs], dtype=np.float64
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PortfolioParams:
    """A portfolio-margin methodology: scenarios, how they combine, floor and add-ons, MM fraction.

    combine "sum": one group per underlying, each on its own grid (`grids`, else `default_grid`),
    summed (Deribit PM per currency, SPAN per combined commodity). combine "joint": one group of
    correlated joint moves (`joint`) over all factors, so assets that move together net.
    """

    name: str = "portfolio"
    grids: Mapping[str, GridSpec] = field(default_factory=dict)
    default_grid: GridSpec | None = field(default_factory=lambda: GridSpec(price_range=0.15))
    combine: str = "sum"
    joint: JointSpec | None = None
    numeraire: str | None = None
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


def build_scenarios(book: Book, valuation: InstrumentValuation, params: PortfolioParams) -> ScenarioSet:
    """The methodology's scenario set for this book's instruments and factors."""
    factors = risk_factors(book)
    sets: list[ScenarioSet] = []
    if params.combine == "sum":
        for underlying in book.instruments.underlyings:  # concat numbers the groups
            spec = params.grids.get(underlying, params.default_grid)
            if spec is None:
                raise InputError("portfolio.grids", f"no grid for underlying {underlying!r} and no default")
            sets.append(
                underlying_grid(
                    book.instruments,
                    valuation,
                    factors=factors,
                    underlying=underlying,
                    spec=spec,
                    group=0,
                )
            )
    else:
        assert params.joint is not None
        sets.append(_joint_set(book, valuation, params.joint, factors))
    result = sets[0]
    for more in sets[1:]:
        result = result.concat(more)
    return result


def _joint_set(
    book: Book, valuation: InstrumentValuation, joint: JointSpec, factors: tuple[str, ...]
) -> ScenarioSet:
    known, ranges, corr = joint.for_underlyings(book.instruments.underlyings, factors)
    moves = joint_scenarios(book.instruments, factors=known, ranges=ranges, correlation=corr, group=0)
    years = valuation.years_to_expiry
    option = book.instruments.is_option
    vols = {"": np.zeros(book.instruments.n_instruments)}
    if joint.vol.up > 0.0:
        vols[", vol up"] = np.where(option, joint.vol.shift(years, valuation.implied_vol, direction=1.0), 0.0)
    if joint.vol.down > 0.0:
        vols[", vol down"] = np.where(
            option, joint.vol.shift(years, valuation.implied_vol, direction=-1.0), 0.0
        )
    cols = [factors.index(f) for f in known]
    n_moves = moves.n_scenarios
    price = np.ones((n_moves * len(vols), len(factors)))
    price[:, cols] = np.tile(moves.price_factor, (len(vols), 1))
    vol_rows = np.repeat(np.array(list(vols.values())), n_moves, axis=0)
    labels = [f"{label}{name}" for name in vols for label in moves.labels]
    weights = [1.0] * len(labels)
    caps = [np.inf] * len(labels)
    if joint.extreme_moves:
        extreme = np.ones((len(joint.extreme_moves), len(factors)))
        for row, move in enumerate(joint.extreme_moves):
            weight = joint.extreme_cover if joint.extreme_weights is None else joint.extreme_weights[row]
            extreme[row, cols] = 1.0 + move
            labels.append(f"joint all {move:+.0%}, extreme ({weight:.3g} of loss)")
            weights.append(weight)
            caps.append(np.inf if joint.extreme_delta_one_cap is None else joint.extreme_delta_one_cap)
        price = np.vstack([price, extreme])
        up = vols.get(", vol up", vols[""])
        vol_rows = np.vstack([vol_rows, np.repeat(up[None, :], len(joint.extreme_moves), axis=0)])
    return ScenarioSet(
        factors=factors,
        price_factor=price,
        vol_shift=vol_rows,
        weight=np.array(weights),
        group=np.zeros(len(labels), dtype=np.int64),
        labels=tuple(labels),
        delta_one_cap=np.array(caps),
    )


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
    """Per contract, (I,): what the floor and add-ons need from each instrument, plus the
    (underlying, expiry) roll bucket of each instrument and each bucket's roll-shock rate."""

    delta_notional_usd: FloatArray
    vega_usd: FloatArray
    short_option_notional_usd: FloatArray
    funding_payment_usd: FloatArray
    closing_fee_usd: FloatArray
    roll_bucket: IntArray
    roll_rate: FloatArray


def addon_inputs(
    book: Book, valuation: InstrumentValuation, market: MarketState, addons: AddOns
) -> InstrumentAddOnInputs:
    table = book.instruments
    option = table.is_option
    spot = valuation.spot_usd
    perp = table.kind == InstrumentKind.PERPETUAL
    # Funding: a long pays rate x notional per period when the rate is positive (zero-sum).
    funding = np.where(perp, valuation.notional_usd * market.funding_rate_8h * addons.funding_periods, 0.0)
    fee = addons.fee_rate * valuation.notional_usd
    fee = np.where(option, np.minimum(fee, addons.option_fee_cap * np.abs(valuation.unit_value_usd)), fee)
    # Roll buckets: one per (underlying, expiry); perpetuals and spot share the no-expiry bucket.
    buckets = book.risk_buckets
    expiry = buckets.expiry_ns
    years = np.where(expiry == NO_EXPIRY_NS, 0.0, (expiry - market.valuation_ns) / (365.0 * 86400e9))
    rate = np.maximum(addons.min_annualised_move, addons.annualised_move_risk * years)
    return InstrumentAddOnInputs(
        delta_notional_usd=valuation.delta_usd * spot,
        vega_usd=valuation.vega_usd,
        short_option_notional_usd=np.where(option, table.contract_size * spot, 0.0),
        funding_payment_usd=funding,
        closing_fee_usd=fee,
        roll_bucket=buckets.bucket,
        roll_rate=rate.astype(np.float64),
    )


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


@dataclass(frozen=True, slots=True)
class PortfolioMargin:
    """Portfolio margin under one methodology (`PortfolioParams`, see `presets`)."""

    params: PortfolioParams = field(default_factory=PortfolioParams)

    @property
    def name(self) -> str:
        return self.params.name

    def scenarios(self, book: Book, valuation: InstrumentValuation) -> ScenarioSet:
        return build_scenarios(book, valuation, self.params)

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
        base = cross_breakdown(book, valuation, OptionMarginParams(), rows)
        sub = book.select(rows)
        totals = self.totals(sub, market, valuation)
        # Each position's share of the account requirement: its loss in the account's worst scenario.
        scen = self.scenarios(sub, valuation)
        depeg = depeg_scenarios(sub, self.params.addons, scen.factors)
        full = scen if depeg is None else scen.concat(depeg)
        reval = revalue_scenarios(sub.instruments, sub.assets, market, valuation, full)
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

    def totals(self, book: Book, market: MarketState, valuation: InstrumentValuation) -> PortfolioTotals:
        scenarios = self.scenarios(book, valuation)
        addons = self.params.addons
        depeg = depeg_scenarios(book, addons, scenarios.factors)
        full = scenarios if depeg is None else scenarios.concat(depeg)
        reval = revalue_scenarios(book.instruments, book.assets, market, valuation, full)
        return portfolio_totals(
            book,
            market,
            valuation,
            full,
            reval,
            addons,
            n_grid_scenarios=scenarios.n_scenarios,
            numeraire=self.params.numeraire,
        )


def numeraire_factor(scenarios: ScenarioSet, numeraire: str | None) -> FloatArray:
    """The numeraire coin's price factor f per scenario (ones for USD), its move capped like every
    delta-one move of the row.

    In a coin numeraire an item worth V0 USD today and V0 + dV in a scenario changes by
    (V0 + dV)/(P·f) - V0/P coins = (dV - V0·(f - 1)) / f in coins, i.e. that many USD at today's
    coin price P: a balance of the coin itself carries no risk (Deribit S:PM margins each
    currency in that currency)."""
    if numeraire is None:
        return np.ones(scenarios.n_scenarios)
    column = scenarios.factor_index(numeraire)
    if column < 0:
        raise InputError("portfolio.numeraire", f"{numeraire!r} is not a risk factor of this book")
    cap = scenarios.caps
    factor: FloatArray = 1.0 + np.clip(scenarios.price_factor[:, column] - 1.0, -cap, cap)
    return factor


@dataclass(frozen=True, slots=True)
class KernelInputs:
    """Everything the per-account reduction reads besides the book's position runs and balances,
    packed so that a position touches one 64-byte row of `instrument_data` and one scenario row.

    instrument_data (I, 8), per contract: 0 delta notional, 1 vega, 2 hedged min-delta charge on
    gross delta (|delta notional|·hedged_u/2), 3 short-option charge (short_option_rate·cs·S), 4
    funding payment, 5 closing fee, 6 roll-shock rate of its (underlying, expiry) bucket, 7 floor
    rate on the underlying's |net delta| (unhedged_u - hedged_u/2). inverse_liquidity (I,):
    1/liquidity of its underlying when the concentration add-on applies there, else 0 (kept apart
    so the rows stay one cache line: the kernel's instrument data then fits in L2 beside the
    scenario rows).
    Scenario rows: instrument i's scenario P&L per contract, dA + dB, is
    row_scale[i]·scenario_rows[row_of[i]]. Each instrument moves through exactly one of the two
    coefficients (an inverse delta-one contract only through its entry coefficient, every other
    one only through its unit value), so a position's scenario P&L is one multiply-add row,
    pnl_weight·row_scale[i]·scenario_rows[row_of[i]] (pnl_weight = q/E for inverse delta-one, q
    otherwise: see core.position_runs). All delta-one contracts on an underlying share its move
    row (scale cs·mark or cs·spot); each option has its own row (scale 1). On the bench's 5,000
    instruments that is 1,918 rows instead of 5,000: 0.5 MB instead of 1.3 MB of rows, gathered
    at random, which then mostly stay in the 1 MB L2 cache.
    side_rows (I, 8): the floor and add-ons of a position alone in its underlying, per contract:
    lanes roll shock, delta contingency, short option, - (concentration: never alone, see
    core.position_runs), liquidity, funding, fee, floor (min delta). Alone in its underlying and
    bucket, |D_u| = |q|·|delta_i|, so each is a per-contract charge times |q|, except the short
    option charge (times the short quantity max(-q, 0)) and funding (times q): the lanes of
    core.simd's side stream (SIDE_SHORT_LANE, SIDE_SIGNED_LANE), one 64-byte row per instrument.
    general_underlyings: where the concentration add-on applies (positions there are always in
    the runs' general section).
    asset_pnl (K, S_pad): price_k·dF[k, s], the P&L of one haircut unit of asset k.
    S_pad = S rounded up to whole vector blocks (core.simd.LANES); the padding columns are zero and
    never read back. Scenario arrays: weight / f and offset (S_pad,), zero-padded like the
    matrices; f - 1 (numeraire) and group (S,). rates:
    delta contingency, short option, concentration coefficient and power, delta half spread, vega
    half spread, depeg move.
    """

    instrument_data: FloatArray
    inverse_liquidity: FloatArray
    side_rows: FloatArray
    general_underlyings: frozenset[str]
    scenario_rows: FloatArray
    row_of: npt.NDArray[np.int32]
    row_scale: FloatArray
    asset_pnl: FloatArray
    asset_price: FloatArray
    weight: FloatArray
    numeraire_move: FloatArray
    offset: FloatArray
    group: IntArray
    n_groups: int
    n_grid: int
    n_scenarios: int
    rates: FloatArray
    bookkeeping: bool
    use_numeraire: bool

    @property
    def kernel_arguments(self) -> tuple[Any, ...]:
        """The fields in the order `_kernel_body` and `_what_if` take them."""
        return (
            self.instrument_data,
            self.inverse_liquidity,
            self.side_rows,
            self.scenario_rows,
            self.row_of,
            self.row_scale,
            self.asset_pnl,
            self.asset_price,
            self.weight,
            self.numeraire_move,
            self.offset,
            self.group,
            self.n_groups,
            self.n_grid,
            self.n_scenarios,
            self.rates,
            self.bookkeeping,
            self.use_numeraire,
        )


INSTRUMENT_COLUMNS = 8  # one 64-byte row per instrument
_FLOOR_LANE = 7  # of the side rows and the per-account add-on sums (the depeg column's slot)


def _padded(matrix: FloatArray) -> FloatArray:
    """Columns zero-padded to a whole number of vector blocks, C order."""
    rows, cols = matrix.shape
    width = max(LANES, -(-cols // LANES) * LANES)
    out = np.zeros((rows, width))
    out[:, :cols] = matrix
    return out


def _scenario_rows(
    table: InstrumentTable, reval: ScenarioRevaluation
) -> tuple[FloatArray, npt.NDArray[np.int32], FloatArray]:
    """(rows (R, S_pad), row_of (I,), row_scale (I,)): see KernelInputs. Without the factored
    delta-one form (a hand-built revaluation), every instrument keeps its own row. With it,
    delta-one rows are scale x underlying move by construction (`revalue_scenarios`; a test
    checks every row bit for bit), so only the option rows are read from the matrices."""
    n = table.n_instruments
    if reval.underlying_move is None or reval.delta_one_scale_usd is None:
        return (
            _padded(reval.d_unit_value_usd + reval.d_entry_coefficient_usd),
            np.arange(n, dtype=np.int32),
            np.ones(n),
        )
    move = reval.underlying_move
    option = table.is_option
    options = np.flatnonzero(option)
    n_under = move.shape[0]
    option_rank = np.cumsum(option) - 1
    row_of = np.where(option, n_under + option_rank, table.underlying_index).astype(np.int32)
    row_scale = np.where(option, 1.0, reval.delta_one_scale_usd)
    option_rows = reval.d_unit_value_usd[options] + reval.d_entry_coefficient_usd[options]
    return _padded(np.vstack([move, option_rows])), row_of, row_scale


def _side_rows(instrument_data: FloatArray, unhedged: FloatArray, addons: AddOns) -> FloatArray:
    """(I, 8): see KernelInputs. Per contract: the charges per |q|, the short-option charge per
    short contract and the funding payment per signed contract."""
    delta = np.abs(instrument_data[:, 0])
    rows = np.zeros((instrument_data.shape[0], LANES))
    rows[:, 0] = delta * instrument_data[:, 6]
    rows[:, 1] = addons.delta_contingency_rate * delta
    rows[:, SIDE_SHORT_LANE] = instrument_data[:, 3]
    rows[:, 4] = addons.delta_half_spread_bps * 1e-4 * delta + addons.vega_half_spread * np.abs(
        instrument_data[:, 1]
    )
    rows[:, SIDE_SIGNED_LANE] = instrument_data[:, 4]  # funding: q x payment, either side
    rows[:, 6] = instrument_data[:, 5]
    rows[:, _FLOOR_LANE] = unhedged * delta  # unhedged·|D_u| + hedged·(G_u - |D_u|)/2, G_u = |D_u|
    return rows


def kernel_inputs(
    book: Book,
    market: MarketState,
    valuation: InstrumentValuation,
    scenarios: ScenarioSet,
    reval: ScenarioRevaluation,
    addons: AddOns,
    *,
    n_grid_scenarios: int,
    numeraire: str | None,
) -> KernelInputs:
    table = book.instruments
    inputs = addon_inputs(book, valuation, market, addons)
    reciprocal = table.reciprocal_entry
    # The invariant the single-row form rests on (see the class docstring).
    check_all(~np.any(reval.d_unit_value_usd[reciprocal] != 0.0), "inverse delta-one: no unit-value move")
    check_all(~np.any(reval.d_entry_coefficient_usd[~reciprocal] != 0.0), "only inverse delta-one move dB")
    underlying = table.underlying_index
    liquidity = np.array([addons.liquidity_usd.get(u, 0.0) for u in table.underlyings], dtype=np.float64)
    unhedged, hedged = addons.min_delta_rates(table.underlyings)
    concentration_on = (liquidity > 0.0) & (addons.concentration_coefficient > 0.0)
    inverse_liquidity = np.where(concentration_on, 1.0 / np.where(liquidity > 0.0, liquidity, 1.0), 0.0)
    instrument_data = np.zeros((table.n_instruments, INSTRUMENT_COLUMNS))
    instrument_data[:, 0] = inputs.delta_notional_usd
    instrument_data[:, 1] = inputs.vega_usd
    instrument_data[:, 2] = np.abs(inputs.delta_notional_usd) * 0.5 * hedged[underlying]
    instrument_data[:, 3] = addons.short_option_rate * inputs.short_option_notional_usd
    instrument_data[:, 4] = inputs.funding_payment_usd
    instrument_data[:, 5] = inputs.closing_fee_usd
    instrument_data[:, 6] = inputs.roll_rate[inputs.roll_bucket]
    instrument_data[:, 7] = (unhedged - 0.5 * hedged)[underlying]
    side_rows = _side_rows(instrument_data, unhedged[underlying], addons)
    rates = np.array(
        [
            addons.delta_contingency_rate,
            addons.short_option_rate,
            addons.concentration_coefficient,
            addons.concentration_power,
            addons.delta_half_spread_bps * 1e-4,
            addons.vega_half_spread,
            addons.depeg_move,
        ]
    )
    bookkeeping = bool(
        addons.delta_contingency_rate
        or addons.short_option_rate
        or np.any(concentration_on)
        or addons.delta_half_spread_bps
        or addons.vega_half_spread
        or np.any(unhedged)
        or np.any(hedged)
        or np.any(inputs.roll_rate)
        or np.any(inputs.funding_payment_usd)
        or np.any(inputs.closing_fee_usd)
    )
    factor = numeraire_factor(scenarios, numeraire)
    price = book.assets.price_usd
    rows, row_of, row_scale = _scenario_rows(table, reval)
    return KernelInputs(
        instrument_data=instrument_data,
        inverse_liquidity=inverse_liquidity[underlying],
        side_rows=side_rows,
        general_underlyings=frozenset(
            u for u, on in zip(table.underlyings, concentration_on, strict=True) if on
        ),
        scenario_rows=rows,
        row_of=row_of,
        row_scale=row_scale,
        asset_pnl=_padded(price[:, None] * reval.d_asset_factor),
        asset_price=price,
        weight=_padded((scenarios.weight / factor)[None, :])[0],
        numeraire_move=factor - 1.0,
        offset=_padded(scenarios.offsets[None, :])[0],
        group=scenarios.group,
        n_groups=int(scenarios.group[:n_grid_scenarios].max()) + 1 if n_grid_scenarios else 0,
        n_grid=n_grid_scenarios,
        n_scenarios=scenarios.n_scenarios,
        rates=rates,
        bookkeeping=bookkeeping,
        use_numeraire=numeraire is not None,
    )


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
            general_sums[g, _FLOOR_LANE] = floor
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
            out_min_delta[a] = acc[_FLOOR_LANE]
            for j in range(_FLOOR_LANE):
                out_addons[a, j] = acc[j]
            out_addons[a, 5] = max(acc[5], 0.0)  # funding: a net receipt is no provision
            out_addons[a, 7] = depeg


_portfolio_kernel = numba.njit(parallel=True, cache=True, nogil=True)(_kernel_body)
# Not cached: two on-disk caches of one Python function collide (measured 2.9 ms per call).
_serial_kernel: Any = numba.njit(parallel=False, cache=False, nogil=True)(_kernel_body)


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
    out[4] = addons[0, _FUNDING_COLUMN] + addons[0, _FEE_COLUMN]  # the provisions


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
    items = item_scenario_pnl(sub, 0, valuation, reval)
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
