"""The book's haircut units (`collateral.haircut_units`, kept by `Book.haircut_units`) and the
values every fused kernel and the VaR and sensitivity models take from them, against the numpy
reference `collateral.value_collateral`: holdings give its bits; borrowings ((b·w)·P here,
b·(P·w) there) agree to the last bit or two; interpreted and compiled give the same bits."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings

from crossmargin.core import jit
from crossmargin.core.collateral import haircut_units, value_collateral
from crossmargin.core.margin.requirements import balance_values_usd
from crossmargin.errors import InputError
from tests.builders import RandomBook, random_books


@settings(max_examples=60, deadline=None)
@given(drawn=random_books(max_accounts=6, max_instruments=4))
def test_balance_values_equal_the_numpy_reference(drawn: RandomBook) -> None:
    book = drawn.book
    prices = drawn.market.asset_prices(book.assets)
    reference = value_collateral(book.balances, book.assets, prices).value_usd
    results = []
    for mode in ("python", "numba"):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(jit, "environment_mode", lambda mode=mode: mode)
            fresh = dataclasses.replace(book)  # a new memo: the units are computed in this mode
            results.append(balance_values_usd(fresh, prices))
    interpreted, compiled = results
    assert np.array_equal(interpreted, compiled)
    held = book.balances >= 0.0
    np.testing.assert_array_equal(compiled[held], reference[held])
    np.testing.assert_allclose(compiled[~held], reference[~held], rtol=4e-16, atol=0.0)


@settings(max_examples=20, deadline=None)
@given(drawn=random_books(max_accounts=4, max_instruments=2))
def test_units_are_kept_by_the_book_and_follow_its_balances(drawn: RandomBook) -> None:
    book = drawn.book
    units = book.haircut_units
    assert book.haircut_units is units  # computed once
    assert not units.flags.writeable
    np.testing.assert_array_equal(units, haircut_units(book.balances, book.assets))
    doubled = book.with_balances(book.balances * 2.0)
    np.testing.assert_array_equal(doubled.haircut_units, haircut_units(book.balances * 2.0, book.assets))


@settings(max_examples=5, deadline=None)
@given(drawn=random_books(max_accounts=3, max_instruments=2))
def test_prices_of_the_wrong_shape_are_refused(drawn: RandomBook) -> None:
    book = drawn.book
    with pytest.raises(InputError, match="asset_price_usd"):
        balance_values_usd(book, np.ones(book.assets.n_assets + 1))
    with pytest.raises(InputError, match="balances"):
        haircut_units(book.balances[:, :-1], book.assets)
