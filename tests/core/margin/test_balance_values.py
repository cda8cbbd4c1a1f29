"""The fused balance valuation (`balance_values_usd`, the VaR and sensitivity models' hot path)
against the numpy reference `collateral.value_collateral`: holdings through progressive haircut
tiers give its bits; borrowings (b·P·w, the kernels' order of the product) agree to the last bit
or two; interpreted and compiled give the same bits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from crossmargin.core import jit
from crossmargin.core.collateral import value_collateral
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
            results.append(balance_values_usd(book.balances, book.assets, prices))
    interpreted, compiled = results
    assert np.array_equal(interpreted, compiled)
    held = book.balances >= 0.0
    np.testing.assert_array_equal(compiled[held], reference[held])
    np.testing.assert_allclose(compiled[~held], reference[~held], rtol=4e-16, atol=0.0)


@settings(max_examples=5, deadline=None)
@given(drawn=random_books(max_accounts=3, max_instruments=2))
def test_a_balance_matrix_of_the_wrong_shape_is_refused(drawn: RandomBook) -> None:
    book = drawn.book
    with pytest.raises(InputError, match="balances"):
        balance_values_usd(book.balances[:, :-1], book.assets, np.ones(book.assets.n_assets))
