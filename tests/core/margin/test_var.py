"""The VaR/ES margin model: the margin-model contract (IM >= MM, zero positions need zero margin,
finite, deterministic with a seed, the explanation sums to the requirement), component ES, the
stressed floor and no look-ahead."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from crossmargin.core.margin.var import VAR_PRESETS, VarMargin, VarParams, explain_var_account, var_preset
from crossmargin.core.pricing import revalue
from crossmargin.errors import InputError
from tests.core.var.synthetic import VALUATION_NS, synthetic_history, var_book

CONTRACT_PRESETS = [p for p in VAR_PRESETS if "garch" not in p and "floor" not in p]


def _params(preset: str) -> VarParams:
    return dataclasses.replace(var_preset(preset), window_days=700, n_draws=1000)


@pytest.mark.parametrize("preset", CONTRACT_PRESETS)
def test_margin_model_contract(preset: str) -> None:
    book, market = var_book()
    model = VarMargin(_params(preset), synthetic_history())
    first = model.evaluate(book, market)
    again = model.evaluate(book, market)
    assert np.array_equal(first.initial_margin_usd, again.initial_margin_usd)  # seeded, deterministic
    assert np.all(np.isfinite(first.initial_margin_usd))
    assert np.all(first.initial_margin_usd >= first.maintenance_margin_usd)
    idle = book.account_row("idle")
    assert first.initial_margin_usd[idle] == 0.0 and first.maintenance_margin_usd[idle] == 0.0
    assert np.all(first.initial_margin_usd[[0, 1, 2]] > 0.0)
    breakdown = model.breakdown(book, market, list(range(book.n_accounts)))
    owner = np.repeat(np.arange(book.n_accounts), np.diff(book.positions.indptr))
    per_account = np.bincount(owner, weights=breakdown.initial_margin_usd, minlength=book.n_accounts)
    assert per_account[:3] == pytest.approx(first.initial_margin_usd[:3], rel=1e-9)


@pytest.mark.parametrize("preset", ["hs-es975", "fhs-es975", "mc-es975", "hs-var99"])
def test_components_sum_to_the_measure(preset: str) -> None:
    book, market = var_book()
    model = VarMargin(_params(preset), synthetic_history())
    result = model.evaluate(book, market)
    for row in range(3):
        e = explain_var_account(model, book, market, row)
        total = e.position_component_usd.sum() + e.collateral_component_usd.sum()
        measure = e.es_usd if model.params.measure == "es" else e.var_usd
        assert total == pytest.approx(measure, rel=1e-9)
        assert e.initial_margin_usd == pytest.approx(result.initial_margin_usd[row], rel=1e-9)
        assert e.es_usd >= e.var_usd


def test_zero_positions_need_zero_margin_whatever_the_collateral() -> None:
    book, market = var_book()
    flat = book.select([book.account_row("idle")])
    result = VarMargin(_params("fhs-es975"), synthetic_history()).evaluate(flat, market)
    assert result.initial_margin_usd[0] == 0.0


def test_stressed_floor_raises_the_requirement_by_its_weight() -> None:
    book, market = var_book()
    history = synthetic_history()
    base = dataclasses.replace(var_preset("hs-es975"), window_days=60)
    calm = VarMargin(base, history)
    # The last 100 days are the high-vol regime: a 60-day window ending before it is calm.
    early = dataclasses.replace(market, valuation_ns=VALUATION_NS - 150 * 86_400 * 10**9)
    floored = VarMargin(
        dataclasses.replace(
            base, stress_first_day="2023-09-23", stress_last_day="2023-12-31", stress_weight=1.0
        ),
        history,
    )
    plain = calm.evaluate(book, early).initial_margin_usd
    with_floor = floored.evaluate(book, early).initial_margin_usd
    assert np.all(with_floor >= plain)
    assert with_floor[0] > 1.3 * plain[0]
    e = explain_var_account(floored, book, early, 0)
    assert e.binding_group == 1


def test_no_look_ahead_and_missing_history() -> None:
    book, market = var_book()
    history = synthetic_history()
    model = VarMargin(_params("hs-var99"), history)
    crashed = dataclasses.replace(history, days=history.days, close_usd=history.close_usd.copy())
    crashed.close_usd[-1] *= 0.5  # a crash on 2023-12-31, whose close is stamped at 24:00
    midday = dataclasses.replace(market, valuation_ns=VALUATION_NS - 12 * 3600 * 10**9)
    assert np.array_equal(
        VarMargin(_params("hs-var99"), crashed).evaluate(book, midday).initial_margin_usd,
        model.evaluate(book, midday).initial_margin_usd,
    )
    # At midnight the day's close is known, and the crash counts.
    assert np.all(
        VarMargin(_params("hs-var99"), crashed).evaluate(book, market).initial_margin_usd[:3]
        > model.evaluate(book, market).initial_margin_usd[:3]
    )
    without_eth = history.select(["BTC", "USDC"])
    with pytest.raises(InputError, match="ETH"):
        VarMargin(_params("hs-var99"), without_eth).evaluate(book, market)
    garch = VarMargin(var_preset("fhs-garch-es975"), history)
    with pytest.raises(InputError, match="garch"):
        garch.evaluate(book, market, revalue(book.instruments, market))
