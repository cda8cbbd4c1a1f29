"""Price impact of liquidation flow: the square-root law, or a depth curve.

Square-root law (Almgren, Thum, Hauptmann & Li 2005, "Direct estimation of equity market impact",
Risk 18(7); Bouchaud, Bonart, Donier & Gould 2018, "Trades, Quotes and Prices", ch. 12; Tóth et
al. 2011, https://arxiv.org/abs/1105.1694):

    ΔP/P = −sign(Q) · Y · σ_daily · √(|Q| / V_daily)

Q is the net signed flow into the market since the shock (sells negative) and V the daily traded
volume times a depth multiplier (0.1 = depth down 90 %), both quantities of the asset expressed in
USD at today's (pre-shock) price, so Q/V is the ratio of quantities the law is about; σ is the
daily volatility (a fraction), Y a constant of order one. The law is for a metaorder's total size,
so the cascade applies it to the cumulative flow: the price after round r is the shocked price times
impact_factor(Q_1 + ... + Q_r). A depth curve, when given for a factor, replaces the law by a
piecewise-linear |ΔP/P| at the cumulative |Q| (np.interp, flat beyond its last point).

Prices never fall below `MIN_PRICE_FACTOR` of the shocked price (a factor must stay > 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from crossmargin.core.checks import check_finite, check_range
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]

MIN_PRICE_FACTOR = 0.01  # impact alone never takes a price below 1 % of its shocked level


@dataclass(frozen=True, slots=True, kw_only=True)
class DepthCurve:
    """|ΔP/P| (fraction) reached after a cumulative flow of `notional_usd` (both increasing from 0)."""

    notional_usd: tuple[float, ...]
    impact_fraction: tuple[float, ...]

    def __post_init__(self) -> None:
        q = np.asarray(self.notional_usd, dtype=np.float64)
        m = np.asarray(self.impact_fraction, dtype=np.float64)
        if q.size < 2 or q.shape != m.shape:
            raise InputError("depth_curve", "needs two or more (notional_usd, impact_fraction) points")
        check_finite(q, "depth_curve.notional_usd")
        check_finite(m, "depth_curve.impact_fraction")
        if q[0] != 0.0 or m[0] != 0.0 or np.any(np.diff(q) <= 0.0) or np.any(np.diff(m) < 0.0):
            raise InputError(
                "depth_curve", "must start at (0, 0), notional strictly increasing, impact non-decreasing"
            )

    def impact(self, flow_usd: float) -> float:
        return float(np.interp(abs(flow_usd), self.notional_usd, self.impact_fraction))


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketDepth:
    """One factor's liquidity: daily volume (USD) and daily volatility (fraction); or a curve."""

    daily_volume_usd: float
    daily_volatility: float
    curve: DepthCurve | None = None

    def __post_init__(self) -> None:
        if not self.daily_volume_usd > 0.0:
            raise InputError("depth.daily_volume_usd", f"must be > 0, got {self.daily_volume_usd!r}")
        check_range(self.daily_volatility, low=0.0, high=5.0, name="depth.daily_volatility")


@dataclass(frozen=True, slots=True, kw_only=True)
class SquareRootImpact:
    """Impact per factor (symbol -> MarketDepth); factors not named have no impact.

    `y_coefficient`: Y of the law (≈ 0.5–1 in the studies above); `depth_multiplier` scales every
    daily volume (0.1: depth down 90 %)."""

    depth: Mapping[str, MarketDepth] = field(default_factory=dict)
    y_coefficient: float = 1.0
    depth_multiplier: float = 1.0

    def __post_init__(self) -> None:
        check_range(self.y_coefficient, low=0.0, high=100.0, name="impact.y_coefficient")
        if not self.depth_multiplier > 0.0:
            raise InputError("impact.depth_multiplier", f"must be > 0, got {self.depth_multiplier!r}")

    def factor(self, factors: Sequence[str], cumulative_flow_usd: FloatArray) -> FloatArray:
        """Price factor (F,) after the cumulative net flow (F,) USD (sells < 0) on each factor."""
        flow = np.asarray(cumulative_flow_usd, dtype=np.float64)
        if flow.shape != (len(factors),):
            raise InputError("impact.flow", f"one flow per factor, {len(factors)}")
        check_finite(flow, "impact.flow")
        move = np.zeros(flow.size)
        for n, symbol in enumerate(factors):  # F factors, a handful: not a hot path
            depth = self.depth.get(symbol)
            if depth is None or flow[n] == 0.0:
                continue
            if depth.curve is not None:
                size = depth.curve.impact(flow[n] / self.depth_multiplier)
            else:
                volume = depth.daily_volume_usd * self.depth_multiplier
                size = self.y_coefficient * depth.daily_volatility * float(np.sqrt(abs(flow[n]) / volume))
            move[n] = np.copysign(size, flow[n])
        factor: FloatArray = np.maximum(1.0 + move, MIN_PRICE_FACTOR)
        return factor


NO_IMPACT = SquareRootImpact()
