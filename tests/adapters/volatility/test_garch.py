"""GARCH(1,1) filter (arch) as a drop-in for EWMA in filtered HS."""

from __future__ import annotations

import dataclasses

import numpy as np

from crossmargin.adapters.volatility import GarchFilter
from crossmargin.core.margin.var import VarMargin, var_preset
from tests.core.var.synthetic import synthetic_history, var_book


def test_garch_forecasts_follow_the_volatility_regime() -> None:
    history = synthetic_history()
    daily = history.log_returns()
    vol = GarchFilter()(daily)
    assert vol.shape == (daily.shape[0] + 1, 3)
    assert np.all(np.isfinite(vol)) and np.all(vol > 0.0)
    # The last 100 days run at 7 % a day against 3 % before: today's forecast sees it.
    assert vol[-1, 0] > 1.5 * np.median(vol[:-150, 0])
    # A pegged coin is filtered by EWMA (no meaningful GARCH fit).
    assert vol[-1, 2] < 0.01


def test_fhs_garch_preset_margins_like_fhs_ewma() -> None:
    book, market = var_book()
    history = synthetic_history()
    garch = VarMargin(
        dataclasses.replace(var_preset("fhs-garch-es975"), window_days=700), history, GarchFilter()
    )
    ewma = VarMargin(dataclasses.replace(var_preset("fhs-es975"), window_days=700), history)
    a = garch.evaluate(book, market).initial_margin_usd
    b = ewma.evaluate(book, market).initial_margin_usd
    assert np.all(a[:3] > 0.0) and a[3] == 0.0
    assert np.allclose(a[:3], b[:3], rtol=0.5)  # two filters of one history: same order of magnitude
