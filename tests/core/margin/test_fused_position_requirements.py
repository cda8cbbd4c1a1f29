"""The fused per-position kernel (whole-book breakdowns) gives the numpy reference's bits."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings

from crossmargin.core.margin.options_rule import OptionMarginParams, option_unit_margin
from crossmargin.core.margin.requirements import fused_position_requirements, position_requirements
from crossmargin.core.pricing import revalue
from tests.builders import RandomBook, random_books


@settings(max_examples=60, deadline=None)
@given(drawn=random_books(max_accounts=6, max_instruments=6))
def test_fused_position_requirements_equal_the_numpy_reference_bit_for_bit(drawn: RandomBook) -> None:
    book = drawn.book
    valuation = revalue(book.instruments, drawn.market)
    option_margin = option_unit_margin(book.instruments, valuation, OptionMarginParams())
    positions = {
        "instrument_index": book.positions.indices.astype(np.int64),
        "quantity": book.positions.data,
        "entry_price": book.entry_price,
    }
    reference = position_requirements(book, valuation, option_margin, **positions)
    fused = fused_position_requirements(book, valuation, option_margin, **positions)
    for name in ("value_usd", "unrealised_pnl_usd", "initial_margin_usd", "maintenance_margin_usd"):
        np.testing.assert_array_equal(getattr(fused, name), getattr(reference, name), err_msg=name)
