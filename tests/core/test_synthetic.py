"""Synthetic books: seeded, reproducible by range, and shaped as specified."""

from __future__ import annotations

import numpy as np

from crossmargin.core.synthetic import SynthSpec, synth_arrays, synth_book, synth_market


def test_synthetic_book_is_seeded_and_range_consistent() -> None:
    spec = SynthSpec(n_accounts=70_000, seed=5)
    whole, again = synth_arrays(spec), synth_arrays(spec)
    assert np.array_equal(whole.quantity, again.quantity) and np.array_equal(whole.balances, again.balances)
    part = synth_arrays(spec, first_account=65_000, n_accounts=3_000)  # spans two generation blocks
    keep = (whole.account_index >= 65_000) & (whole.account_index < 68_000)
    assert np.array_equal(part.quantity, whole.quantity[keep])
    assert np.array_equal(part.balances, whole.balances[65_000:68_000])
    assert not np.array_equal(
        synth_arrays(SynthSpec(n_accounts=1_000, seed=6)).quantity, whole.quantity[: part.quantity.size]
    )


def test_synthetic_book_shape() -> None:
    spec = SynthSpec(n_accounts=50_000, seed=1, long_share=0.6, option_seller_share=0.05, whales=5)
    book = synth_book(spec)
    option = book.instruments.is_option[book.positions.indices]
    perp_qty = book.positions.data[~option]
    assert abs(np.mean(perp_qty > 0) - 0.6) < 0.02  # long skew
    sellers = np.unique(book.position_account[option])
    assert abs(sellers.size / spec.n_accounts - 0.05) < 0.01 and np.all(book.positions.data[option] < 0)
    value = book.balances @ synth_market(book.instruments).asset_prices(book.assets)
    top = np.sort(value)[::-1]
    assert top[:5].sum() / value.sum() > 0.1  # whales and a heavy tail: concentrated
    assert np.median(value) < np.mean(value) / 2
