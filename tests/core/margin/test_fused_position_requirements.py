"""The fused per-position kernel (whole-book breakdowns) gives the numpy reference's bits; the
whole-book totals kernel over some rows gives their bits of the whole pass."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from crossmargin.core import jit
from crossmargin.core.margin import requirements
from crossmargin.core.margin.cross import CrossMargin
from crossmargin.core.margin.options_rule import OptionMarginParams, option_unit_margin
from crossmargin.core.margin.requirements import (
    UNIT_VALUE,
    book_result,
    book_totals,
    fused_position_requirements,
    instrument_records,
    position_requirements,
    priced_records,
    value_totals,
)
from crossmargin.core.margin.result import RESULT_ARRAYS, MarginResult
from crossmargin.core.margin.tier_presets import tier_preset_table
from crossmargin.core.pricing import revalue
from crossmargin.errors import InputError
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


@settings(max_examples=60, deadline=None)
@given(drawn=random_books(max_accounts=6, max_instruments=6), data=st.data())
def test_book_totals_of_some_rows_equal_their_rows_of_the_whole_book_bit_for_bit(
    drawn: RandomBook, data: st.DataObject
) -> None:
    """`book_totals(..., rows)` reads the accounts in place (the engine's tick path, no sub-book):
    the same bits as the whole-book pass at those rows, and as cross margin's evaluate on them;
    `value_totals` (the risk-based models' equity pass) gives book_totals' value sums."""
    book = drawn.book
    valuation = revalue(book.instruments, drawn.market)
    prices = drawn.market.asset_prices(book.assets)
    chosen = data.draw(st.sets(st.integers(0, book.n_accounts - 1)))
    rows = np.array(sorted(chosen), dtype=np.int64)
    whole = book_totals(book, valuation, OptionMarginParams(), prices)
    part = book_totals(book, valuation, OptionMarginParams(), prices, rows)
    for name in whole.__slots__:
        np.testing.assert_array_equal(getattr(part, name), getattr(whole, name)[rows], err_msg=name)
    # The equity pass of the risk-based models: book_totals' value sums, bit for bit.
    for subset in (None, rows):
        values = value_totals(book, valuation, prices, subset)
        expected = whole if subset is None else part
        for name in ("collateral_value_usd", "position_value_usd", "gross_value_usd"):
            np.testing.assert_array_equal(getattr(values, name), getattr(expected, name), err_msg=name)
    in_place = CrossMargin().evaluate_rows(book, drawn.market, valuation, rows)
    gathered = CrossMargin().evaluate(book.select(rows), drawn.market, valuation)
    for name in ("equity_usd", "initial_margin_usd", "maintenance_margin_usd", "margin_ratio", "bankrupt"):
        np.testing.assert_array_equal(getattr(in_place, name), getattr(gathered, name), err_msg=name)


@settings(max_examples=30, deadline=None)
@given(drawn=random_books(max_accounts=6, max_instruments=6))
def test_priced_records_are_kept_per_table_and_option_parameters_with_the_fresh_bits(
    drawn: RandomBook,
) -> None:
    """`priced_records`: the instrument records of a valuation built once per (table, option
    parameters) and kept in the valuation's memo, bit for bit a fresh build; another table or
    other parameters get their own; a fresh valuation starts empty; and book totals read them."""
    book = drawn.book
    valuation = revalue(book.instruments, drawn.market)
    params, other = OptionMarginParams(), OptionMarginParams(initial_rate=0.2)
    fresh = instrument_records(
        book.instruments, valuation, option_unit_margin(book.instruments, valuation, params)
    )
    kept = priced_records(book.instruments, valuation, params)
    assert kept.tobytes() == fresh.tobytes()
    assert priced_records(book.instruments, valuation, params) is kept
    assert priced_records(book.instruments, valuation, other) is not kept
    tiered = tier_preset_table(book.instruments, "binance")
    assert priced_records(tiered, valuation, params) is not kept
    assert revalue(book.instruments, drawn.market).memo == {}
    before = book_totals(
        book, revalue(book.instruments, drawn.market), params, drawn.market.asset_prices(book.assets)
    )
    after = book_totals(book, valuation, params, drawn.market.asset_prices(book.assets))
    assert after.maintenance_margin_usd.tobytes() == before.maintenance_margin_usd.tobytes()


@settings(max_examples=40, deadline=None)
@given(drawn=random_books(max_accounts=6, max_instruments=6), data=st.data())
def test_book_result_is_the_pooled_result_of_book_totals_bit_for_bit(
    drawn: RandomBook, data: st.DataObject
) -> None:
    """`book_result` (cross margin's result in the totals' own pass) gives `MarginResult.pooled`
    of `book_totals` bit for bit, over the whole book and over some rows, interpreted and
    compiled."""
    book = drawn.book
    valuation = revalue(book.instruments, drawn.market)
    prices = drawn.market.asset_prices(book.assets)
    rows = np.array(sorted(data.draw(st.sets(st.integers(0, book.n_accounts - 1)))), dtype=np.int64)
    for subset in (None, rows):
        totals = book_totals(book, valuation, OptionMarginParams(), prices, subset)
        expected = MarginResult.pooled(
            model="cross", **{name: getattr(totals, name) for name in totals.__slots__}
        )
        for mode in ("python", "numba"):
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(jit, "environment_mode", lambda mode=mode: mode)
                got = book_result(book, valuation, OptionMarginParams(), prices, subset, model="cross")
            for name in RESULT_ARRAYS:
                assert np.array_equal(getattr(got, name), getattr(expected, name), equal_nan=True), (
                    mode,
                    name,
                )


@settings(max_examples=10, deadline=None)
@given(drawn=random_books(max_accounts=4, max_instruments=4))
def test_book_result_refuses_an_account_that_breaks_an_invariant_by_name(drawn: RandomBook) -> None:
    """An account whose totals break the result's invariants (here a non-finite position value:
    an instrument record poisoned with NaN) is counted in the kernel's pass and refused through
    `MarginResult`'s checks, naming the field, not returned unchecked."""
    book = drawn.book
    assume(book.positions.nnz > 0)
    valuation = revalue(book.instruments, drawn.market)
    prices = drawn.market.asset_prices(book.assets)
    records = priced_records(book.instruments, valuation, OptionMarginParams()).copy()
    records[:, int(UNIT_VALUE)] = np.nan
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(requirements, "priced_records", lambda *args: records)
        with pytest.raises(InputError, match="equity_usd"):
            book_result(book, valuation, OptionMarginParams(), prices, model="cross")
