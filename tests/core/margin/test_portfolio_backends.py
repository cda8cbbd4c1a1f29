"""The three builds of the portfolio kernel (CROSSMARGIN_KERNEL=simd|numba|python) give the same
numbers, the variable is read strictly (auto: python for small work, simd for large), and a simd
build that does not work falls back to plain numba."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossmargin.adapters.files import load_book
from crossmargin.core import jit
from crossmargin.core.jit import INTERPRET_BUDGET_US
from crossmargin.core.margin.portfolio import (
    KERNEL_VARIABLE,
    KernelBackend,
    PortfolioMargin,
    PortfolioSnapshot,
    depeg_scenarios,
    kernel_backend,
    portfolio_totals,
)
from crossmargin.core.margin.portfolio.backend import checked_or_plain, kernel_from_environment
from crossmargin.core.margin.presets import PORTFOLIO_PRESETS, portfolio_preset
from crossmargin.core.pricing import revalue
from crossmargin.core.scenarios import revalue_scenarios
from crossmargin.errors import InputError
from tests.builders import RandomBook, random_books

PRESETS = tuple(PORTFOLIO_PRESETS)
DESK = Path(__file__).resolve().parents[3] / "examples" / "desk.yaml"
# The plain build (compiled or interpreted) adds in the intrinsics' order, so the three agree to the
# bit; the contract the backends promise is this tolerance.
RELATIVE_TOLERANCE = 1e-12


def test_simd_builds_and_checks_out_here() -> None:
    """On this machine's numba the simd build compiles and matches the plain one (else every
    parity test below would compare plain numba with itself)."""
    assert kernel_backend("simd").name == "simd"
    assert kernel_backend("numba").name == "numba"


@settings(max_examples=30, deadline=None)
@given(
    case=random_books(max_accounts=6, max_instruments=8),
    preset=st.sampled_from(PRESETS),
    use_numeraire=st.booleans(),
)
def test_both_builds_give_the_same_requirement_and_worst_scenario(
    case: RandomBook, preset: str, use_numeraire: bool
) -> None:
    book, market = case.book, case.market
    valuation = revalue(book.instruments, market)
    params = portfolio_preset(preset)
    grid_set = PortfolioMargin(params).scenarios(book, valuation)
    numeraire = next((c for c in ("BTC", "ETH") if c in grid_set.factors), None) if use_numeraire else None
    depeg = depeg_scenarios(book, params.addons, grid_set.factors)
    full = grid_set if depeg is None else grid_set.concat(depeg)
    reval = revalue_scenarios(book.instruments, book.assets, market, valuation, full)
    simd, *others = (
        portfolio_totals(
            book,
            market,
            valuation,
            full,
            reval,
            params.addons,
            n_grid_scenarios=grid_set.n_scenarios,
            numeraire=numeraire,
            kernel=kernel,
        )
        for kernel in ("simd", "numba", "python")
    )
    for plain in others:
        np.testing.assert_allclose(
            plain.initial_margin_usd, simd.initial_margin_usd, rtol=RELATIVE_TOLERANCE, atol=0
        )
        np.testing.assert_allclose(
            plain.maintenance_margin_usd(params.maintenance_fraction),
            simd.maintenance_margin_usd(params.maintenance_fraction),
            rtol=RELATIVE_TOLERANCE,
            atol=0,
        )
        np.testing.assert_allclose(plain.addons_usd, simd.addons_usd, rtol=RELATIVE_TOLERANCE, atol=0)
        assert np.array_equal(plain.worst_scenario, simd.worst_scenario)


@pytest.mark.parametrize("preset", PRESETS)
def test_both_builds_give_the_same_what_if(preset: str) -> None:
    loaded = load_book(DESK)
    book, market = loaded.book, loaded.market
    model = PortfolioMargin(portfolio_preset(preset))
    snapshots = {
        kernel: PortfolioSnapshot.build(model, book, market, kernel=kernel)
        for kernel in ("simd", "numba", "python")
    }
    perp = book.instruments.index["BTC-USDC-PERP"]
    for row in range(book.n_accounts):
        simd, *others = (
            s.what_if(row, instrument=perp, quantity=-1.5, price=90_000.0) for s in snapshots.values()
        )
        for plain in others:
            assert plain.initial_margin_usd == pytest.approx(
                simd.initial_margin_usd, rel=RELATIVE_TOLERANCE, abs=0
            )
            assert plain.worst_scenario == simd.worst_scenario


def test_model_with_either_build_reports_the_same_margin() -> None:
    loaded = load_book(DESK)
    results = {
        kernel: PortfolioMargin(portfolio_preset("deribit-pm"), kernel=kernel).evaluate(
            loaded.book, loaded.market
        )
        for kernel in ("simd", "numba", "python")
    }
    for plain in ("numba", "python"):
        np.testing.assert_allclose(
            results[plain].initial_margin_usd, results["simd"].initial_margin_usd, rtol=RELATIVE_TOLERANCE
        )


@pytest.mark.parametrize("value", ["gpu", "SIMD2", "interpreted"])
def test_an_unknown_kernel_variable_is_refused_naming_it(value: str) -> None:
    with pytest.raises(InputError, match="choose auto, python, simd or numba") as raised:
        kernel_from_environment({KERNEL_VARIABLE: value})
    assert raised.value.field == "CROSSMARGIN_KERNEL"
    assert repr(value.strip().lower()) in raised.value.problem


@pytest.mark.parametrize(
    ("value", "expected"),
    [("simd", "simd"), ("numba", "numba"), (" Numba ", "numba"), ("python", "python")],
)
def test_the_kernel_variable_names_the_build(value: str, expected: str) -> None:
    for work in (0, INTERPRET_BUDGET_US + 1):  # a named build runs whatever the work
        assert kernel_from_environment({KERNEL_VARIABLE: value}, work=work) == expected


@pytest.mark.parametrize("value", ["", "auto", " AUTO "])
def test_auto_interprets_small_work_and_compiles_large(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jit._Budget, "spent_us", 0)
    environ = {KERNEL_VARIABLE: value} if value else {}
    assert kernel_from_environment(environ, work=INTERPRET_BUDGET_US + 1) == "simd"
    assert kernel_from_environment(environ, work=INTERPRET_BUDGET_US // 2) == "python"
    assert kernel_from_environment(environ, work=INTERPRET_BUDGET_US // 2 + 1) == "simd"  # budget spent


def test_an_unknown_kernel_parameter_is_refused() -> None:
    with pytest.raises(InputError, match="choose simd, numba or python"):
        kernel_backend("avx512")
    with pytest.raises(InputError, match="choose simd, numba or python"):
        PortfolioMargin(kernel="avx512")


def test_a_simd_build_that_fails_falls_back_to_plain_numba_with_a_warning() -> None:
    def broken() -> KernelBackend:
        raise RuntimeError("intrinsic lowering failed")

    with pytest.warns(RuntimeWarning, match="intrinsic lowering failed"):
        chosen = checked_or_plain(broken)
    assert chosen.name == "numba"


def test_a_simd_build_giving_non_finite_numbers_falls_back_too() -> None:
    """A build that compiles but computes garbage (here: NaN on every grid) is refused by the
    check on a sample account. (Parity with the plain build bit for bit is the tests' job above.)"""
    plain = kernel_backend("numba")

    def garbage(streams, market, out):  # type: ignore[no-untyped-def]
        plain.account(streams, market, out)
        out.grid_usd[:] = np.nan

    wrong = KernelBackend(name="simd", book=plain.book, account=garbage, what_if=plain.what_if)
    with pytest.warns(RuntimeWarning, match="grid_usd"):
        chosen = checked_or_plain(lambda: wrong)
    assert chosen is plain
