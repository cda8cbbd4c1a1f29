"""Scenario generators from real history: each returns joint h-day log moves of the risk factors,
which `var_scenario_set` turns into a `ScenarioSet` on the portfolio revaluation path (price
factor = exp(move) applied to today's prices; vol shift zero).

Inputs are numpy matrices of daily log returns (T, F), one column per risk factor, rows in time
order, every row complete (see `history.PriceHistory.complete`); randomness is an rng passed in.

    historical (HS)     move_t = Σ_{j<h} r_{t+j}                       last N days, overlapping
    filtered (FHS)      move_t = σ_now · Σ_{j<h} r_{t+j} / σ_{t+j}     σ from EWMA or GARCH(1,1)
    Monte Carlo         move = σ_now · √h · q_ν(u),  u from a Gaussian or Student-t copula whose
                        correlation is that of the filtered residuals' normal scores
    stressed window     HS over a fixed window (e.g. 2022-05 .. 2022-12), an anti-procyclical
                        floor counted at a weight (EMIR RTS 153/2013 art. 28 lists such a floor)

EWMA (RiskMetrics 1996, λ = 0.94): σ²_{t+1} = λ·σ²_t + (1-λ)·r_t², seeded with the mean square
of the first `seed_days` returns. σ[t] is the forecast for day t made the day before, so
σ[T] (one row past the returns) is today's forecast for tomorrow: FHS and MC scale by it.
Filtered HS follows Barone-Adesi, Giannopoulos and Vosper (1999).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from crossmargin.core.checks import check_finite, check_range
from crossmargin.core.scenarios import ScenarioSet
from crossmargin.core.var.history import DayArray, horizon_log_returns
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]

EWMA_DECAY = 0.94  # RiskMetrics daily decay
EWMA_SEED_DAYS = 30
MIN_DAILY_VOL = 1e-4  # a stablecoin's calm days: never divide by a zero volatility


@dataclass(frozen=True, slots=True)
class Moves:
    """Joint h-day log moves (S, F) of the factors, with the last day of each window (S,)
    (NaT for simulated rows) and a label per row."""

    log_move: FloatArray
    end_day: DayArray
    labels: tuple[str, ...]

    @property
    def n_scenarios(self) -> int:
        return int(self.log_move.shape[0])


def _check_returns(daily: FloatArray, days: DayArray) -> None:
    if daily.ndim != 2 or days.shape != (daily.shape[0],):
        raise InputError("history.returns", "daily returns must be (T, F) with one day per row")
    check_finite(daily, "history.returns")


def historical_moves(daily: FloatArray, days: DayArray, *, horizon_days: int, tag: str = "HS") -> Moves:
    """Overlapping h-day sums of the daily log returns (T, F); days (T,) is each return's day."""
    _check_returns(daily, days)
    moves = horizon_log_returns(daily, horizon_days)
    end = days[horizon_days - 1 :] if moves.shape[0] else days[:0]
    labels = tuple(f"{tag} {horizon_days}d to {d}" for d in end.astype(str))
    return Moves(log_move=moves, end_day=end, labels=labels)


def ewma_volatility(
    daily: FloatArray, *, decay: float = EWMA_DECAY, seed_days: int = EWMA_SEED_DAYS
) -> FloatArray:
    """EWMA daily volatility forecasts (T+1, F): row t is the forecast for return t, the last row
    today's forecast for tomorrow (module docstring)."""
    check_range(decay, low=0.0, high=1.0, include_high=False, name="ewma.decay")
    check_finite(daily, "history.returns")
    n, f = daily.shape
    if n == 0:
        raise InputError("history.returns", "EWMA needs at least one return")
    variance = np.empty((n + 1, f))
    variance[0] = np.mean(daily[: max(1, min(seed_days, n))] ** 2, axis=0)
    # A recursion over time: T steps of an (F,) update, small next to the revaluation.
    for t in range(n):
        variance[t + 1] = decay * variance[t] + (1.0 - decay) * daily[t] ** 2
    vol: FloatArray = np.maximum(np.sqrt(variance), MIN_DAILY_VOL)
    return vol


def filtered_moves(
    daily: FloatArray, days: DayArray, volatility: FloatArray, *, horizon_days: int, tag: str = "FHS"
) -> Moves:
    """Filtered HS: devolatilise each daily return by its own forecast σ_t, sum h consecutive
    residuals, revolatilise by today's σ (volatility: (T+1, F), e.g. `ewma_volatility`)."""
    _check_returns(daily, days)
    if volatility.shape != (daily.shape[0] + 1, daily.shape[1]):
        raise InputError("history.volatility", f"must be (T+1, F) = {(daily.shape[0] + 1, daily.shape[1])}")
    check_finite(volatility, "history.volatility")
    residual = daily / np.maximum(volatility[:-1], MIN_DAILY_VOL)
    summed = horizon_log_returns(residual, horizon_days)
    moves = summed * volatility[-1]
    end = days[horizon_days - 1 :] if moves.shape[0] else days[:0]
    labels = tuple(f"{tag} {horizon_days}d to {d}" for d in end.astype(str))
    return Moves(log_move=moves, end_day=end, labels=labels)


def residual_correlation(residual: FloatArray) -> FloatArray:
    """Correlation of the normal scores Φ⁻¹(rank/(T+1)) of each column: a copula correlation that
    fat tails do not distort (van der Waerden); (F, F), positive definite (jittered if needed)."""
    from scipy.special import ndtri  # on first use: importing scipy costs ~0.3 s (core.position_matrix)

    n, f = residual.shape
    if n < 2:
        return np.eye(f)
    ranks = np.argsort(np.argsort(residual, axis=0, kind="stable"), axis=0, kind="stable") + 1.0
    scores = ndtri(ranks / (n + 1.0))
    corr = np.corrcoef(scores, rowvar=False) if f > 1 else np.ones((1, 1))
    corr = np.atleast_2d(np.nan_to_num(corr, nan=0.0))
    np.fill_diagonal(corr, 1.0)
    eigen = np.linalg.eigvalsh(corr).min()
    if eigen < 1e-8:  # constant columns (a pegged coin) make it singular
        corr = (corr + (1e-6 - eigen) * np.eye(f)) / (1.0 + 1e-6 - eigen)
    result: FloatArray = corr
    return result


def monte_carlo_moves(
    daily: FloatArray,
    volatility: FloatArray,
    *,
    horizon_days: int,
    n_draws: int,
    rng: np.random.Generator,
    copula: str = "student",
    copula_dof: float = 4.0,
    marginal_dof: float = 4.0,
) -> Moves:
    """Correlated draws: u from a Gaussian or Student-t copula (correlation of the EWMA-filtered
    residuals' normal scores), each factor's h-day move σ_now·√h·q(u) with q the Student-t
    quantile of `marginal_dof` degrees scaled to unit variance (fat tails beyond the sample)."""
    from scipy.special import ndtr  # on first use: importing scipy costs ~0.3 s (core.position_matrix)

    check_finite(daily, "history.returns")
    if copula not in ("gaussian", "student"):
        raise InputError("var.copula", f"must be 'gaussian' or 'student', got {copula!r}")
    if n_draws < 1:
        raise InputError("var.n_draws", "must be >= 1")
    check_range(copula_dof, low=2.0, high=1e6, include_high=True, name="var.copula_dof")
    check_range(marginal_dof, low=2.0 + 1e-9, high=1e6, name="var.marginal_dof")
    # Deferred: scipy.stats costs ~0.4 s to import and only Monte Carlo VaR needs it.
    from scipy.stats import t as student_t

    f = daily.shape[1]
    residual = daily / np.maximum(volatility[:-1], MIN_DAILY_VOL)
    chol = np.linalg.cholesky(residual_correlation(residual))
    normal = rng.standard_normal((n_draws, f)) @ chol.T
    if copula == "gaussian":
        u = ndtr(normal)
    else:
        chi = rng.chisquare(copula_dof, size=(n_draws, 1))
        u = student_t.cdf(normal / np.sqrt(chi / copula_dof), copula_dof)
    u = np.clip(u, 1e-12, 1.0 - 1e-12)
    unit = student_t.ppf(u, marginal_dof) * np.sqrt((marginal_dof - 2.0) / marginal_dof)
    moves = unit * volatility[-1] * np.sqrt(horizon_days)
    labels = tuple(f"MC {copula} draw {n}" for n in range(n_draws))
    return Moves(
        log_move=moves, end_day=np.full(n_draws, np.datetime64("NaT"), dtype="datetime64[D]"), labels=labels
    )


def var_scenario_set(
    moves: Moves,
    *,
    factors: Sequence[str],
    moving: Sequence[str],
    n_instruments: int,
    weight: float = 1.0,
    group: int = 0,
) -> ScenarioSet:
    """A ScenarioSet over `factors` where the columns of `moves` are the factors named in `moving`
    (price factor exp(move)); other factors (USD) do not move; implied vols unchanged."""
    names = tuple(factors)
    if moves.log_move.shape[1] != len(moving):
        raise InputError("var.moves", "one column per moving factor")
    price = np.ones((moves.n_scenarios, len(names)))
    for column, symbol in enumerate(moving):
        if symbol not in names:
            raise InputError("var.moving", f"{symbol!r} is not a risk factor of the book")
        price[:, names.index(symbol)] = np.exp(moves.log_move[:, column])
    return ScenarioSet(
        factors=names,
        price_factor=price,
        vol_shift=np.zeros((moves.n_scenarios, n_instruments)),
        weight=np.full(moves.n_scenarios, weight),
        group=np.full(moves.n_scenarios, group, dtype=np.int64),
        labels=moves.labels,
    )
