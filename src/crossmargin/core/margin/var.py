"""Risk-based margin from real history: VaR or Expected Shortfall of each account's P&L over a
scenario set drawn from history (historical, filtered historical or Monte Carlo), on the same
revaluation path as portfolio margin (positions fully repriced, collateral moving with its asset).

    L_s       = -PnL_s over the S scenarios of one group (current window; optional stressed window)
    measure_g = VaR_α or ES_α of group g's losses            (core/var/measures.py: k = ⌈(1-α)·S_g⌉)
    IM        = max(0, max_g weight_g · measure_g),          MM = maintenance_fraction · IM

The stressed group is an anti-procyclical floor: the requirement never falls below `stress_weight`
times the measure over a fixed stressed window. Accounts without positions need no margin (the
haircuts price collateral's own risk, as under cross margin).

Prices are known at the end of their UTC day: an evaluation at valuation_ns uses closes up to
`known_until(valuation_ns)` only, so a back-test never looks ahead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from crossmargin.core.book import Book
from crossmargin.core.checks import check_all, check_instance, check_range
from crossmargin.core.margin.cross import cross_breakdown
from crossmargin.core.margin.options_rule import OptionMarginParams
from crossmargin.core.margin.portfolio import risk_factors
from crossmargin.core.margin.requirements import balance_values_usd, risk_based_result
from crossmargin.core.margin.result import Breakdown, MarginResult, allocate_requirement
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import InstrumentValuation, revalue
from crossmargin.core.scenarios import ScenarioRevaluation, ScenarioSet, item_scenario_pnl, revalue_scenarios
from crossmargin.core.var.generators import (
    EWMA_DECAY,
    Moves,
    ewma_volatility,
    filtered_moves,
    historical_moves,
    monte_carlo_moves,
    var_scenario_set,
)
from crossmargin.core.var.history import PriceHistory, check_confidence, known_until
from crossmargin.core.var.measures import TailMeasures, book_tail_measures, tail_count, tail_scenarios
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

METHODS = ("historical", "filtered", "monte-carlo")
MEASURES = ("var", "es")
FILTERS = ("ewma", "garch")
FILTER_WARMUP_DAYS = 250  # returns before the window that only warm the volatility filter up
MIN_SCENARIOS = 20

VolatilityFilter = Callable[[FloatArray], FloatArray]
"""daily log returns (T, F) -> volatility forecasts (T+1, F); row T is tomorrow's (see
`core.var.generators.ewma_volatility`; GARCH(1,1) lives in `adapters.volatility`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class VarParams:
    """One VaR/ES methodology. window_days: daily returns in the current window; horizon_days:
    the margin period of risk h (overlapping h-day moves); stress_*: the floor window and weight."""

    name: str = "var"
    method: str = "historical"
    measure: str = "es"
    confidence: float = 0.975
    horizon_days: int = 2
    window_days: int = 730
    volatility_filter: str = "ewma"
    ewma_decay: float = EWMA_DECAY
    n_draws: int = 2000
    copula: str = "student"
    copula_dof: float = 4.0
    marginal_dof: float = 4.0
    seed: int = 20_200_312
    stress_first_day: str | None = None
    stress_last_day: str | None = None
    stress_weight: float = 1.0
    maintenance_fraction: float = 0.8
    fixed_factors: tuple[str, ...] = ("USD",)
    source: str = ""
    # How far the window's last close may lie before the last close known at valuation: beyond
    # `warn_history_gap_days` the report says the window is stale, beyond `max_history_gap_days`
    # the model refuses (`HistoryWindow`). A year by default: the shared data ends 2025-02-11 and
    # the example book is valued 2025-12-30 (a 321-day gap, warned about); older than a year is
    # another market regime, not a risk estimate for today.
    warn_history_gap_days: int = 7
    max_history_gap_days: int = 366

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InputError("var.method", f"must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.measure not in MEASURES:
            raise InputError("var.measure", f"must be 'var' or 'es', got {self.measure!r}")
        if self.volatility_filter not in FILTERS:
            raise InputError(
                "var.volatility_filter", f"must be 'ewma' or 'garch', got {self.volatility_filter!r}"
            )
        check_confidence(self.confidence, "var.confidence")
        check_range(self.horizon_days, low=1, high=30, name="var.horizon_days")
        check_range(self.window_days, low=MIN_SCENARIOS, high=10_000, name="var.window_days")
        check_range(self.stress_weight, low=0.0, high=1.0, name="var.stress_weight")
        check_range(self.maintenance_fraction, low=0.0, high=1.0, name="var.maintenance_fraction")
        check_range(self.max_history_gap_days, low=0, high=100_000, name="var.max_history_gap_days")
        check_range(
            self.warn_history_gap_days,
            low=0,
            high=self.max_history_gap_days,
            name="var.warn_history_gap_days",
        )
        if (self.stress_first_day is None) != (self.stress_last_day is None):
            raise InputError("var.stress", "give both stress_first_day and stress_last_day, or neither")

    @property
    def label(self) -> str:
        level = f"{self.confidence * 100:g}%"
        return f"{self.measure.upper()} {level}, {self.horizon_days}-day, {self.method}"


def var_presets() -> dict[str, Callable[[], VarParams]]:
    """Named methodologies: hs-var99, hs-var995, hs-es975, fhs-es975, fhs-garch-es975, mc-es975,
    mc-gaussian-es975, fhs-es975-floor. Confidence levels after Basel FRTB (ES 97.5 % ≈ VaR 99 %
    under normality) and CCP practice (VaR 99-99.7 %, 2-day MPOR for crypto-style daily margining)."""
    hs = "historical simulation, last 730 days, 2-day overlapping moves"
    floor = ("2022-05-01", "2022-12-31")  # Luna/UST, 3AC, FTX: every major is listed by then
    return {
        "hs-var99": lambda: VarParams(name="hs-var99", measure="var", confidence=0.99, source=hs),
        "hs-var995": lambda: VarParams(name="hs-var995", measure="var", confidence=0.995, source=hs),
        "hs-es975": lambda: VarParams(name="hs-es975", measure="es", confidence=0.975, source=hs),
        "fhs-es975": lambda: VarParams(
            name="fhs-es975",
            method="filtered",
            source="filtered HS (EWMA λ = 0.94), last 730 days",
        ),
        "fhs-garch-es975": lambda: VarParams(
            name="fhs-garch-es975",
            method="filtered",
            volatility_filter="garch",
            source="filtered HS (GARCH(1,1) per factor, arch), last 730 days",
        ),
        "mc-es975": lambda: VarParams(
            name="mc-es975",
            method="monte-carlo",
            source="Monte Carlo, Student-t copula (ν = 4), t(4) marginals at EWMA vol, 2,000 draws",
        ),
        "mc-gaussian-es975": lambda: VarParams(
            name="mc-gaussian-es975",
            method="monte-carlo",
            copula="gaussian",
            source="Monte Carlo, Gaussian copula, t(4) marginals at EWMA vol, 2,000 draws",
        ),
        "fhs-es975-floor": lambda: VarParams(
            name="fhs-es975-floor",
            method="filtered",
            stress_first_day=floor[0],
            stress_last_day=floor[1],
            stress_weight=0.75,
            source="filtered HS ES 97.5 % floored at 75 % of HS ES over 2022-05..2022-12",
        ),
    }


VAR_PRESETS: Mapping[str, Callable[[], VarParams]] = var_presets()


def var_preset(name: str) -> VarParams:
    try:
        return VAR_PRESETS[name]()
    except KeyError:
        choices = ", ".join(VAR_PRESETS)
        raise InputError("preset", f"unknown VaR preset {name!r}; choose one of {choices}") from None


def _complete_returns(history: PriceHistory) -> tuple[FloatArray, npt.NDArray[np.datetime64]]:
    """Daily log returns with every factor present, and each return's day."""
    daily = history.log_returns()
    days = history.days[1:]
    keep = np.all(np.isfinite(daily), axis=1)
    return daily[keep], days[keep]


@dataclass(frozen=True, slots=True)
class HistoryWindow:
    """How current the window is at a valuation: `last_day` the last close of every moving factor
    in the history, `known_day` the last close known at the valuation time (`known_until`),
    `gap_days` the days between them (0: the window is as current as it can be)."""

    factors: tuple[str, ...]
    last_day: np.datetime64
    known_day: np.datetime64
    gap_days: int
    warn_days: int
    limit_days: int

    @property
    def stale(self) -> bool:
        return self.gap_days > self.warn_days


@dataclass(frozen=True, slots=True)
class VarMargin:
    """VaR/ES margin (module docstring) over `history` (every day, all symbols; each evaluation
    cuts it at its valuation day). `volatility` overrides the EWMA filter (e.g. GARCH)."""

    params: VarParams
    history: PriceHistory
    volatility: VolatilityFilter | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        check_instance(self.params, VarParams, "params")
        check_instance(self.history, PriceHistory, "history")

    @property
    def name(self) -> str:
        return self.params.name

    def moving_factors(self, book: Book) -> tuple[tuple[str, ...], tuple[str, ...]]:
        factors = risk_factors(book)
        return factors, tuple(f for f in factors if f not in self.params.fixed_factors)

    def _volatility(self, daily: FloatArray) -> FloatArray:
        if self.params.volatility_filter == "garch":
            if self.volatility is None:
                raise InputError(
                    "var.volatility_filter", "garch needs a GARCH filter (crossmargin.adapters.volatility)"
                )
            return self.volatility(daily)
        if self.volatility is not None:
            return self.volatility(daily)
        return ewma_volatility(daily, decay=self.params.ewma_decay)

    def history_window(self, moving: Sequence[str], valuation_ns: int) -> HistoryWindow:
        """How stale the window is at `valuation_ns` (HistoryWindow); InputError naming
        var.max_history_gap_days when the gap is beyond it."""
        p = self.params
        known_day = known_until(valuation_ns)
        known = self.history.select(moving).until(known_day)
        complete = np.flatnonzero(np.all(np.isfinite(known.close_usd), axis=1))
        if complete.size == 0:
            raise InputError(
                "var.history", f"no day with closes of all of {', '.join(moving)} up to {known_day}"
            )
        last_day = known.days[int(complete[-1])]
        gap = int((known_day - last_day) // np.timedelta64(1, "D"))
        window = HistoryWindow(
            factors=tuple(moving),
            last_day=last_day,
            known_day=known_day,
            gap_days=gap,
            warn_days=p.warn_history_gap_days,
            limit_days=p.max_history_gap_days,
        )
        if gap > p.max_history_gap_days:
            raise InputError(
                "var.max_history_gap_days",
                f"the price history of {', '.join(moving)} ends {last_day}, {gap} days before the last "
                f"close known at the valuation time ({known_day}); the limit is {p.max_history_gap_days} "
                "days: bring a newer history (CROSSMARGIN_DATA) or raise the limit",
            )
        return window

    def current_moves(self, moving: Sequence[str], valuation_ns: int) -> Moves:
        """The current window's h-day moves, known at valuation_ns (refused when the history ends
        more than `max_history_gap_days` before it: `history_window`)."""
        p = self.params
        last = known_until(valuation_ns)
        self.history_window(moving, valuation_ns)
        known = self.history.select(moving).until(last)
        warmup = 0 if p.method == "historical" else FILTER_WARMUP_DAYS
        daily, days = _complete_returns(known.last_days(p.window_days + warmup + 1))
        if daily.shape[0] < max(p.window_days // 2, MIN_SCENARIOS + p.horizon_days):
            raise InputError(
                "var.history",
                f"only {daily.shape[0]} days of joint returns of {', '.join(moving)} up to {last}",
            )
        if p.method == "historical":
            moves = historical_moves(daily, days, horizon_days=p.horizon_days)
        else:
            vol = self._volatility(daily)
            start = max(daily.shape[0] - p.window_days, 0)
            if p.method == "filtered":
                # The filter ran over the warm-up too; the scenarios use the window only.
                moves = filtered_moves(daily[start:], days[start:], vol[start:], horizon_days=p.horizon_days)
            else:
                moves = monte_carlo_moves(
                    daily[start:],
                    vol[start:],
                    horizon_days=p.horizon_days,
                    n_draws=p.n_draws,
                    rng=np.random.default_rng(p.seed),
                    copula=p.copula,
                    copula_dof=p.copula_dof,
                    marginal_dof=p.marginal_dof,
                )
        return moves

    def stressed_moves(self, moving: Sequence[str]) -> Moves | None:
        p = self.params
        if p.stress_first_day is None or p.stress_last_day is None:
            return None
        window = self.history.select(moving).between(p.stress_first_day, p.stress_last_day)
        daily, days = _complete_returns(window)
        if daily.shape[0] < p.horizon_days:
            raise InputError(
                "var.stress",
                f"no joint history of {', '.join(moving)} in {p.stress_first_day}..{p.stress_last_day}",
            )
        return historical_moves(daily, days, horizon_days=p.horizon_days, tag="stressed")

    def scenarios(self, book: Book, market: MarketState) -> ScenarioSet:
        """Group 0: the current window (weight 1); group 1: the stressed window (stress_weight)."""
        factors, moving = self.moving_factors(book)
        n = book.instruments.n_instruments
        current = var_scenario_set(
            self.current_moves(moving, market.valuation_ns), factors=factors, moving=moving, n_instruments=n
        )
        stressed = self.stressed_moves(moving)
        if stressed is None or self.params.stress_weight <= 0.0:
            return current
        floor = var_scenario_set(
            stressed, factors=factors, moving=moving, n_instruments=n, weight=self.params.stress_weight
        )
        return current.concat(floor)

    def tail_counts(self, scenarios: ScenarioSet) -> IntArray:
        sizes = np.bincount(scenarios.group, minlength=scenarios.n_groups)
        return np.array([tail_count(self.params.confidence, int(s)) for s in sizes], dtype=np.int64)

    def group_weights(self, scenarios: ScenarioSet) -> FloatArray:
        weights = np.ones(scenarios.n_groups)
        for g in range(scenarios.n_groups):  # one or two groups
            weights[g] = scenarios.weight[np.flatnonzero(scenarios.group == g)[0]]
        return weights

    def measures(
        self,
        book: Book,
        market: MarketState,
        valuation: InstrumentValuation,
        *,
        dtype: type[np.floating] = np.float64,
    ) -> tuple[ScenarioSet, TailMeasures]:
        """Scenario set and per-account, per-group VaR and ES (unweighted)."""
        scenarios = self.scenarios(book, market)
        reval = revalue_scenarios(book.instruments, book.assets, market, valuation, scenarios)
        return scenarios, tail_measures(
            book,
            reval,
            scenarios.group,
            self.tail_counts(scenarios),
            asset_price_usd=market.asset_prices(book.assets),
            dtype=dtype,
        )

    def requirement(self, scenarios: ScenarioSet, tails: TailMeasures) -> FloatArray:
        chosen = tails.es_usd if self.params.measure == "es" else tails.var_usd
        weighted = chosen * self.group_weights(scenarios)[None, :]
        initial: FloatArray = np.maximum(weighted.max(axis=1), 0.0)
        return initial

    def evaluate(
        self, book: Book, market: MarketState, valuation: InstrumentValuation | None = None
    ) -> MarginResult:
        valuation = valuation if valuation is not None else revalue(book.instruments, market)
        scenarios, tails = self.measures(book, market, valuation)
        initial = self.requirement(scenarios, tails)
        return risk_based_result(
            self.name,
            book,
            market,
            valuation,
            initial_margin_usd=initial,
            maintenance_margin_usd=self.params.maintenance_fraction * initial,
        )

    def breakdown(
        self,
        book: Book,
        market: MarketState,
        account_rows: Sequence[int],
        valuation: InstrumentValuation | None = None,
    ) -> Breakdown:
        """Each account's requirement split over its positions pro rata to their positive
        component (Euler) contributions to the binding measure (see `explain_var_account`)."""
        valuation = valuation if valuation is not None else revalue(book.instruments, market)
        rows = np.asarray(account_rows, dtype=np.int64)
        base = cross_breakdown(book, market, valuation, OptionMarginParams(), rows)
        counts = np.diff(book.positions.indptr)[rows]
        weights: list[FloatArray] = []
        initial = np.zeros(rows.size)
        for n, row in enumerate(rows.tolist()):  # on demand, for the accounts a report shows
            e = explain_var_account(self, book, market, row, valuation)
            weights.append(e.position_component_usd)
            initial[n] = e.initial_margin_usd
        return allocate_requirement(
            base,
            positions_per_account=counts,
            initial_margin_usd=initial,
            maintenance_margin_usd=self.params.maintenance_fraction * initial,
            weight=np.concatenate(weights) if weights else np.zeros(0),
        )


def tail_measures(
    book: Book,
    reval: ScenarioRevaluation,
    group: IntArray,
    tail_counts: IntArray,
    *,
    asset_price_usd: FloatArray,
    dtype: type[np.floating] = np.float64,
    select: bool = True,
) -> TailMeasures:
    """The blockwise kernel over a whole book (float64, or float32 rounded conservatively);
    asset_price_usd (K,) today's collateral prices. `select=False`: the P&L sums alone
    (`book_tail_measures`; a benchmark's floor, not a risk measure)."""
    inst = book.positions.indices
    term = book.entry_term  # book-static, computed once per book
    collateral = balance_values_usd(book, asset_price_usd)
    return book_tail_measures(
        indptr=book.positions.indptr.astype(np.int64, copy=False),
        indices=inst,
        quantity=book.positions.data,
        entry_term=term,
        d_unit=reval.d_unit_value_usd.astype(dtype, copy=False),
        d_coef=reval.d_entry_coefficient_usd.astype(dtype, copy=False),
        has_coefficient=np.any(reval.d_entry_coefficient_usd != 0.0, axis=1),
        collateral_usd=collateral.astype(dtype, copy=False),
        d_asset=reval.d_asset_factor.astype(dtype, copy=False),
        group=group,
        tail_counts=tail_counts,
        select=select,
    )


@dataclass(frozen=True, slots=True)
class VarExplanation:
    """Why one account needs what it needs (dense, on demand).

    position_pnl_usd (P, S) and collateral_pnl_usd (K, S): each item's P&L in every scenario.
    binding_group: the group whose weighted measure is the requirement; tail (k,): its k worst
    scenarios, worst first. Components (Euler allocation of ES for the empirical distribution,
    Tasche 2000): c_j = weight · (1/k)·Σ_{s in tail} -PnL_{j,s}, so Σ positions + Σ collateral =
    weight · ES exactly; var components are each item's loss in the VaR scenario (the k-th worst).
    """

    account_row: int
    scenarios: ScenarioSet
    position_instrument: IntArray
    quantity: FloatArray
    position_pnl_usd: FloatArray
    collateral_pnl_usd: FloatArray
    binding_group: int
    group_weight: float
    tail: IntArray
    var_usd: float
    es_usd: float
    per_group_var_usd: FloatArray
    per_group_es_usd: FloatArray
    position_component_usd: FloatArray
    collateral_component_usd: FloatArray
    initial_margin_usd: float
    maintenance_margin_usd: float


def explain_var_account(
    model: VarMargin,
    book: Book,
    market: MarketState,
    account_row: int,
    valuation: InstrumentValuation | None = None,
) -> VarExplanation:
    """Recompute one account densely: every position's and asset's P&L in every scenario, the
    tail of the binding group, and each item's component of the measure."""
    valuation = valuation if valuation is not None else revalue(book.instruments, market)
    sub = book.select([account_row])
    scenarios = model.scenarios(sub, market)
    reval = revalue_scenarios(sub.instruments, sub.assets, market, valuation, scenarios)
    items = item_scenario_pnl(sub, 0, valuation, reval, market.asset_prices(sub.assets))
    inst, qty = items.instrument_index, items.quantity
    position_pnl, collateral_pnl = items.position_pnl_usd, items.collateral_pnl_usd
    loss = -(position_pnl.sum(axis=0) + collateral_pnl.sum(axis=0))
    weights = model.group_weights(scenarios)
    n_groups = scenarios.n_groups
    per_var = np.zeros(n_groups)
    per_es = np.zeros(n_groups)
    tails: list[IntArray] = []
    for g in range(n_groups):  # one or two groups
        rows = np.flatnonzero(scenarios.group == g)
        tail = rows[tail_scenarios(loss[rows], model.params.confidence)]
        tails.append(tail)
        per_var[g] = loss[tail[-1]]
        per_es[g] = loss[tail].mean()
    chosen = per_es if model.params.measure == "es" else per_var
    binding = int(np.argmax(chosen * weights))
    tail = tails[binding]
    w = float(weights[binding])
    if model.params.measure == "es":
        position_component = -w * position_pnl[:, tail].mean(axis=1)
        collateral_component = -w * collateral_pnl[:, tail].mean(axis=1)
    else:
        position_component = -w * position_pnl[:, tail[-1]]
        collateral_component = -w * collateral_pnl[:, tail[-1]]
    has_positions = inst.size > 0
    initial = max(float(w * chosen[binding]), 0.0) if has_positions else 0.0
    total = float(position_component.sum() + collateral_component.sum())
    check_all(
        abs(total - w * chosen[binding]) <= 1e-6 * max(1.0, abs(total)), "components sum to the measure"
    )
    return VarExplanation(
        account_row=account_row,
        scenarios=scenarios,
        position_instrument=inst,
        quantity=qty,
        position_pnl_usd=position_pnl,
        collateral_pnl_usd=collateral_pnl,
        binding_group=binding,
        group_weight=w,
        tail=tail,
        var_usd=float(per_var[binding]),
        es_usd=float(per_es[binding]),
        per_group_var_usd=per_var,
        per_group_es_usd=per_es,
        position_component_usd=position_component,
        collateral_component_usd=collateral_component,
        initial_margin_usd=initial,
        maintenance_margin_usd=model.params.maintenance_fraction * initial,
    )


def with_params(model: VarMargin, **changes: object) -> VarMargin:
    """The same model with some parameters changed (e.g. confidence for a VaR/ES ladder)."""
    return VarMargin(dataclasses.replace(model.params, **changes), model.history, model.volatility)  # type: ignore[arg-type]
