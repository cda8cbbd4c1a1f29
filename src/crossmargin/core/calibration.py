"""Risk-parameter calibration from history: haircuts, IM/MM rates and risk-limit tiers that reach
a target coverage, each with the back-test that justifies it (pure: arrays in, values out).

Per asset, daily closes P_t, h-day log return R_t = ln(P_{t+h} / P_t) over windows starting at t:

    collateral loss        L_t = 1 - e^{R_t}                        (a long balance)
    position loss          W_t = max(1 - e^{R_t}, e^{R_t} - 1)      (the worse of long and short)
    static haircut         h   = Q_q(L_t over the fit window)       q = coverage, "higher" order
                                                                    statistic: covers >= q there
    dynamic haircut        h_t = clip(1 - exp(-k σ_t √h), floor, cap), then hysteresis
                           (`core.haircut_rule`), σ_t the volatility in force at t (EWMA, or the
                           larger of EWMA and implied), k the smallest multiplier, from
                           Q_q(-R_t / (σ_t √h)) up, whose banded series covers >= q on the fit window
    IM rate                Q_q(W_t), h-day windows;  MM rate: the same over the liquidation horizon
    tier ceilings          Q_n = V̄ · (b_n / (Y σ̄))²: the position whose liquidation moves the
                           price by b_n under the square-root law ΔP/P = Y σ √(Q/V) (Tóth et al.,
                           "Anomalous price impact and the critical nature of liquidity in
                           financial markets", Phys. Rev. X 1, 2011; Y ~ 1); V̄, σ̄ the fit
                           window's median venue volume (USD/day) and daily vol
    tier IM rate           Q_q(W_t + Y σ_t √(Q_n / V_t)): price loss plus the liquidation's
                           impact at that day's vol and volume
    position limit         the largest ceiling whose tier rate is at most `max_tier_rate` (1 =
                           fully collateralised: a larger position's liquidation costs more than
                           it is worth); tiers above it are not offered

Every number is reported with its coverage and Kupiec POF test (core.var.backtest) on the fit
window and, out of sample, on a test window it was not fitted on. Windows never straddle: a fit
window's loss ends inside the fit range. Float64 risk maths; rates are fractions of notional.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from crossmargin.core.checks import check_range
from crossmargin.core.haircut_rule import VolHaircutParams, hysteresis, target_haircut
from crossmargin.core.var.backtest import kupiec_pof
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

MULTIPLIER_STEPS = 200  # the banded haircut's multiplier search: k0 · (1 + 0.005 j), j < 200


@dataclass(frozen=True, slots=True, kw_only=True)
class CalibrationParams:
    """Target coverage and horizons; haircut bounds and band; impact law and tier budgets."""

    coverage: float = 0.99
    horizon_days: int = 2
    liquidation_days: int = 1
    haircut_floor: float = 0.0
    haircut_cap: float = 0.9
    haircut_band: float = 0.02
    impact_coefficient: float = 1.0
    volume_share: float = 0.10
    tier_impact_budgets: tuple[float, ...] = (0.005, 0.01, 0.02, 0.05, 0.10)
    max_tier_rate: float = 1.0

    def __post_init__(self) -> None:
        check_range(self.coverage, low=0.5, high=1.0, include_high=False, name="calibration.coverage")
        check_range(self.horizon_days, low=1, high=30, name="calibration.horizon_days")
        check_range(self.liquidation_days, low=1, high=self.horizon_days, name="calibration.liquidation_days")
        check_range(
            self.haircut_floor, low=0.0, high=1.0, include_high=False, name="calibration.haircut_floor"
        )
        check_range(
            self.haircut_cap,
            low=self.haircut_floor,
            high=1.0,
            include_high=False,
            name="calibration.haircut_cap",
        )
        check_range(self.haircut_band, low=0.0, high=0.5, name="calibration.haircut_band")
        check_range(self.impact_coefficient, low=0.0, high=100.0, name="calibration.impact_coefficient")
        check_range(self.volume_share, low=1e-6, high=1.0, name="calibration.volume_share")
        check_range(self.max_tier_rate, low=0.0, high=10.0, name="calibration.max_tier_rate")
        budgets = self.tier_impact_budgets
        if not budgets or any(b <= 0.0 or b >= 1.0 for b in budgets) or list(budgets) != sorted(set(budgets)):
            raise InputError(
                "calibration.tier_impact_budgets", "must be strictly increasing values in (0, 1)"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class Coverage:
    """A requirement against realised losses on one window: days, exceedances (loss > requirement),
    coverage = 1 - exceedances/days, Kupiec POF p-value at the target."""

    days: int
    exceedances: int
    coverage: float
    kupiec_p_value: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    fit: Coverage
    test: Coverage


@dataclass(frozen=True, slots=True, kw_only=True)
class TierCalibration:
    ceiling_usd: float
    impact_at_ceiling: float
    initial_rate: float
    evidence: Evidence


@dataclass(frozen=True, slots=True, kw_only=True)
class AssetCalibration:
    symbol: str
    haircut: float
    haircut_evidence: Evidence
    haircut_multiplier: float
    haircut_now: float
    haircut_mean_test: float
    haircut_evidence_dynamic: Evidence
    haircut_changes: int
    haircut_changes_without_band: int
    initial_rate: float
    initial_evidence: Evidence
    maintenance_rate: float
    maintenance_evidence: Evidence
    tiers: tuple[TierCalibration, ...] = field(default_factory=tuple)
    position_limit_usd: float = float("nan")
    median_volume_usd: float = float("nan")
    median_volatility_daily: float = float("nan")


def forward_log_return(close: FloatArray, days: int) -> FloatArray:
    """R_t = ln(P_{t+days} / P_t), (T,), NaN for the last `days` rows and across gaps."""
    out = np.full(close.size, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[:-days] = np.log(close[days:] / close[:-days])
    return out


def window_mask(in_range: BoolArray, days: int) -> BoolArray:
    """Rows t with t and t + days both in the range (a window that ends where it started)."""
    mask = np.zeros(in_range.size, dtype=bool)
    mask[:-days] = in_range[:-days] & in_range[days:]
    return mask


def covered_quantile(loss: FloatArray, coverage: float) -> float:
    """The smallest order statistic covering >= coverage of `loss` (np.quantile "higher")."""
    if loss.size == 0:
        raise InputError("calibration", "no loss window in the fit range")
    return float(np.quantile(loss, coverage, method="higher"))


def coverage_of(loss: FloatArray, requirement: FloatArray | float, target: float) -> Coverage:
    """Exceedances of `requirement` (scalar or aligned) by `loss`, with Kupiec at 1 - target."""
    hits = loss > requirement
    n = int(loss.size)
    x = int(np.sum(hits))
    p_value = kupiec_pof(x, n, 1.0 - target)[1] if n else float("nan")
    return Coverage(
        days=n, exceedances=x, coverage=1.0 - x / n if n else float("nan"), kupiec_p_value=p_value
    )


def _evidence(
    loss: FloatArray, requirement: FloatArray | float, fit: BoolArray, test: BoolArray, target: float
) -> Evidence:
    req = np.broadcast_to(np.asarray(requirement, dtype=np.float64), loss.shape)
    return Evidence(
        fit=coverage_of(loss[fit], req[fit], target),
        test=coverage_of(loss[test], req[test], target),
    )


def worst_side_loss(log_return: FloatArray) -> FloatArray:
    """max(1 - e^R, e^R - 1): the loss of the side the move goes against, per unit notional."""
    loss: FloatArray = np.where(log_return > 0.0, np.expm1(log_return), -np.expm1(log_return))
    return loss


def banded_haircuts(
    volatility: FloatArray, multiplier: float, params: CalibrationParams
) -> tuple[FloatArray, FloatArray]:
    """(targets, haircuts in force with the dead band), (T,), for a vol series with no NaN."""
    rule = VolHaircutParams(
        confidence=params.coverage,
        horizon_days=float(params.horizon_days),
        multiplier=multiplier,
        floor=params.haircut_floor,
        cap=params.haircut_cap,
        band=params.haircut_band,
    )
    target = target_haircut(volatility, rule)
    return target, hysteresis(target[:, None], params.haircut_band)[:, 0]


def calibrate_asset(
    symbol: str,
    *,
    close_usd: FloatArray,
    volatility_daily: FloatArray,
    volume_usd: FloatArray,
    fit: BoolArray,
    test: BoolArray,
    params: CalibrationParams,
) -> AssetCalibration:
    """Calibrate one asset (module docstring). All arrays (T,) on one daily calendar: closes,
    the daily vol in force at each close (NaN until known), the venue's trailing daily volume
    in USD (NaN: no tiers), fit and test day ranges (disjoint)."""
    if np.any(fit & test):
        raise InputError("calibration.windows", "fit and test windows overlap")
    h = params.horizon_days
    q = params.coverage
    r_h = forward_log_return(close_usd, h)
    r_l = forward_log_return(close_usd, params.liquidation_days)
    known = np.isfinite(r_h) & np.isfinite(volatility_daily) & (volatility_daily > 0.0)
    fit_h = window_mask(fit, h) & known
    test_h = window_mask(test, h) & known
    fit_l = window_mask(fit, params.liquidation_days) & np.isfinite(r_l)
    test_l = window_mask(test, params.liquidation_days) & np.isfinite(r_l)
    collateral_loss = -np.expm1(np.where(known, r_h, 0.0))
    haircut = min(max(covered_quantile(collateral_loss[fit_h], q), params.haircut_floor), params.haircut_cap)
    # Dynamic haircut: standardised losses give the multiplier; the band may cost coverage, so
    # raise k in small steps until the banded series covers the target on the fit window.
    sigma = np.where(known, volatility_daily, 1.0)
    standardised = -r_h / (sigma * np.sqrt(h))
    k0 = max(covered_quantile(standardised[fit_h], q), 0.0)
    rows = np.flatnonzero(known)
    k = k0
    for step in range(MULTIPLIER_STEPS):  # a 1-D search over one multiplier
        k = k0 * (1.0 + 0.005 * step)
        _, in_force = banded_haircuts(sigma[rows], k, params)
        banded = np.full(close_usd.size, np.nan)
        banded[rows] = in_force
        if coverage_of(collateral_loss[fit_h], banded[fit_h], q).coverage >= q:
            break
    target, in_force = banded_haircuts(sigma[rows], k, params)
    banded = np.full(close_usd.size, np.nan)
    banded[rows] = in_force
    worst_h = worst_side_loss(np.where(np.isfinite(r_h), r_h, 0.0))
    worst_l = worst_side_loss(np.where(np.isfinite(r_l), r_l, 0.0))
    initial = covered_quantile(worst_h[fit_h], q)
    maintenance = covered_quantile(worst_l[fit_l], q)
    tiers, limit, volume_median, vol_median = _tiers(worst_h, sigma, volume_usd, fit_h, test_h, params)
    return AssetCalibration(
        symbol=symbol,
        haircut=haircut,
        haircut_evidence=_evidence(collateral_loss, haircut, fit_h, test_h, q),
        haircut_multiplier=k,
        haircut_now=float(in_force[-1]) if in_force.size else float("nan"),
        haircut_mean_test=float(np.mean(banded[test_h])) if np.any(test_h) else float("nan"),
        haircut_evidence_dynamic=_evidence(collateral_loss, np.nan_to_num(banded, nan=1.0), fit_h, test_h, q),
        haircut_changes=int(np.sum(np.diff(in_force) != 0.0)),
        haircut_changes_without_band=int(np.sum(np.diff(target) != 0.0)),
        initial_rate=initial,
        initial_evidence=_evidence(worst_h, initial, fit_h, test_h, q),
        maintenance_rate=maintenance,
        maintenance_evidence=_evidence(worst_l, maintenance, fit_l, test_l, q),
        tiers=tiers,
        position_limit_usd=limit,
        median_volume_usd=volume_median,
        median_volatility_daily=vol_median,
    )


def _tiers(
    worst_h: FloatArray,
    sigma: FloatArray,
    volume_usd: FloatArray,
    fit_h: BoolArray,
    test_h: BoolArray,
    params: CalibrationParams,
) -> tuple[tuple[TierCalibration, ...], float, float, float]:
    """Tier ceilings from the impact budgets and each tier's covered rate (module docstring)."""
    venue_volume = volume_usd * params.volume_share
    has_volume = np.isfinite(venue_volume) & (venue_volume > 0.0)
    fit_v = fit_h & has_volume
    test_v = test_h & has_volume
    if not np.any(fit_v) or params.impact_coefficient == 0.0:
        return (
            (),
            float("nan"),
            float("nan"),
            float(np.median(sigma[fit_h])) if np.any(fit_h) else float("nan"),
        )
    volume_median = float(np.median(venue_volume[fit_v]))
    vol_median = float(np.median(sigma[fit_v]))
    y = params.impact_coefficient
    safe_volume = np.where(has_volume, venue_volume, 1.0)
    tiers: list[TierCalibration] = []
    for budget in params.tier_impact_budgets:  # a handful of tiers
        ceiling = volume_median * (budget / (y * vol_median)) ** 2
        loss = worst_h + y * sigma * np.sqrt(ceiling / safe_volume)
        rate = covered_quantile(loss[fit_v], params.coverage)
        if rate > params.max_tier_rate:
            break  # tier rates grow with size: every later tier is above the limit too
        tiers.append(
            TierCalibration(
                ceiling_usd=ceiling,
                impact_at_ceiling=budget,
                initial_rate=rate,
                evidence=_evidence(loss, rate, fit_v, test_v, params.coverage),
            )
        )
    limit = tiers[-1].ceiling_usd if tiers else 0.0
    return tuple(tiers), limit, volume_median, vol_median
