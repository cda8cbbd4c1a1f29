"""`RiskEngine.warm_up` / `Monitor.warm_up`: after it, no tick, sign-up, account event or fold of
pending events loads or compiles a kernel build. Each first use of a build costs a tick its load
from numba's disk cache (5-30 ms, once a process) or, on a fresh install, its compile (0.3-1.3 s
at 1M accounts): the
tick p99 a venue reports. Run in a child process, whose builds are its own (the test process has
loaded many, by other tests), counting every numba dispatcher's compiled overloads."""

from __future__ import annotations

import numpy as np

from crossmargin.core.book import Book
from crossmargin.core.synthetic import SynthSpec, synth_book
from tests.children import run_child

CHILD = """
import gc, json, sys
import numpy as np
from numba.core.dispatcher import Dispatcher
from crossmargin.core.margin import CrossMargin
from crossmargin.core.margin.portfolio import PortfolioMargin
from crossmargin.core.margin.presets import portfolio_preset
from crossmargin.core.synthetic import SynthSpec, synth_book, synth_market
from crossmargin.engine.risk_engine import AccountUpdate, PriceTick, RiskEngine


def builds():
    # Every compiled overload of every numba dispatcher in the process, by function name.
    out = {}
    for d in gc.get_objects():
        if isinstance(d, Dispatcher) and d.overloads:
            name = d.py_func.__qualname__
            out[name] = out.get(name, 0) + len(d.overloads)
    return out


def account_update(book, row, scale):
    lo, hi = book.positions.indptr[row], book.positions.indptr[row + 1]
    return AccountUpdate(
        account_id=book.account_ids[row],
        instrument_ids=[book.instruments.ids[i] for i in book.positions.indices[lo:hi]],
        quantity=list(book.positions.data[lo:hi] * scale),
        entry_price=list(book.entry_price[lo:hi]),
        balances={book.assets.symbols[0]: 1000.0},
    )


book = synth_book(SynthSpec(n_accounts=int(sys.argv[1]), seed=7))
market = synth_market(book.instruments)
seen = {}
for name, model in (("cross", CrossMargin()), ("portfolio", PortfolioMargin(portfolio_preset("deribit-pm")))):
    # The default engine recomputes the whole book on these ticks (each underlying is held by
    # most accounts); one that never does reads the holders in place (the row path).
    engines = [RiskEngine(book, market, model), RiskEngine(book, market, model, full_recompute_fraction=1.0)]
    for engine in engines:
        engine.reserve_rows()
        engine.warm_up()
    warm = builds()
    touched = []
    for engine in engines:
        prices = dict(zip(market.underlyings, market.index_price_usd.tolist()))
        for round_ in range(2):
            for underlying in market.underlyings:
                prices[underlying] *= 1.01 if round_ == 0 else 0.99
                change = engine.on_tick(PriceTick(prices_usd={underlying: prices[underlying]}))
                touched.append((int(change.account_rows.size), bool(change.full_recompute)))
            engine.add_accounts([f"signup-{round_}-{k}" for k in range(3)])
            change = engine.on_account(account_update(engine.book, 5 + round_, 1.5))
            touched.append((int(change.account_rows.size), bool(change.full_recompute)))
            assert engine.book.n_accounts  # asking for the book folds the pending accounts
    after = builds()
    seen[name] = {
        "new": {k: after.get(k, 0) - warm.get(k, 0) for k in after if after.get(k, 0) != warm.get(k, 0)},
        "touched": touched,
    }
print(json.dumps(seen))
"""


def test_no_kernel_build_is_first_used_after_warm_up() -> None:
    seen = run_child(CHILD, "20000", kernel="simd")
    for model in ("cross", "portfolio"):
        touched = [tuple(t) for t in seen[model]["touched"]]
        # Every path ran: whole-book recomputes, ticks re-margining the holders in place, one account.
        assert any(full for _, full in touched)
        assert any(not full and n > 5000 for n, full in touched) and (1, False) in touched
        assert seen[model]["new"] == {}, f"{model}: builds first used after warm_up: {seen[model]['new']}"


def test_a_books_arrays_are_read_only_before_and_after_growth() -> None:
    # numba types a read-only array apart from a writable one: a book whose indptr was writable
    # until its first growth (grown ones are read-only views of their buffers) loaded a second
    # build of every cross and position-run kernel inside a tick; sub-books are fresh arrays.
    book = synth_book(SynthSpec(n_accounts=50, seed=3))
    grown = book.with_new_accounts(["x", "y"])
    for b in (book, grown, grown.with_new_accounts(["z"]), book.select(np.arange(10))):
        assert isinstance(b, Book)
        for array in (b.positions.indptr, b.positions.indices, b.positions.data, b.entry_price, b.balances):
            assert not array.flags.writeable
        assert not b.balance_csr[0].flags.writeable
    assert np.array_equal(grown.positions.indptr[: book.n_accounts + 1], book.positions.indptr)
