"""The long-lived engine (engine/risk_engine.py): an incremental re-margin equals a full recompute,
bit for bit, after a price tick or an account event, under every model; only the holders of what
moved are re-margined; a model switch keeps the prepared book."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossmargin.core import jit
from crossmargin.core.book import Book
from crossmargin.core.margin import (
    CrossMargin,
    CrossParams,
    IsolatedMargin,
    MarginModel,
    MarginResult,
    OptionMarginParams,
)
from crossmargin.core.margin.cross import collateral_totals
from crossmargin.core.margin.portfolio import PortfolioMargin
from crossmargin.core.margin.presets import PORTFOLIO_PRESETS, portfolio_preset, with_tier_preset
from crossmargin.core.margin.requirements import book_totals
from crossmargin.core.margin.result import RESULT_ARRAYS
from crossmargin.core.margin.sensitivity import SensitivityMargin
from crossmargin.core.margin.var import VarMargin, var_preset
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import revalue
from crossmargin.engine.risk_engine import AccountUpdate, PriceTick, RiskEngine
from crossmargin.errors import InputError
from tests.builders import RandomBook, random_books
from tests.core.var.synthetic import synthetic_history


def _models() -> dict[str, MarginModel]:
    models: dict[str, MarginModel] = {
        "cross": CrossMargin(),
        "isolated": IsolatedMargin(),
        "sensitivity": SensitivityMargin(),
        "var:hs-es975": VarMargin(
            dataclasses.replace(var_preset("hs-es975"), window_days=300), synthetic_history()
        ),
        "var:mc-es975": VarMargin(
            dataclasses.replace(var_preset("mc-es975"), window_days=300, n_draws=500), synthetic_history()
        ),
    }
    models.update({f"portfolio:{p}": PortfolioMargin(portfolio_preset(p)) for p in PORTFOLIO_PRESETS})
    return models


MODELS = _models()


def assert_same_result(actual: MarginResult, expected: MarginResult) -> None:
    """Bit for bit: the bytes, so -0.0 differs from 0.0 and NaN payloads count (assert_array_equal
    alone would let either through)."""
    for name in RESULT_ARRAYS:
        a, b = np.asarray(getattr(actual, name)), np.asarray(getattr(expected, name))
        np.testing.assert_array_equal(a, b, err_msg=name)
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name


@st.composite
def collateral_moves(draw: st.DrawFn, market: MarketState) -> MarketState:
    """The market with some collateral assets repriced; a coin that is also an underlying moves
    its index with it (one price per asset) and nothing else moves (no mark or vol). Under cross
    margin the holders of the coin with no position on it, and every holder of a stablecoin, take
    the collateral-only path; holders of a position on a moved underlying go through the model."""
    prices = market.asset_price_usd.copy()
    index = market.index_price_usd.copy()
    for k, symbol in enumerate(market.asset_symbols):
        if draw(st.booleans()):
            prices[k] *= draw(st.floats(0.05, 3.0))
            if symbol in market.underlyings:
                index[market.underlyings.index(symbol)] = prices[k]
    return dataclasses.replace(market, index_price_usd=index, asset_price_usd=prices)


@st.composite
def ticks(draw: st.DrawFn, drawn: RandomBook) -> PriceTick:
    """Some underlyings (and the collateral of the same name) move; maybe one option's vol or one
    delta-one mark moves too."""
    market = drawn.market
    moves = {
        u: float(p) * draw(st.floats(0.5, 1.5))
        for u, p in zip(market.underlyings, market.index_price_usd.tolist(), strict=True)
        if draw(st.booleans())
    }
    table = drawn.book.instruments
    vols: dict[str, float] = {}
    marks: dict[str, float] = {}
    if draw(st.booleans()) and table.n_instruments:
        i = draw(st.integers(0, table.n_instruments - 1))
        if table.is_option[i]:
            vols[table.ids[i]] = draw(st.floats(0.2, 1.5))
        elif np.isfinite(market.mark_price[i]):
            marks[table.ids[i]] = float(market.mark_price[i]) * draw(st.floats(0.97, 1.03))
    if "USDC" in drawn.book.assets.symbols and draw(st.booleans()):
        moves["USDC"] = draw(st.floats(0.9, 1.0))
    return PriceTick(prices_usd=moves, implied_vols=vols, mark_prices=marks)


def _full(engine: RiskEngine, model: MarginModel) -> MarginResult:
    return model.evaluate(engine.book, engine.market)


# 11 models x examples: fewer examples per model than the suite's default keeps CI short; the
# "thorough" hypothesis profile still searches longer on demand.
EXAMPLES_PER_MODEL = 25


@pytest.mark.parametrize("name", list(MODELS))
@settings(max_examples=EXAMPLES_PER_MODEL)
@given(data=st.data())
def test_incremental_remargin_after_ticks_equals_full_recompute(name: str, data: st.DataObject) -> None:
    model = MODELS[name]
    drawn = data.draw(random_books(max_accounts=6, max_instruments=5))
    # 1.0: never fall back to a full recompute, so the incremental path is what is tested.
    engine = RiskEngine(drawn.book, drawn.market, model, full_recompute_fraction=1.0)
    for _ in range(data.draw(st.integers(1, 3))):
        before = {n: np.array(getattr(engine.result, n)) for n in RESULT_ARRAYS}
        tick = data.draw(ticks(drawn))
        change = engine.on_tick(tick)
        assert_same_result(engine.result, _full(engine, model))
        untouched = np.setdiff1d(np.arange(drawn.book.n_accounts), change.account_rows)
        for n in RESULT_ARRAYS:  # the accounts not re-margined kept their numbers
            np.testing.assert_array_equal(getattr(engine.result, n)[untouched], before[n][untouched])


@pytest.mark.parametrize("name", list(MODELS))
@settings(max_examples=EXAMPLES_PER_MODEL)
@given(data=st.data())
def test_collateral_only_and_mixed_ticks_equal_full_recompute(name: str, data: st.DataObject) -> None:
    """Collateral repriced alone (the cross fast path: no model run for accounts holding no moved
    position), or together with a tick that moves underlyings (some accounts through the model,
    the others through the fast path), or an account event pending: bit for bit a full recompute."""
    model = MODELS[name]
    drawn = data.draw(random_books(max_accounts=6, max_instruments=5))
    engine = RiskEngine(drawn.book, drawn.market, model, full_recompute_fraction=1.0)
    for _ in range(data.draw(st.integers(1, 3))):
        if data.draw(st.booleans()):  # mixed: underlyings (and same-name collateral) first
            engine.on_tick(data.draw(ticks(drawn)))
        if data.draw(st.booleans()):  # a pending account event, re-margined in full at the tick
            row = data.draw(st.integers(0, drawn.book.n_accounts - 1))
            book = drawn.book
            engine.on_account(
                AccountUpdate(
                    account_id=book.account_ids[row],
                    instrument_ids=[],
                    quantity=[],
                    entry_price=[],
                    balances=dict(zip(book.assets.symbols, book.balances[row][::-1].tolist(), strict=True)),
                )
            )
        change = engine.on_market(data.draw(collateral_moves(engine.market)))
        assert_same_result(engine.result, _full(engine, model))
        if not isinstance(model, CrossMargin):
            assert change.collateral_only_rows.size == 0  # unknown or unsafe models: in full


@given(drawn=random_books(max_accounts=6, max_instruments=5))
def test_cross_reprices_collateral_only_accounts_without_the_model(drawn: RandomBook) -> None:
    """Under cross margin a collateral-only move takes every holder of the moved asset through
    the fast path, with the numbers of a full recompute; a risk-based model runs in full."""
    book = drawn.book
    k = book.assets.index["USDC"]  # a stablecoin, no underlying: its move is collateral only
    prices = drawn.market.asset_price_usd.copy()
    prices[k] *= 0.7
    moved = drawn.market.with_asset_prices(prices)
    holders = np.flatnonzero(book.balances[:, k] != 0.0)
    engine = RiskEngine(book, drawn.market, CrossMargin(), full_recompute_fraction=1.0)
    change = engine.on_market(moved)
    np.testing.assert_array_equal(change.collateral_only_rows, holders)
    np.testing.assert_array_equal(change.account_rows, holders)
    assert_same_result(engine.result, CrossMargin().evaluate(book, moved))
    pm = PortfolioMargin(portfolio_preset("deribit-pm"))
    change = RiskEngine(book, drawn.market, pm, full_recompute_fraction=1.0).on_market(moved)
    assert change.collateral_only_rows.size == 0
    np.testing.assert_array_equal(change.account_rows, holders)


@given(drawn=random_books(max_accounts=8, max_instruments=6), fraction=st.sampled_from([0.0, 0.25, 0.5, 1.0]))
def test_a_collateral_move_re_margins_the_whole_book_exactly_when_its_holders_pass_the_fraction(
    drawn: RandomBook, fraction: float
) -> None:
    """A move of one collateral asset alone touches its holders: the engine re-margins the whole
    book when they are more than `full_recompute_fraction` of the accounts (decided from the
    holder index's column counts before any mask is built), only them otherwise, with a full
    recompute's numbers either way."""
    book = drawn.book
    k = book.assets.index["USDC"]
    prices = drawn.market.asset_price_usd.copy()
    prices[k] *= 0.7
    moved = drawn.market.with_asset_prices(prices)
    holders = np.flatnonzero(book.balances[:, k] != 0.0)
    engine = RiskEngine(book, drawn.market, CrossMargin(), full_recompute_fraction=fraction)
    change = engine.on_market(moved)
    assert change.full_recompute == (holders.size > fraction * book.n_accounts)
    expected = np.arange(book.n_accounts) if change.full_recompute else holders
    np.testing.assert_array_equal(change.account_rows, expected)
    assert_same_result(engine.result, CrossMargin().evaluate(book, moved))


@settings(max_examples=50)
@given(drawn=random_books(max_accounts=8, max_instruments=6), data=st.data())
def test_collateral_totals_are_the_book_kernels_bits(drawn: RandomBook, data: st.DataObject) -> None:
    """The fast path's collateral and gross sums against requirements.book_totals, any rows:
    gross only decides bankruptcy at the EQUITY_ZERO_TOLERANCE edge, which random ticks rarely
    reach, so it is held equal here directly."""
    book = drawn.book
    valuation = revalue(book.instruments, drawn.market)
    prices = drawn.market.asset_prices(book.assets)
    totals = book_totals(book, valuation, OptionMarginParams(), prices)
    rows = np.array(
        sorted(data.draw(st.sets(st.integers(0, book.n_accounts - 1), max_size=book.n_accounts))),
        dtype=np.int64,
    )
    for mode in ("python", "numba"):  # core.jit: interpreted and compiled, the same bits
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(jit, "environment_mode", lambda m=mode: m)
            collateral, gross = collateral_totals(book, valuation, prices, rows)
        assert collateral.tobytes() == totals.collateral_value_usd[rows].tobytes(), mode
        assert gross.tobytes() == totals.gross_value_usd[rows].tobytes(), mode


@pytest.mark.parametrize("name", list(MODELS))
@settings(max_examples=EXAMPLES_PER_MODEL)
@given(data=st.data())
def test_incremental_remargin_after_account_events_equals_full_recompute(
    name: str, data: st.DataObject
) -> None:
    model = MODELS[name]
    drawn = data.draw(random_books(max_accounts=5, max_instruments=5))
    other = data.draw(random_books(max_accounts=3, max_instruments=5))  # a source of new positions
    book = drawn.book
    engine = RiskEngine(book, drawn.market, model, full_recompute_fraction=1.0)
    table = book.instruments
    for _ in range(data.draw(st.integers(1, 4))):
        row = data.draw(st.integers(0, book.n_accounts - 1))
        held = data.draw(st.lists(st.integers(0, table.n_instruments - 1), unique=True, max_size=3))
        donor = other.book
        quantity = [data.draw(st.floats(-50.0, 50.0).filter(lambda q: abs(q) > 1e-3)) for _ in held]
        entry = [float(drawn.market.index_price_usd[table.underlying_index[i]]) for i in held]
        entry = [0.0 if table.is_option[i] else e for i, e in zip(held, entry, strict=True)]
        donor_row = dict(zip(donor.assets.symbols, donor.balances[0].tolist(), strict=True))
        balances = {s: donor_row.get(s, 0.0) for s in book.assets.symbols}
        change = engine.on_account(
            AccountUpdate(
                account_id=book.account_ids[row],
                instrument_ids=[table.ids[i] for i in held],
                quantity=quantity,
                entry_price=entry,
                balances=balances,
            )
        )
        assert change.account_rows.tolist() == [row]
        if data.draw(st.booleans()):
            engine.on_tick(data.draw(ticks(drawn)))
        assert_same_result(engine.result, _full(engine, model))
    # And the book the engine folds its events into is the one a fresh engine computes the same on.
    assert_same_result(engine.result, RiskEngine(engine.book, engine.market, model).result)


@given(drawn=random_books(max_accounts=6, max_instruments=5))
def test_a_tick_re_margins_only_the_holders_of_what_moved(drawn: RandomBook) -> None:
    book = drawn.book
    engine = RiskEngine(book, drawn.market, CrossMargin(), full_recompute_fraction=1.0)
    moved = book.instruments.underlyings[0]
    change = engine.on_tick(PriceTick(prices_usd={moved: float(drawn.market.index_price_usd[0]) * 0.9}))
    on_moved = book.instruments.underlying_index[book.positions.indices] == 0
    position_holders = set(book.position_account[on_moved].tolist())
    holders = set(position_holders)
    if moved in book.assets.index:
        holders |= set(np.flatnonzero(book.balances[:, book.assets.index[moved]] != 0.0).tolist())
    assert set(change.account_rows.tolist()) == holders and not change.full_recompute
    assert set(change.collateral_only_rows.tolist()) == holders - position_holders
    # Every touched account counts towards a full recompute: under cross margin a collateral-only
    # account read in place costs the same scattered memory round trip as a position holder.
    halfway = RiskEngine(book, drawn.market, CrossMargin(), full_recompute_fraction=0.5)
    change = halfway.on_tick(PriceTick(prices_usd={moved: float(drawn.market.index_price_usd[0]) * 0.8}))
    assert change.full_recompute == (len(holders) > 0.5 * book.n_accounts)
    pm = RiskEngine(
        book, drawn.market, PortfolioMargin(portfolio_preset("span")), full_recompute_fraction=0.5
    )
    change = pm.on_tick(PriceTick(prices_usd={moved: float(drawn.market.index_price_usd[0]) * 0.8}))
    assert change.full_recompute == (len(holders) > 0.5 * book.n_accounts)


@given(drawn=random_books(max_accounts=4, max_instruments=5))
def test_a_model_switch_keeps_the_prepared_book(drawn: RandomBook) -> None:
    engine = RiskEngine(drawn.book, drawn.market, PortfolioMargin(portfolio_preset("deribit-pm")))
    runs = engine.book.position_runs  # built once per book by the portfolio kernel
    engine.use_model(PortfolioMargin(portfolio_preset("span")))
    assert engine.book is drawn.book and engine.book.position_runs is runs
    engine.use_model(CrossMargin(CrossParams(tier_preset="binance")))  # a parameter, not a new book
    assert engine.book is drawn.book and engine.book.position_runs is runs
    tiered = with_tier_preset(drawn.book, "binance")  # the same tiers applied to the book itself
    assert_same_result(engine.result, CrossMargin().evaluate(tiered, drawn.market))


@given(drawn=random_books(max_accounts=4, max_instruments=4))
def test_a_new_valuation_time_re_margins_everything(drawn: RandomBook) -> None:
    engine = RiskEngine(drawn.book, drawn.market, CrossMargin())
    change = engine.on_tick(PriceTick(valuation_ns=drawn.market.valuation_ns + 3_600 * 10**9))
    assert change.full_recompute and change.account_rows.size == drawn.book.n_accounts
    later = dataclasses.replace(drawn.market, valuation_ns=drawn.market.valuation_ns + 3_600 * 10**9)
    assert_same_result(engine.result, CrossMargin().evaluate(drawn.book, later))


@given(drawn=random_books(max_accounts=3, max_instruments=3))
def test_a_tick_naming_an_unknown_symbol_is_refused_and_changes_nothing(drawn: RandomBook) -> None:
    engine = RiskEngine(drawn.book, drawn.market, CrossMargin())
    before = engine.market
    with pytest.raises(InputError, match=r"tick\.prices_usd\[DOGE\]"):
        engine.on_tick(PriceTick(prices_usd={"DOGE": 0.1}))
    assert engine.market is before
    with pytest.raises(InputError, match=r"tick\.implied_vols"):
        engine.on_tick(PriceTick(implied_vols={"NOPE-1": 0.5}))


@given(drawn=random_books(max_accounts=2, max_instruments=3))
def test_an_engine_refuses_a_market_of_another_table(drawn: RandomBook) -> None:
    market = MarketState.build(
        drawn.book.instruments,
        valuation_ns=drawn.market.valuation_ns,
        index_prices=dict(zip(drawn.market.underlyings, drawn.market.index_price_usd.tolist(), strict=True)),
    )
    wrong = dataclasses.replace(market, underlyings=("XYZ",) * len(market.underlyings))
    with pytest.raises(InputError, match=r"market\.underlyings"):
        RiskEngine(drawn.book, wrong, CrossMargin())


def _account_update(
    draw: st.DrawFn, drawn: RandomBook, row: int
) -> tuple[AccountUpdate, list[tuple[int, float, float]]]:
    """A random new state of account `row`: 0-3 positions and the balances of another row."""
    book, table = drawn.book, drawn.book.instruments
    held = draw(st.lists(st.integers(0, table.n_instruments - 1), unique=True, max_size=3))
    quantity = [draw(st.floats(-50.0, 50.0).filter(lambda q: abs(q) > 1e-3)) for _ in held]
    entry = [
        0.0 if table.is_option[i] else float(drawn.market.index_price_usd[table.underlying_index[i]])
        for i in held
    ]
    donor = draw(st.integers(0, book.n_accounts - 1))
    update = AccountUpdate(
        account_id=book.account_ids[row],
        instrument_ids=[table.ids[i] for i in held],
        quantity=quantity,
        entry_price=entry,
        balances=dict(zip(book.assets.symbols, book.balances[donor].tolist(), strict=True)),
    )
    return update, sorted(zip(held, quantity, entry, strict=True))


@pytest.mark.parametrize("name", ["cross", "portfolio:deribit-pm", "sensitivity"])
@settings(max_examples=EXAMPLES_PER_MODEL)
@given(data=st.data())
def test_streams_of_events_and_ticks_with_folds_equal_a_fresh_book(name: str, data: st.DataObject) -> None:
    """Account events one by one and in batches (`on_accounts`), ticks (with the default
    fractions' full recomputes, or none) and folds (at every second pending account here), the
    engine's book never asked for (asking folds): after each step its result equals the model on
    a book built afresh from every account's current holdings, bit for bit. Covers the full
    recompute with pending accounts over their own books, the row path with some rows pending,
    and the holder index kept across folds (folded rows re-margined)."""
    model = MODELS[name]
    drawn = data.draw(random_books(max_accounts=8, max_instruments=5))
    book = drawn.book
    holdings = {
        a: sorted(
            zip(
                book.positions.indices[book.positions.indptr[a] : book.positions.indptr[a + 1]].tolist(),
                book.positions.data[book.positions.indptr[a] : book.positions.indptr[a + 1]].tolist(),
                book.entry_price[book.positions.indptr[a] : book.positions.indptr[a + 1]].tolist(),
                strict=True,
            )
        )
        for a in range(book.n_accounts)
    }
    balances = np.array(book.balances)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("crossmargin.engine.risk_engine.MAX_PENDING", 1)
        fraction = data.draw(st.sampled_from([None, 1.0]))  # the default's full recomputes, or never
        engine = RiskEngine(book, drawn.market, model, full_recompute_fraction=fraction)
        for _ in range(data.draw(st.integers(1, 12))):
            if data.draw(st.booleans()):  # a batch of events (an account may come twice: the last counts)
                batch = []
                for row in data.draw(st.lists(st.integers(0, book.n_accounts - 1), min_size=1, max_size=3)):
                    update, holdings[row] = _account_update(data.draw, drawn, row)
                    balances[row] = [update.balances[s] for s in book.assets.symbols]
                    batch.append(update)
                if len(batch) == 1 and data.draw(st.booleans()):
                    engine.on_account(batch[0])
                else:
                    engine.on_accounts(batch)
            else:
                engine.on_tick(data.draw(ticks(drawn)))
            fresh = Book.from_arrays(
                account_ids=book.account_ids,
                assets=book.assets,
                instruments=book.instruments,
                account_index=[a for a in range(book.n_accounts) for _ in holdings[a]],
                instrument_index=[i for a in range(book.n_accounts) for i, _, _ in holdings[a]],
                quantity=[q for a in range(book.n_accounts) for _, q, _ in holdings[a]],
                entry_price=[e for a in range(book.n_accounts) for _, _, e in holdings[a]],
                balances=balances,
            )
            assert_same_result(engine.result, model.evaluate(fresh, engine.market))


def _index_sets(holders: object) -> tuple[list[set[int]], list[set[int]], list[int]]:
    """A holder index as plain sets: each instrument's and each asset's holders, and the
    accounts per underlying (the order within a column is not part of the index)."""
    columns = []
    for matrix in (holders.instrument_holders, holders.asset_holders):  # type: ignore[attr-defined]
        columns.append(
            [
                set(matrix.indices[matrix.indptr[c] : matrix.indptr[c + 1]].tolist())
                for c in range(matrix.shape[1])
            ]
        )
    return columns[0], columns[1], holders.underlying_accounts.tolist()  # type: ignore[attr-defined]


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_holder_index_kept_across_folds_equals_one_built_afresh(data: st.DataObject) -> None:
    """Folds replace the folded accounts' entries in the holder index (no rebuild, no account
    counted as holding everything): after every fold, every instrument's and asset's holders and
    the accounts per underlying equal the index built from the folded book."""
    from crossmargin.engine.risk_engine import _Holders

    drawn = data.draw(random_books(max_accounts=8, max_instruments=5))
    book = drawn.book
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("crossmargin.engine.risk_engine.MAX_PENDING", 1)
        engine = RiskEngine(book, drawn.market, CrossMargin())
        engine.index_holders()
        for _ in range(data.draw(st.integers(1, 6))):
            rows = data.draw(st.lists(st.integers(0, book.n_accounts - 1), min_size=1, max_size=4))
            engine.on_accounts([_account_update(data.draw, drawn, row)[0] for row in rows])
            folded = engine.book  # asking for the book folds the pending accounts
            kept = engine._holder_index
            assert kept is not None  # kept across the fold, not dropped for a rebuild
            assert _index_sets(kept) == _index_sets(_Holders.of(folded))
