"""Volatility-adjusted collateral haircuts, bounded, with hysteresis so they do not flap.

A haircut h is the fall of the collateral's price the venue covers over the time it needs to sell
it (horizon h_d days) at a confidence q, from the asset's daily volatility σ (EWMA of history,
or implied vol where the data has it) and a multiplier k (z_q under normality, or fitted to the
history's standardised losses: filtered historical simulation):

    target  h*_t = clip(1 - exp(-k · σ_t · √h_d), floor, cap)       non-decreasing in σ and k

(a lognormal price: P_{t+h}/P_t = exp(R), the loss quantile is 1 - exp(-k σ √h)). Published
haircut schedules scale the same way with volatility (ECB, "The financial risk management of the
Eurosystem's monetary policy operations", 2015, §4: haircuts from the asset's return
distribution over the liquidation period; CPMI-IOSCO PFMI, Principle 5 and KC 5.3: haircuts
calibrated to stressed conditions, reviewed regularly, limiting procyclical changes).

Hysteresis (a dead band): the haircut in force moves to the target only when the target has moved
more than `band` away from it; otherwise it stays.

    h_0 = h*_0;   h_t = h*_t if |h*_t - h_{t-1}| > band else h_{t-1}

So h_t is always a target value (within [floor, cap]) and never further than `band` from today's
target; it changes only on a day the target left the band (tests/property/test_haircut_rule.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.stats import norm

from crossmargin.core.assets import AssetTable
from crossmargin.core.checks import check_range
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, kw_only=True)
class VolHaircutParams:
    """confidence q and horizon (days) of the covered fall; multiplier k (None: z_q, the normal
    quantile); bounds [floor, cap]; dead band of the hysteresis (absolute haircut, 0.02 = 2 points)."""

    confidence: float = 0.99
    horizon_days: float = 2.0
    multiplier: float | None = None
    floor: float = 0.0
    cap: float = 0.5
    band: float = 0.02

    def __post_init__(self) -> None:
        check_range(self.confidence, low=0.5, high=1.0, include_high=False, name="haircut.confidence")
        check_range(self.horizon_days, low=1e-6, high=365.0, name="haircut.horizon_days")
        if self.multiplier is not None:
            check_range(self.multiplier, low=0.0, high=100.0, name="haircut.multiplier")
        check_range(self.floor, low=0.0, high=1.0, include_high=False, name="haircut.floor")
        check_range(self.cap, low=self.floor, high=1.0, include_high=False, name="haircut.cap")
        check_range(self.band, low=0.0, high=1.0, name="haircut.band")

    @property
    def k(self) -> float:
        return float(norm.ppf(self.confidence)) if self.multiplier is None else self.multiplier


def target_haircut(volatility_daily: FloatArray | float, params: VolHaircutParams) -> FloatArray:
    """h* = clip(1 - exp(-k σ √h_d), floor, cap), any shape; σ daily (not annualised), >= 0."""
    sigma = np.asarray(volatility_daily, dtype=np.float64)
    if np.any(~np.isfinite(sigma)) or np.any(sigma < 0.0):
        raise InputError("volatility_daily", "must be finite and >= 0")
    raw = -np.expm1(-params.k * sigma * np.sqrt(params.horizon_days))
    target: FloatArray = np.clip(raw, params.floor, params.cap)
    return target


def hysteresis(target: FloatArray, band: float, initial: FloatArray | None = None) -> FloatArray:
    """Haircuts in force (T, K) from targets (T, K) (module docstring); `initial` (K,): the haircut
    in force before row 0 (None: row 0's target). A recursion over the T days, vectorised over
    the K assets."""
    targets = np.asarray(target, dtype=np.float64)
    if targets.ndim != 2:
        raise InputError("target", f"must be (days, assets), got shape {targets.shape}")
    check_range(band, low=0.0, high=1.0, name="band")
    out = np.empty_like(targets)
    current = targets[0].copy() if initial is None else np.asarray(initial, dtype=np.float64).copy()
    for t in range(targets.shape[0]):  # days: each depends on the previous one
        move = np.abs(targets[t] - current) > band
        current = np.where(move, targets[t], current)
        out[t] = current
    return out


def with_base_haircuts(assets: AssetTable, haircut: FloatArray) -> AssetTable:
    """The asset table with each asset's first-tier haircut set to `haircut` (K,) and its higher
    tiers keeping their increments over the first (so size tiers still bite), capped below 1;
    the tiers' value below each floor recomputed. Progressive tiers stay non-decreasing."""
    new_base = np.asarray(haircut, dtype=np.float64)
    if new_base.shape != (assets.n_assets,):
        raise InputError("haircut", f"shape {new_base.shape}, expected ({assets.n_assets},)")
    if not np.all(np.isfinite(new_base)) or np.any(new_base < 0.0) or np.any(new_base >= 1.0):
        raise InputError("haircut", "every haircut must lie in [0, 1)")
    increments = assets.tier_haircut - assets.tier_haircut[:, :1]
    tiers = np.minimum(new_base[:, None] + increments, 0.999)
    widths = np.diff(assets.tier_floor, axis=1)
    slices = np.where(np.isfinite(widths), widths * (1.0 - tiers[:, :-1]), 0.0)
    value_below = np.zeros_like(assets.tier_value_below)
    value_below[:, 1:] = np.cumsum(slices, axis=1)
    return AssetTable(
        symbols=assets.symbols,
        tier_floor=assets.tier_floor,
        tier_haircut=tiers,
        tier_value_below=value_below,
        liability_weight=assets.liability_weight,
        borrow_rate_apr=assets.borrow_rate_apr,
        index=assets.index,
    )
