"""Issue 14: the bankrupt decision tolerates rounding. Equity within EQUITY_ZERO_TOLERANCE of the
account's gross value (Σ |collateral| + Σ |position value terms|) is zero, hence bankrupt when
the account owes maintenance margin; a real, if small, equity is not."""

from __future__ import annotations

import numpy as np

from crossmargin.core.margin.result import EQUITY_ZERO_TOLERANCE, MarginResult


def _pooled(equity_usd: float, gross_value_usd: float) -> MarginResult:
    return MarginResult.pooled(
        model="cross",
        collateral_value_usd=np.array([0.0]),
        position_value_usd=np.array([equity_usd]),
        initial_margin_usd=np.array([86_385.57]),
        maintenance_margin_usd=np.array([43_192.79]),
        gross_value_usd=np.array([gross_value_usd]),
    )


def test_rounding_residue_of_a_gross_value_is_bankrupt() -> None:
    gross = 2 * 873_939.664 * 89.95  # both terms of an inverse perp entered at the mark
    residue = _pooled(9.7e-11, gross)  # the cancellation error once reported as equity
    assert residue.bankrupt.tolist() == [True]
    assert np.isnan(residue.margin_ratio[0])


def test_equity_above_the_tolerance_is_solvent() -> None:
    gross = 1.0e8
    result = _pooled(10 * EQUITY_ZERO_TOLERANCE * gross, gross)  # 0.001 USD of equity
    assert result.bankrupt.tolist() == [False]
    assert np.isfinite(result.margin_ratio[0])


def test_without_a_gross_value_the_rule_is_equity_at_most_zero() -> None:
    no_scale = MarginResult.pooled(
        model="cross",
        collateral_value_usd=np.array([0.0, 0.0]),
        position_value_usd=np.array([0.0, 1e-11]),
        initial_margin_usd=np.array([1.0, 1.0]),
        maintenance_margin_usd=np.array([0.5, 0.5]),
    )
    assert no_scale.bankrupt.tolist() == [True, False]
