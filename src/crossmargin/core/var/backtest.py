"""Back-test statistics of a margin series against realised losses (pure).

Exceedance on day t: realised h-day loss > margin required at t (hit_t = 1). With x hits in n days
and target exceedance probability p (1 - coverage):

    Kupiec POF (1995)          LR_pof = -2 ln[(1-p)^(n-x) p^x] + 2 ln[(1-x/n)^(n-x) (x/n)^x]  ~ χ²(1)
    Christoffersen (1998)      LR_ind = -2 ln[(1-π)^(n00+n10) π^(n01+n11)]
                                        + 2 ln[(1-π01)^n00 π01^n01 (1-π11)^n10 π11^n11]    ~ χ²(1)
                               n_ij: days in state i followed by state j; π01 = n01/(n00+n01),
                               π11 = n11/(n10+n11), π = (n01+n11)/(n00+n01+n10+n11); 0·ln 0 = 0.

Procyclicality (CPMI-IOSCO quantitative disclosures 6.x style): the largest increase of the
requirement over any 5 and 30 days, M_t / M_{t-n} - 1, and the peak-to-trough ratio max M / min M.
With overlapping h-day losses (h > 1) neighbouring hits are correlated by construction, so the
independence test is conservative for h > 1 (it rejects more often).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.stats import chi2

from crossmargin.core.checks import check_finite, check_range
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def _xlogy(x: float, y: float) -> float:
    """x·ln y with 0·ln 0 = 0."""
    return 0.0 if x == 0.0 else x * math.log(y)


def kupiec_pof(exceedances: int, days: int, probability: float) -> tuple[float, float]:
    """(LR_pof, p-value) for `exceedances` hits in `days` at target probability (module docstring)."""
    if days < 1 or not 0 <= exceedances <= days:
        raise InputError("backtest", f"need 0 <= exceedances ({exceedances}) <= days ({days}), days >= 1")
    check_range(probability, low=0.0, high=1.0, include_high=False, name="backtest.probability")
    x = float(exceedances)
    n = float(days)
    rate = x / n
    null = _xlogy(n - x, 1.0 - probability) + _xlogy(x, probability)
    alternative = _xlogy(n - x, 1.0 - rate) + _xlogy(x, rate)
    statistic = max(-2.0 * (null - alternative), 0.0)
    return statistic, float(chi2.sf(statistic, 1))


def christoffersen_independence(hits: BoolArray) -> tuple[float, float]:
    """(LR_ind, p-value) of the first-order Markov test that hits do not cluster."""
    h = np.asarray(hits, dtype=bool)
    if h.size < 2:
        return 0.0, 1.0
    before = h[:-1]
    after = h[1:]
    n00 = float(np.sum(~before & ~after))
    n01 = float(np.sum(~before & after))
    n10 = float(np.sum(before & ~after))
    n11 = float(np.sum(before & after))
    if n01 + n11 == 0.0 or n00 + n10 == 0.0:
        return 0.0, 1.0  # no hit, or nothing but hits: no evidence of clustering either way
    pi01 = n01 / (n00 + n01) if n00 + n01 > 0 else 0.0
    pi11 = n11 / (n10 + n11) if n10 + n11 > 0 else 0.0
    pi = (n01 + n11) / (n00 + n01 + n10 + n11)
    null = _xlogy(n00 + n10, 1.0 - pi) + _xlogy(n01 + n11, pi)
    alternative = _xlogy(n00, 1.0 - pi01) + _xlogy(n01, pi01) + _xlogy(n10, 1.0 - pi11) + _xlogy(n11, pi11)
    statistic = max(-2.0 * (null - alternative), 0.0)
    return statistic, float(chi2.sf(statistic, 1))


def largest_increase(margin_usd: FloatArray, days: int) -> float:
    """max_t M_t / M_{t-days} - 1 over days with M_{t-days} > 0 (0 if the series is shorter)."""
    if margin_usd.size <= days:
        return 0.0
    before = margin_usd[:-days]
    after = margin_usd[days:]
    positive = before > 0.0
    if not positive.any():
        return 0.0
    return float(max(np.max(after[positive] / before[positive]) - 1.0, 0.0))


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestStats:
    """One margin series against realised losses over `days` days."""

    days: int
    exceedances: int
    exceedance_rate: float
    expected_rate: float
    kupiec_statistic: float
    kupiec_p_value: float
    christoffersen_statistic: float
    christoffersen_p_value: float
    worst_shortfall_usd: float
    mean_margin_usd: float
    largest_5d_increase: float
    largest_30d_increase: float
    peak_to_trough: float


def backtest_stats(margin_usd: FloatArray, loss_usd: FloatArray, *, coverage: float) -> BacktestStats:
    """Exceedances (loss > margin), Kupiec and Christoffersen tests at 1 - coverage, worst shortfall
    max(loss - margin, 0) in USD, and procyclicality of the margin series; arrays (T,) aligned."""
    check_finite(margin_usd, "backtest.margin_usd")
    check_finite(loss_usd, "backtest.loss_usd")
    if margin_usd.shape != loss_usd.shape or margin_usd.ndim != 1 or margin_usd.size == 0:
        raise InputError("backtest", "margin and loss must be non-empty (T,) arrays of one length")
    hits = loss_usd > margin_usd
    n = int(hits.size)
    x = int(hits.sum())
    expected = 1.0 - coverage
    kupiec = kupiec_pof(x, n, expected)
    independence = christoffersen_independence(hits)
    positive = margin_usd[margin_usd > 0.0]
    return BacktestStats(
        days=n,
        exceedances=x,
        exceedance_rate=x / n,
        expected_rate=expected,
        kupiec_statistic=kupiec[0],
        kupiec_p_value=kupiec[1],
        christoffersen_statistic=independence[0],
        christoffersen_p_value=independence[1],
        worst_shortfall_usd=float(max(np.max(loss_usd - margin_usd), 0.0)),
        mean_margin_usd=float(margin_usd.mean()),
        largest_5d_increase=largest_increase(margin_usd, 5),
        largest_30d_increase=largest_increase(margin_usd, 30),
        peak_to_trough=float(positive.max() / positive.min()) if positive.size else 1.0,
    )
