"""RiskEngine.on_book and on_holdings (venue-wide updates from stress rounds) equal a fresh engine
bit for bit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

from crossmargin.core.margin import CrossMargin
from crossmargin.core.synthetic import SynthSpec, synth_book, synth_market
from crossmargin.engine.risk_engine import AccountUpdate, RiskEngine
from crossmargin.errors import InputError

ARRAYS = ("equity_usd", "initial_margin_usd", "maintenance_margin_usd", "available_usd", "margin_ratio")


def test_on_holdings_and_on_book_equal_a_fresh_engine() -> None:
    book = synth_book(SynthSpec(n_accounts=600, seed=9))
    market = synth_market(book.instruments)
    engine = RiskEngine(book, market, CrossMargin())
    rows = np.array([3, 17, 250, 599])
    quantity = book.positions.data.copy()
    for r in rows:  # halve these accounts' positions (one closed to an explicit zero), move cash
        quantity[book.positions.indptr[r] : book.positions.indptr[r + 1]] *= 0.5
    quantity[book.positions.indptr[3]] = 0.0
    balances = book.balances.copy()
    balances[rows, 0] += 1_000.0
    changed = dataclasses.replace(
        book,
        positions=sp.csr_array(
            (quantity, book.positions.indices, book.positions.indptr), shape=book.positions.shape
        ),
        balances=balances,
    )
    engine.on_holdings(changed, rows)
    fresh = RiskEngine(changed, market, CrossMargin()).result
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(engine.result, name), getattr(fresh, name), err_msg=name)
    coins = np.where(np.isin(changed.assets.symbols, ["BTC", "ETH"]), 0.8, 1.0)
    moved = dataclasses.replace(
        market,
        index_price_usd=market.index_price_usd * 0.8,
        asset_price_usd=market.asset_prices(changed.assets) * coins,
    )
    engine.on_book(changed, moved)
    fresh = RiskEngine(changed, moved, CrossMargin()).result
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(engine.result, name), getattr(fresh, name), err_msg=name)
    with pytest.raises(InputError, match=r"market\.asset_prices"):
        engine.on_book(changed, dataclasses.replace(moved, asset_symbols=(), asset_price_usd=np.zeros(0)))


def test_accounts_added_to_a_running_engine_equal_a_fresh_engine() -> None:
    """`add_accounts` grows the engine by empty accounts (a venue's sign-ups between ticks):
    afterwards, and after those accounts fund and trade and the market moves, every result equals
    a fresh engine's on the same book bit for bit."""
    from crossmargin.engine.risk_engine import AccountUpdate, PriceTick

    book = synth_book(SynthSpec(n_accounts=500, seed=4))
    market = synth_market(book.instruments)
    engine = RiskEngine(book, market, CrossMargin())
    engine.index_holders()  # as the venue's monitor: the holder index must grow too
    engine.on_account(  # a pending event on an old account, kept across the growth
        AccountUpdate(
            account_id=book.account_ids[7], instrument_ids=[], quantity=[], entry_price=[], balances={}
        )
    )
    grown = engine.add_accounts(["new-a", "new-b"])
    assert grown.account_rows.tolist() == [500, 501] and grown.newly_below_maintenance.size == 0
    fresh = RiskEngine(engine.book, market, CrossMargin()).result
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(engine.result, name), getattr(fresh, name), err_msg=name)
    assert engine.result.equity_usd[500] == 0.0 and engine.result.initial_margin_usd[501] == 0.0
    instrument = book.instruments.ids[int(book.positions.indices[0])]
    engine.on_account(
        AccountUpdate(
            account_id="new-b",
            instrument_ids=[instrument],
            quantity=[3.0],
            entry_price=[float(book.entry_price[0])],
            balances={book.assets.symbols[0]: 50_000.0},
        )
    )
    underlying = book.instruments.underlyings[
        int(book.instruments.underlying_index[book.positions.indices[0]])
    ]
    engine.on_tick(PriceTick(prices_usd={underlying: float(market.index_price_usd[0]) * 0.9}))
    fresh = RiskEngine(engine.book, engine.market, CrossMargin()).result
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(engine.result, name), getattr(fresh, name), err_msg=name)
    assert engine.result.initial_margin_usd[501] > 0.0
    with pytest.raises(InputError, match="already in the book"):
        engine.add_accounts(["new-a"])
    # Growth after growth (into the rows the first one left): still a fresh engine's numbers.
    for k in range(3):
        engine.add_accounts([f"later-{k}"])
        engine.on_account(
            AccountUpdate(
                account_id=f"later-{k}",
                instrument_ids=[instrument],
                quantity=[-1.0 - k],
                entry_price=[float(book.entry_price[0])],
                balances={book.assets.symbols[0]: 10_000.0 * (k + 1)},
            )
        )
    engine.on_tick(PriceTick(prices_usd={underlying: float(market.index_price_usd[0]) * 1.05}))
    fresh = RiskEngine(engine.book, engine.market, CrossMargin()).result
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(engine.result, name), getattr(fresh, name), err_msg=name)
    assert engine.book.n_accounts == 505 and engine.result.initial_margin_usd[502:].min() > 0.0


def test_a_full_recompute_keeps_a_grown_engine_in_its_buffers() -> None:
    """After a sign-up, a full recompute writes its results into the leading rows of the growth
    buffers, so the next sign-up grows them in place (no copy of every account's results) and
    the engine still equals a fresh one bit for bit."""
    from crossmargin.engine.risk_engine import PriceTick

    book = synth_book(SynthSpec(n_accounts=300, seed=9))
    market = synth_market(book.instruments)
    engine = RiskEngine(book, market, CrossMargin())
    engine.add_accounts(["new-a"])
    grown = engine.result.equity_usd
    underlying = book.instruments.underlyings[0]
    engine.recompute()
    assert np.shares_memory(engine.result.equity_usd, grown)  # the same buffer, rewritten
    after_recompute = engine.result.equity_usd
    engine.on_tick(PriceTick(prices_usd={underlying: float(market.index_price_usd[0]) * 1.1}))
    engine.add_accounts(["new-b"])
    assert np.shares_memory(engine.result.equity_usd, after_recompute)  # grown in place
    fresh = RiskEngine(engine.book, engine.market, CrossMargin()).result
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(engine.result, name), getattr(fresh, name), err_msg=name)


def test_reserved_rows_let_the_first_sign_up_grow_in_place() -> None:
    """`reserve_rows` (a server's warm-up) moves the per-account arrays into growth buffers
    without changing a number; the first sign-up then grows into them (no copy)."""
    book = synth_book(SynthSpec(n_accounts=300, seed=11))
    market = synth_market(book.instruments)
    engine = RiskEngine(book, market, CrossMargin())
    before = {name: getattr(engine.result, name).copy() for name in ARRAYS}
    engine.reserve_rows()
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(engine.result, name), before[name], err_msg=name)
    reserved_equity, reserved_balances = engine.result.equity_usd, engine.book.balances
    engine.add_accounts(["new-a"])
    assert np.shares_memory(engine.result.equity_usd, reserved_equity)
    assert np.shares_memory(engine.book.balances, reserved_balances)
    fresh = RiskEngine(engine.book, engine.market, CrossMargin()).result
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(engine.result, name), getattr(fresh, name), err_msg=name)


def test_a_batch_with_a_bad_update_changes_nothing() -> None:
    """`on_accounts` checks every update before it holds any: an unknown account, an unknown
    instrument or asset, or lists of different lengths refuse the whole batch (the field
    named); the engine's result and pending accounts stay as they were."""

    book = synth_book(SynthSpec(n_accounts=50, seed=11))
    engine = RiskEngine(book, synth_market(book.instruments), CrossMargin())
    good = AccountUpdate(
        account_id=book.account_ids[3],
        instrument_ids=[book.instruments.ids[0]],
        quantity=[2.0],
        entry_price=[100.0],
        balances={book.assets.symbols[0]: 500.0},
    )
    bad = {
        "account": dataclasses.replace(good, account_id="nobody"),
        "instrument": dataclasses.replace(good, account_id=book.account_ids[4], instrument_ids=["NOPE"]),
        "balances[XYZ]": dataclasses.replace(good, account_id=book.account_ids[4], balances={"XYZ": 1.0}),
        f"accounts[{book.account_ids[4]}]": dataclasses.replace(
            good, account_id=book.account_ids[4], quantity=[1.0, 2.0]
        ),
    }
    before = {name: np.array(getattr(engine.result, name)) for name in ("equity_usd", "initial_margin_usd")}
    for field, update in bad.items():
        with pytest.raises(InputError) as refused:
            engine.on_accounts([good, update])
        assert refused.value.field == field
        assert engine.pending_accounts == 0
        for name, values in before.items():
            assert getattr(engine.result, name).tobytes() == values.tobytes()
    engine.on_accounts([good])
    assert engine.pending_accounts == 1
