"""core.jit: every kernel gives the same bits interpreted as compiled (hypothesis books), and the
mode variable is read strictly. The portfolio kernel's three builds are compared in
tests/core/margin/test_portfolio_backends.py, the whole reports in tests/golden (both ways)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossmargin.core import jit
from crossmargin.core.collateral import haircut_units
from crossmargin.core.jit import prange
from crossmargin.core.margin.options_rule import OptionMarginParams, option_unit_margin
from crossmargin.core.margin.requirements import (
    book_totals,
    csr_totals,
    fused_position_requirements,
    instrument_records,
)
from crossmargin.core.position_runs import position_runs
from crossmargin.core.pricing import black76_scenario_values, revalue
from crossmargin.core.var.measures import book_tail_measures
from crossmargin.errors import InputError
from tests.builders import RandomBook, random_books

MODES = ("python", "numba")


@contextmanager
def _mode(mode: str) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jit, "environment_mode", lambda: mode)
        yield


def _both(run: Callable[[], Any]) -> list[Any]:
    """run() interpreted, then compiled."""
    results = []
    for mode in MODES:
        with _mode(mode):
            results.append(run())
    return results


def _same_bits(interpreted: Any, compiled: Any) -> None:
    for name in interpreted.__slots__:
        assert np.array_equal(getattr(interpreted, name), getattr(compiled, name), equal_nan=True), name


@settings(max_examples=30, deadline=None)
@given(drawn=random_books())
def test_book_totals_and_position_requirements_same_bits_both_ways(drawn: RandomBook) -> None:
    book = drawn.book
    valuation = revalue(book.instruments, drawn.market)
    prices = drawn.market.asset_prices(book.assets)
    _same_bits(*_both(lambda: book_totals(book, valuation, OptionMarginParams(), prices)))
    option_margin = option_unit_margin(book.instruments, valuation, OptionMarginParams())
    positions = {
        "instrument_index": book.positions.indices.astype(np.int64),
        "quantity": book.positions.data,
        "entry_price": book.entry_price,
    }
    _same_bits(*_both(lambda: fused_position_requirements(book, valuation, option_margin, **positions)))


@settings(max_examples=30, deadline=None)
@given(drawn=random_books())
def test_serial_build_of_the_cross_kernel_gives_the_parallel_bits(drawn: RandomBook) -> None:
    """`Kernel.serial` (the ledger's margin checks) against the threaded build and the Book path."""
    book = drawn.book
    valuation = revalue(book.instruments, drawn.market)
    prices = drawn.market.asset_prices(book.assets)
    option_margin = option_unit_margin(book.instruments, valuation, OptionMarginParams())
    with _mode("numba"):
        threaded = book_totals(book, valuation, OptionMarginParams(), prices)
        serial = csr_totals(
            indptr=book.positions.indptr.astype(np.int64),
            indices=book.positions.indices,
            quantity=book.positions.data,
            entry_term=book.entry_term,
            records=instrument_records(book.instruments, valuation, option_margin),
            n_tiers=book.instruments.tier_floor_usd.shape[1],
            haircut_units=haircut_units(book.balances, book.assets, serial=True),
            asset_price_usd=prices,
            serial=True,
        )
    _same_bits(threaded, serial)
    assert "parallel" not in book_kernel_serial().options
    assert book_kernel_serial() is book_kernel_serial()  # one build per process


def book_kernel_serial() -> jit.Kernel[..., None]:
    from crossmargin.core.margin.requirements import _book_kernel

    return _book_kernel.serial()


@settings(max_examples=30, deadline=None)
@given(drawn=random_books(max_accounts=6, max_instruments=8))
def test_position_runs_same_both_ways(drawn: RandomBook) -> None:
    book = drawn.book
    p = book.positions
    general = frozenset(book.instruments.underlyings[:1])
    _same_bits(
        *_both(
            lambda: position_runs(p.indptr, p.indices, p.data, book.entry_price, book.instruments, general)
        )
    )


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 6), n_scenarios=st.integers(1, 40))
def test_black76_scenario_values_same_bits_both_ways(seed: int, n: int, n_scenarios: int) -> None:
    rng = np.random.default_rng(seed)
    arguments = {
        "forward": rng.uniform(50.0, 150.0, n),
        "factor": rng.uniform(0.5, 1.5, (n, n_scenarios)),
        "strike": rng.uniform(50.0, 150.0, n),
        "years": rng.uniform(0.01, 2.0, n),
        "vol": rng.uniform(0.05, 2.0, (n, n_scenarios)),
        "rate": 0.03,
        "sign": rng.choice([-1.0, 1.0], n),
    }
    interpreted, compiled = _both(lambda: black76_scenario_values(**arguments))
    # Not the same bits: CPython's math and numba's LLVM differ in the last ulp of log (seen on
    # ~0.1 % of arguments), which moves a price by a few ulps of the forward (measured: at most
    # 2.6e-16 of the forward, 5.6e-14 relative, on 100,000 random prices).
    scale = float(np.max(arguments["forward"] * arguments["factor"].max(axis=1)))
    np.testing.assert_allclose(interpreted, compiled, rtol=1e-12, atol=1e-15 * scale)


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_accounts=st.integers(1, 5),
    n_groups=st.integers(1, 3),
    dtype=st.sampled_from([np.float64, np.float32]),
)
def test_tail_measures_same_bits_both_ways(seed: int, n_accounts: int, n_groups: int, dtype: type) -> None:
    rng = np.random.default_rng(seed)
    n_instruments, n_assets = 4, 2
    sizes = rng.integers(1, 300, n_groups)
    counts = rng.integers(0, 4, n_accounts)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    nnz = int(indptr[-1])
    n_scenarios = int(sizes.sum())
    arguments = {
        "indptr": indptr,
        "indices": rng.integers(0, n_instruments, nnz).astype(np.int64),
        "quantity": rng.normal(size=nnz),
        "entry_term": rng.uniform(0.5, 2.0, nnz),
        "d_unit": rng.normal(size=(n_instruments, n_scenarios)).astype(dtype),
        "d_coef": rng.normal(size=(n_instruments, n_scenarios)).astype(dtype),
        "has_coefficient": rng.random(n_instruments) < 0.5,
        "collateral_usd": rng.normal(size=(n_accounts, n_assets)).astype(dtype),
        "d_asset": rng.normal(size=(n_assets, n_scenarios)).astype(dtype),
        "group": np.repeat(np.arange(n_groups), sizes).astype(np.int64),
        "tail_counts": np.minimum(rng.integers(1, 20, n_groups), sizes).astype(np.int64),
    }
    _same_bits(*_both(lambda: book_tail_measures(**arguments)))


def test_auto_interprets_until_the_budget_is_spent_then_compiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ski rental: calls run interpreted while their work, summed, fits the process's budget; a
    call that does not fit, and every call after the budget is spent, compiled."""
    monkeypatch.setattr(jit._Budget, "spent_us", 0)
    budget = jit.INTERPRET_BUDGET_US
    assert not jit.interpret(budget + 1, "auto")  # too big on its own: spends nothing
    assert jit.interpret(budget // 2, "auto")
    assert jit.interpret(budget - budget // 2, "auto")  # exactly the budget
    assert not jit.interpret(1, "auto")
    assert jit.interpret(10**12, "python")  # the named modes spend no budget
    for compiled in ("simd", "numba"):
        assert not jit.interpret(0, compiled)


@pytest.mark.parametrize(("value", "mode"), [("", "auto"), (" Python ", "python"), ("numba", "numba")])
def test_the_mode_variable_names_the_mode(value: str, mode: str) -> None:
    assert jit.mode_from_environment({jit.KERNEL_VARIABLE: value}) == mode
    assert jit.mode_from_environment({}) == "auto"


def test_an_unknown_mode_is_refused_naming_the_variable() -> None:
    with pytest.raises(InputError, match="choose auto, python, simd or numba") as raised:
        jit.mode_from_environment({jit.KERNEL_VARIABLE: "jit"})
    assert raised.value.field == "CROSSMARGIN_KERNEL"


def test_a_kernel_called_directly_runs_as_python_and_compiles_on_request() -> None:
    @jit.kernel(parallel=True)
    def total(values: np.ndarray) -> float:
        out = 0.0
        for n in prange(values.shape[0]):
            out += values[n]
        return out

    values = np.arange(10.0)
    assert total(values) == 45.0  # interpreted: prange is range
    compiled = total.compiled()
    assert compiled(values) == 45.0
    assert compiled is total.compiled()  # built once
    assert total.for_work(1, "python") is total.python
    assert total.for_work(jit.PARALLEL_MIN_WORK_US, "numba") is compiled
    # Small work runs the serial build (no thread pool to wake, none left spinning after it).
    small = total.for_work(1, "numba")
    assert small is total.serial().compiled() and small is not compiled
    assert small(values) == compiled(values) == 45.0


@jit.kernel()
def _add_one(x: float) -> float:
    return x + 1.0


def test_a_kernel_compiled_in_this_process_stays_compiled_under_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once a kernel's compiled build exists its price is paid: a small call under auto uses it
    (and spends no budget) rather than interpreting beside it; `python` still interprets."""
    monkeypatch.setattr(jit._Budget, "spent_us", 0)
    assert _add_one.for_work(1, "auto") is _add_one.python  # nothing bought yet: interpreted
    compiled = _add_one.compiled()
    spent = jit._Budget.spent_us
    assert _add_one.for_work(1, "auto") is compiled
    assert jit._Budget.spent_us == spent
    assert _add_one.for_work(1, "python") is _add_one.python
    assert compiled(1.0) == _add_one(1.0) == 2.0
