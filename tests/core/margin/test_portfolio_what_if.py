"""PortfolioSnapshot.what_if: one account after one trade equals a full evaluation of the book
with that trade applied, for every preset and for new, added-to, reduced and closed positions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crossmargin.adapters.files import load_book
from crossmargin.core.book import Book
from crossmargin.core.margin.cross import CrossMargin
from crossmargin.core.margin.isolated import IsolatedMargin
from crossmargin.core.margin.portfolio import KERNELS, PortfolioMargin, PortfolioSnapshot
from crossmargin.core.margin.presets import PORTFOLIO_PRESETS, portfolio_preset
from crossmargin.core.margin.sensitivity import SensitivityMargin
from crossmargin.errors import InputError

DESK = Path(__file__).resolve().parents[3] / "examples" / "desk.yaml"
# The what-if runs the same kernel on a one-account slice; only summation order may differ.
RELATIVE_TOLERANCE = 1e-12


def _with_trade(book: Book, row: int, instrument: int, quantity: float, price: float) -> Book:
    """The book with the trade applied through the public constructor (average entry; 1/E for
    inverse delta-one)."""
    rows = book.position_account.copy()
    cols = book.positions.indices.astype(np.int64)
    qty = book.positions.data.copy()
    entry = book.entry_price.copy()
    held = np.flatnonzero((rows == row) & (cols == instrument))
    if held.size:
        j = int(held[0])
        new_q = qty[j] + quantity
        if book.instruments.reciprocal_entry[instrument]:
            entry[j] = new_q / (qty[j] / entry[j] + quantity / price) if new_q else price
        else:
            entry[j] = (qty[j] * entry[j] + quantity * price) / new_q if new_q else price
        qty[j] = new_q
    else:
        rows, cols = np.append(rows, row), np.append(cols, instrument)
        qty, entry = np.append(qty, quantity), np.append(entry, price)
    return Book.from_arrays(
        account_ids=book.account_ids,
        assets=book.assets,
        instruments=book.instruments,
        account_index=rows,
        instrument_index=cols,
        quantity=qty,
        entry_price=entry,
        balances=book.balances,
    )


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("preset", list(PORTFOLIO_PRESETS))
def test_what_if_equals_full_evaluation_after_the_trade(preset: str, kernel: str) -> None:
    loaded = load_book(DESK)
    book, market = loaded.book, loaded.market
    model = PortfolioMargin(portfolio_preset(preset), kernel=kernel)
    snapshot = PortfolioSnapshot.build(model, book, market, kernel=kernel)
    table = book.instruments
    perp = table.index["BTC-USDC-PERP"]
    inverse = next(i for i, inv in enumerate(table.reciprocal_entry) if inv)
    row = book.account_row("basis-trader")
    held_quantity = float(book.positions.toarray()[row, perp])
    cases = [
        (perp, 2.5, 90_000.0),  # add to a held position
        (perp, -held_quantity, 88_000.0),  # close it
        (perp, -held_quantity * 2.0, 87_000.0),  # flip it
        (inverse, -1_000.0, 90_500.0),  # inverse perp, average entry in 1/E
        (table.index["BTC-USDC-PERP"], 0.0, 1.0),  # no trade
    ]
    for instrument, quantity, price in cases:
        got = snapshot.what_if(row, instrument=instrument, quantity=quantity, price=price)
        after = _with_trade(book, row, instrument, quantity, price)
        expected = model.evaluate(after, market)
        assert got.initial_margin_usd == pytest.approx(
            float(expected.initial_margin_usd[row]), rel=RELATIVE_TOLERANCE
        )
        assert got.maintenance_margin_usd == pytest.approx(
            float(expected.maintenance_margin_usd[row]), rel=RELATIVE_TOLERANCE
        )


def test_what_if_without_a_trade_is_todays_requirement() -> None:
    loaded = load_book(DESK)
    model = PortfolioMargin(portfolio_preset("deribit-pm"))
    today = model.evaluate(loaded.book, loaded.market)
    snapshot = PortfolioSnapshot.build(model, loaded.book, loaded.market)
    for row in range(loaded.book.n_accounts):
        got = snapshot.what_if(row, instrument=0, quantity=0.0, price=1.0)
        assert got.initial_margin_usd == pytest.approx(
            float(today.initial_margin_usd[row]), rel=RELATIVE_TOLERANCE
        )


# Issue 14: validate at the public API's edge. Each bad argument is an InputError naming it,
# raised before the compiled call (which would return the unchanged requirement, NaN, a numpy
# index error or a numba typing dump).
@pytest.fixture(scope="module")
def desk_snapshot() -> PortfolioSnapshot:
    loaded = load_book(DESK)
    return PortfolioSnapshot.build(
        PortfolioMargin(portfolio_preset("deribit-pm")), loaded.book, loaded.market
    )


BAD_WHAT_IFS = [
    ("instrument", {"instrument": 999}),
    ("instrument", {"instrument": -1}),
    ("instrument", {"instrument": "BTC-USDC-PERP"}),
    ("instrument", {"instrument": 1.0}),
    ("quantity", {"quantity": float("nan")}),
    ("quantity", {"quantity": float("inf")}),
    ("quantity", {"quantity": "2"}),
    ("price", {"price": float("nan")}),
    ("price", {"price": -1.0}),
    ("price", {"price": "90000"}),
    ("account_row", {"account_row": 99}),
    ("account_row", {"account_row": -1}),
    ("account_row", {"account_row": "basis-trader"}),
    ("account_row", {"account_row": True}),
]


@pytest.mark.parametrize(("field", "bad"), BAD_WHAT_IFS, ids=[f"{f}={b[f]!r}" for f, b in BAD_WHAT_IFS])
def test_what_if_rejects_a_bad_argument_naming_it(
    desk_snapshot: PortfolioSnapshot, field: str, bad: dict[str, object]
) -> None:
    arguments: dict[str, Any] = {"account_row": 0, "instrument": 0, "quantity": 1.0, "price": 90_000.0, **bad}
    account_row = arguments.pop("account_row")
    with pytest.raises(InputError) as caught:
        desk_snapshot.what_if(account_row, **arguments)
    assert caught.value.field == field


def test_what_if_rejects_a_zero_price_on_an_inverse_perpetual(desk_snapshot: PortfolioSnapshot) -> None:
    inverse = desk_snapshot.book.instruments.index["BTC-PERPETUAL"]
    with pytest.raises(InputError) as caught:
        desk_snapshot.what_if(0, instrument=inverse, quantity=10.0, price=0.0)
    assert caught.value.field == "price"


def test_what_if_accepts_numpy_integers_and_floats(desk_snapshot: PortfolioSnapshot) -> None:
    plain = desk_snapshot.what_if(0, instrument=0, quantity=1.0, price=90_000.0)
    numpy_typed = desk_snapshot.what_if(
        np.int64(0), instrument=np.int32(0), quantity=np.float64(1.0), price=np.float32(90_000.0)
    )
    assert numpy_typed.initial_margin_usd == plain.initial_margin_usd


@pytest.mark.parametrize(
    "model", [CrossMargin, IsolatedMargin, PortfolioMargin, SensitivityMargin], ids=lambda m: m.__name__
)
def test_model_rejects_params_of_the_wrong_type_on_construction(model: Any) -> None:
    with pytest.raises(InputError) as caught:
        model("x")
    assert caught.value.field == "params"
