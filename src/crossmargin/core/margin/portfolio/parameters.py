"""A portfolio-margin methodology as values: scenario grids or joint moves, the floor and add-on
rates, the maintenance fraction (formulas in the package docstring)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from crossmargin.core.checks import check_range
from crossmargin.core.scenarios import GridSpec, VolShock
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]


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
