"""Invariants of the cross and isolated margin core over random books beyond the contract every
model passes (tests/property/test_model_contract.py: zero positions need zero margin, IM ≥ MM ≥ 0,
finite and deterministic, scaling, haircuts, the breakdown adds up).

Here: collateral valued by hand slice by slice, margin growing at least linearly in size under
size-growing rates (stronger than the contract's monotonicity), collateral moved between
accounts conserving value, the fused numba kernel equal to the numpy breakdown, and borrow
interest.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossmargin.core.assets import Asset, AssetTable
from crossmargin.core.collateral import accrue_borrow_interest, borrow_interest, value_collateral
from crossmargin.core.margin import CrossMargin, IsolatedMargin, MarginResult
from crossmargin.core.pricing import revalue
from tests.builders import RandomBook, random_books

MODELS = [CrossMargin(), IsolatedMargin()]
REL_TOLERANCE = 1e-9
# IM and MM are sums of per-position terms; compare against the sum of magnitudes, not the
# (possibly cancelling) total, and allow the last few bits of that scale.
SUM_REL_TOLERANCE = 1e-12


def hand_collateral_usd(balance: float, asset: Asset, price_usd: float) -> float:
    """Haircut value of one balance at `price_usd`, computed slice by slice from the Asset
    definition (no AssetTable arrays): a progressive tier schedule like a tax bracket; borrowings
    at weight."""
    if balance < 0.0:
        return balance * price_usd * asset.liability_weight
    total = 0.0
    tiers = asset.haircut_tiers
    for j, tier in enumerate(tiers):
        top = tiers[j + 1].above if j + 1 < len(tiers) else np.inf
        slice_units = min(balance, top) - tier.above
        if slice_units <= 0.0:
            break
        total += slice_units * (1.0 - tier.haircut)
    return total * price_usd


def _close(
    actual: np.ndarray, expected: np.ndarray, *, scale: np.ndarray | float, rel: float = REL_TOLERANCE
) -> None:
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    allowed = rel * (np.abs(expected) + np.asarray(scale))
    assert np.all(np.abs(actual - expected) <= allowed), (actual, expected)


def _results(case: RandomBook) -> list[MarginResult]:
    return [model.evaluate(case.book, case.market) for model in MODELS]


# ---------------------------------------------------------------------------------------------


@given(case=random_books(with_positions=False))
def test_collateral_only_needs_no_margin_and_equity_is_haircut_value(case: RandomBook) -> None:
    book = case.book
    price = case.market.asset_prices(book.assets)
    expected = np.array(
        [
            sum(
                hand_collateral_usd(float(book.balances[a, k]), asset, float(price[k]))
                for k, asset in enumerate(case.assets)
            )
            for a in range(book.n_accounts)
        ]
    )
    scale = np.abs(book.balances) @ price
    for result in _results(case):
        assert np.all(result.initial_margin_usd == 0.0)
        assert np.all(result.maintenance_margin_usd == 0.0)
        assert np.all(result.position_value_usd == 0.0)
        _close(result.equity_usd, expected, scale=scale, rel=SUM_REL_TOLERANCE * 100)
    _close(
        value_collateral(book.balances, book.assets, price).total_usd,
        expected,
        scale=scale,
        rel=SUM_REL_TOLERANCE * 100,
    )


@given(case=random_books(schedule="any"), factor=st.floats(min_value=1.0, max_value=20.0))
def test_growing_rates_margin_grows_at_least_linearly(case: RandomBook, factor: float) -> None:
    """Tiers and Deribit's size growth are convex with zero at zero: m(k·x) ≥ k·m(x) for k ≥ 1."""
    scaled = case.book.scaled(factor)
    for model in MODELS:
        base = model.evaluate(case.book, case.market)
        big = model.evaluate(scaled, case.market)
        for name in ("initial_margin_usd", "maintenance_margin_usd"):
            lower = factor * getattr(base, name)
            assert np.all(getattr(big, name) >= lower * (1.0 - REL_TOLERANCE)), (model.name, name)


@given(
    case=random_books(tiered_haircuts=False, allow_borrow=False, max_accounts=4),
    data=st.data(),
)
def test_moving_collateral_conserves_value_under_flat_haircuts(case: RandomBook, data: st.DataObject) -> None:
    book = case.book
    src = data.draw(st.integers(0, book.n_accounts - 1), label="from")
    dst = data.draw(st.integers(0, book.n_accounts - 1), label="to")
    asset = data.draw(st.integers(0, book.assets.n_assets - 1), label="asset")
    held = int(book.balances[src, asset] * 1024)
    moved = data.draw(st.integers(0, held), label="amount_quanta") / 1024.0
    balances = book.balances.copy()
    balances[src, asset] -= moved
    balances[dst, asset] += moved
    after_book = book.with_balances(balances)
    # Asset totals are exact (dyadic balances).
    np.testing.assert_array_equal(after_book.balances.sum(axis=0), book.balances.sum(axis=0))
    before = CrossMargin().evaluate(book, case.market)
    after = CrossMargin().evaluate(after_book, case.market)
    price = case.market.asset_prices(book.assets)
    scale = float(np.abs(book.balances) @ price @ np.ones(book.n_accounts))
    total_before = before.collateral_value_usd.sum()
    assert after.collateral_value_usd.sum() == pytest.approx(
        total_before, rel=0.0, abs=SUM_REL_TOLERANCE * (scale + 1)
    )
    # Positions did not move: margin is unchanged account by account.
    np.testing.assert_array_equal(after.initial_margin_usd, before.initial_margin_usd)


@given(case=random_books(max_accounts=5, max_instruments=6))
def test_numba_kernel_equals_numpy_breakdown(case: RandomBook) -> None:
    """CrossMargin.evaluate (fused numba pass) = CrossMargin.breakdown (numpy, per position)
    summed per account."""
    book = case.book
    valuation = revalue(book.instruments, case.market)
    fused = CrossMargin().evaluate(book, case.market, valuation)
    parts = CrossMargin().breakdown(book, case.market, list(range(book.n_accounts)), valuation)
    n = book.n_accounts

    def per_account(values: np.ndarray) -> np.ndarray:
        return np.bincount(parts.position_account, weights=values, minlength=n)

    _close(
        fused.initial_margin_usd,
        per_account(parts.initial_margin_usd),
        scale=per_account(np.abs(parts.initial_margin_usd)),
    )
    _close(
        fused.maintenance_margin_usd,
        per_account(parts.maintenance_margin_usd),
        scale=per_account(np.abs(parts.maintenance_margin_usd)),
    )
    _close(fused.position_value_usd, per_account(parts.value_usd), scale=per_account(np.abs(parts.value_usd)))
    _close(
        fused.collateral_value_usd,
        parts.collateral_value_usd.sum(axis=1),
        scale=np.abs(parts.collateral_value_usd).sum(axis=1),
    )
    np.testing.assert_array_equal(parts.balance, book.balances)


@given(case=random_books(with_positions=False), years=st.floats(min_value=0.0, max_value=2.0))
def test_interest_accrues_only_on_borrowings(case: RandomBook, years: float) -> None:
    balances = case.book.balances
    apr = case.book.assets.borrow_rate_apr
    accrued = accrue_borrow_interest(balances, case.book.assets, elapsed_years=years)
    owed = borrow_interest(balances, case.book.assets, elapsed_years=years)
    long = balances >= 0.0
    np.testing.assert_array_equal(accrued[long], balances[long])
    np.testing.assert_array_equal(owed[long], 0.0)
    expected = balances * (1.0 + apr * years)  # b < 0 grows in magnitude by |b|·apr·t
    np.testing.assert_allclose(accrued[~long], expected[~long], rtol=1e-14)
    assert np.all(owed >= 0.0)
    assert np.all(accrued <= balances)


def test_interest_example() -> None:
    """Borrow 2 BTC at 10 % APR for half a year: owe 0.1 BTC; the 5 BTC deposit earns nothing."""
    assets = AssetTable.from_assets([Asset(symbol="BTC", borrow_rate_apr=0.10)])
    balances = np.array([[-2.0], [5.0]])
    accrued = accrue_borrow_interest(balances, assets, elapsed_years=0.5)
    np.testing.assert_allclose(accrued, [[-2.1], [5.0]], rtol=1e-15)
