"""GARCH(1,1) volatility forecasts per factor, fitted with `arch` (Sheppard), for filtered HS.

    σ²_t = ω + α·r²_{t-1} + β·σ²_{t-1}      zero mean, normal quasi-likelihood, returns in %

`arch` does no I/O, but it pulls in pandas and statsmodels and takes a second to import, so it
lives here rather than in the pure core; the core takes any (T, F) -> (T+1, F) filter.
A factor whose fit fails to converge, or that barely moves (a stablecoin), falls back to EWMA.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from crossmargin.adapters.extras import import_extra
from crossmargin.core.var.generators import MIN_DAILY_VOL, ewma_volatility

FloatArray = npt.NDArray[np.float64]

PERCENT = 100.0  # arch's optimiser is best conditioned on returns in percent
MIN_FIT_VOL = 1e-3  # below 0.1 % a day (pegged coins) the GARCH fit is meaningless: use EWMA


@dataclass(frozen=True, slots=True)
class GarchFilter:
    """Callable filter: daily log returns (T, F) -> volatility forecasts (T+1, F)."""

    def __call__(self, daily: FloatArray) -> FloatArray:
        # Deferred (a one-second import) and optional (the `var` extra).
        univariate = import_extra(
            "arch.univariate", extra="var", purpose="GARCH volatility (fhs-garch presets)"
        )
        GARCH, ZeroMean = univariate.GARCH, univariate.ZeroMean

        fallback = ewma_volatility(daily)
        out = fallback.copy()
        for column in range(daily.shape[1]):  # a handful of factors, one fit each
            series = daily[:, column] * PERCENT
            if daily.shape[0] < 100 or np.std(daily[:, column]) < MIN_FIT_VOL:
                continue
            model = ZeroMean(series, volatility=GARCH(p=1, q=1), rescale=False)
            fit = model.fit(disp="off", show_warning=False)
            if fit.convergence_flag != 0:
                continue
            omega, alpha, beta = (float(fit.params[n]) for n in ("omega", "alpha[1]", "beta[1]"))
            variance = np.empty(series.size + 1)
            variance[: series.size] = np.asarray(fit.conditional_volatility) ** 2
            variance[series.size] = omega + alpha * series[-1] ** 2 + beta * variance[series.size - 1]
            out[:, column] = np.sqrt(variance) / PERCENT
        result: FloatArray = np.maximum(out, MIN_DAILY_VOL)
        return result
