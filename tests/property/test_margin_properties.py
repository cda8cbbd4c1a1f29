"""Invariants of the margin core over random books (hypothesis; builders in tests/builders.py).

The same contract holds for both margin models (cross and isolated): zero positions need zero
margin, IM ≥ MM ≥ 0, results are finite and deterministic, margin is homogeneous of degree 1 in
position size under flat rates and grows at least linearly under size-growing rates.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossmargin.core.assets import Asset, AssetTable, HaircutTier
from crossmargin.core.collateral import accrue_borrow_interest, borrow_interest, value_collateral
from crossmargin.core.margin import CrossMargin, IsolatedMargin, MarginResult
from crossmargin.core.pricing import revalue
from tests.builders import RandomBook, random_books

MODELS = [CrossMargin(), IsolatedMargin()]
MODEL_IDS = ["cross", "isolated"]
REL_TOLERANCE = 1e-9
# IM and MM are sums of per-position terms; compare against the sum of magnitudes, not the
# (possibly cancelling) total, and allow the last few bits of that scale.
SUM_REL_TOLERANCE = 1e-12


def hand_collateral_usd(balance: float, asset: Asset) -> float:
    """Haircut value of one balance, computed slice by slice from the Asset definition (no
    AssetTable arrays): a progressive tier schedule like a tax bracket; borrowings at weight."""
    if balance < 0.0:
        return balance * asset.price_usd * asset.liability_weight
    total = 0.0
    tiers = asset.haircut_tiers
    for j, tier in enumerate(tiers):
        top = tiers[j + 1].above if j + 1 < len(tiers) else np.inf
        slice_units = min(balance, top) - tier.above
        if slice_units <= 0.0:
            break
        total += slice_units * (1.0 - tier.haircut)
    return total * asset.price_usd


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
    expected = np.array(
        [
            sum(hand_collateral_usd(float(book.balances[a, k]), asset) for k, asset in enumerate(case.assets))
            for a in range(book.n_accounts)
        ]
    )
    scale = np.abs(book.balances) @ book.assets.price_usd
    for result in _results(case):
        assert np.all(result.initial_margin_usd == 0.0)
        assert np.all(result.maintenance_margin_usd == 0.0)
        assert np.all(result.position_value_usd == 0.0)
        _close(result.equity_usd, expected, scale=scale, rel=SUM_REL_TOLERANCE * 100)
    _close(
        value_collateral(book.balances, book.assets).total_usd,
        expected,
        scale=scale,
        rel=SUM_REL_TOLERANCE * 100,
    )


@given(case=random_books(schedule="flat"), factor=st.floats(min_value=0.01, max_value=50.0))
def test_flat_rates_margin_scales_linearly(case: RandomBook, factor: float) -> None:
    scaled = case.book.scaled(factor)
    for model in MODELS:
        base = model.evaluate(case.book, case.market)
        big = model.evaluate(scaled, case.market)
        for name in ("initial_margin_usd", "maintenance_margin_usd", "position_value_usd"):
            _close(getattr(big, name), factor * getattr(base, name), scale=0.0, rel=REL_TOLERANCE)
        np.testing.assert_array_equal(big.collateral_value_usd, base.collateral_value_usd)


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


@given(case=random_books(), bump=st.floats(min_value=0.0, max_value=0.99))
def test_larger_haircut_never_raises_equity(case: RandomBook, bump: float) -> None:
    """Every tier's haircut h -> h + (1 - h)·bump (keeps tiers non-decreasing and below 1)."""
    harsher = [
        dataclasses.replace(
            asset,
            haircut_tiers=tuple(
                HaircutTier(above=t.above, haircut=min(t.haircut + (1.0 - t.haircut) * bump, 0.999))
                for t in asset.haircut_tiers
            ),
        )
        for asset in case.assets
    ]
    book = dataclasses.replace(case.book, assets=AssetTable.from_assets(harsher))
    for model in MODELS:
        before = model.evaluate(case.book, case.market)
        after = model.evaluate(book, case.market)
        slack = 1e-12 * (np.abs(case.book.balances) @ case.book.assets.price_usd + 1.0)
        assert np.all(after.equity_usd <= before.equity_usd + slack)
        assert np.all(after.collateral_value_usd <= before.collateral_value_usd + slack)
        np.testing.assert_array_equal(after.initial_margin_usd, before.initial_margin_usd)


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
    scale = float(np.abs(book.balances) @ book.assets.price_usd @ np.ones(book.n_accounts))
    total_before = before.collateral_value_usd.sum()
    assert after.collateral_value_usd.sum() == pytest.approx(
        total_before, rel=0.0, abs=SUM_REL_TOLERANCE * (scale + 1)
    )
    # Positions did not move: margin is unchanged account by account.
    np.testing.assert_array_equal(after.initial_margin_usd, before.initial_margin_usd)


@pytest.mark.parametrize("model", MODELS, ids=MODEL_IDS)
@given(case=random_books())
def test_im_at_least_mm_finite_and_deterministic(
    model: CrossMargin | IsolatedMargin, case: RandomBook
) -> None:
    first = model.evaluate(case.book, case.market)
    second = model.evaluate(case.book, case.market)
    for name in (
        "equity_usd",
        "initial_margin_usd",
        "maintenance_margin_usd",
        "available_usd",
        "collateral_value_usd",
        "position_value_usd",
    ):
        values = getattr(first, name)
        assert values.shape == (case.book.n_accounts,)
        assert np.all(np.isfinite(values)), name
        np.testing.assert_array_equal(values, getattr(second, name))
    np.testing.assert_array_equal(first.margin_ratio, second.margin_ratio)
    assert np.all(first.maintenance_margin_usd >= 0.0)
    assert np.all(first.initial_margin_usd >= first.maintenance_margin_usd * (1.0 - SUM_REL_TOLERANCE))
    rows = list(range(case.book.n_accounts))
    parts = model.breakdown(case.book, case.market, rows)
    assert np.all(parts.initial_margin_usd >= parts.maintenance_margin_usd * (1.0 - SUM_REL_TOLERANCE))
    assert np.all(parts.maintenance_margin_usd >= 0.0)


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
    assets = AssetTable.from_assets([Asset(symbol="BTC", price_usd=60_000.0, borrow_rate_apr=0.10)])
    balances = np.array([[-2.0], [5.0]])
    accrued = accrue_borrow_interest(balances, assets, elapsed_years=0.5)
    np.testing.assert_allclose(accrued, [[-2.1], [5.0]], rtol=1e-15)
