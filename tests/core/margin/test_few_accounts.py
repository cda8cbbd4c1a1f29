"""The few-accounts kernel (core.margin.few_accounts, the ledger's margin checks) gives the bits of
`CrossMargin.evaluate` on a Book of the same accounts, compiled and interpreted alike, and the
ledger's `risk_view` is that kernel on the state's own positions and balances."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings

from crossmargin.adapters.files import load_book
from crossmargin.core.ledger.state import book_of, risk_view
from crossmargin.core.margin import CrossMargin, CrossParams
from crossmargin.core.margin.few_accounts import few_accounts_margin
from crossmargin.core.margin.requirements import priced_records
from crossmargin.core.margin.result import RESULT_ARRAYS, MarginResult
from crossmargin.core.pricing import revalue
from crossmargin.engine.simulation import simulation_from_book
from tests.builders import RandomBook, random_books

DESK = Path(__file__).resolve().parents[3] / "examples" / "desk.yaml"


def _held(case: RandomBook) -> np.ndarray:
    book = case.book
    rows = np.repeat(np.arange(book.n_accounts), np.diff(book.positions.indptr))
    return np.column_stack([rows, book.positions.indices, book.positions.data, book.entry_price]).astype(
        np.float64
    )


def _few(case: RandomBook, mode: str | None = None) -> MarginResult:
    book = case.book
    valuation = revalue(book.instruments, case.market)
    return few_accounts_margin(
        _held(case),
        np.ascontiguousarray(book.balances),
        assets=book.assets,
        reciprocal_entry=book.instruments.reciprocal_entry,
        records=priced_records(book.instruments, valuation, CrossParams().option_margin),
        n_tiers=book.instruments.tier_floor_usd.shape[1],
        asset_price_usd=case.market.asset_prices(book.assets),
        mode=mode,
    )


def _same_bits(actual: MarginResult, expected: MarginResult) -> None:
    for name in RESULT_ARRAYS:
        assert getattr(actual, name).tobytes() == getattr(expected, name).tobytes(), name


@settings(max_examples=150, deadline=None)
@given(case=random_books(max_accounts=4))
def test_few_accounts_margin_is_the_engines_cross_margin_bit_for_bit(case: RandomBook) -> None:
    """Random books (borrowings, tiered haircuts, linear and inverse perpetuals and futures,
    options): every per-account array equals `CrossMargin.evaluate`'s byte for byte, through
    the dispatcher, the interpreted function and the compiled build."""
    engine = CrossMargin().evaluate(case.book, case.market)
    _same_bits(_few(case), engine)
    _same_bits(_few(case, "python"), engine)
    _same_bits(_few(case, "numba"), engine)


def test_risk_view_of_the_example_desk_is_the_engine_on_its_book() -> None:
    """The ledger's view (gathered from the state's dicts) of examples/desk.yaml's traders
    against the engine on `book_of` the same state: every per-account array, byte for byte."""
    sim = simulation_from_book(load_book(DESK))
    state, config = sim.state, sim.config
    traders = tuple(state.traders)
    assert len(traders) == 4
    view = risk_view(state, config, traders)
    engine = CrossMargin(config.margin).evaluate(book_of(state, config, traders), view.market)
    _same_bits(view.result, engine)
    assert np.all(view.result.initial_margin_usd > 0.0)  # every desk trader holds positions
