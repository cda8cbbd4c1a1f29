"""The kernel's floor and add-ons against a plain-Python reference, account by account, on random
books and random add-on rates; and the position runs the kernel reads them from."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossmargin.core.margin.portfolio import (
    ADDON_NAMES,
    AddOns,
    PortfolioMargin,
    PortfolioTotals,
    addon_inputs,
    kernel_inputs,
    portfolio_totals,
)
from crossmargin.core.margin.presets import portfolio_preset
from crossmargin.core.position_runs import ACCOUNT_END, BUCKET_END, GENERAL, UNDERLYING_END, risk_buckets
from crossmargin.core.pricing import entry_term, revalue
from crossmargin.core.scenarios import revalue_scenarios
from crossmargin.errors import InputError
from tests.builders import RandomBook, random_books


@st.composite
def addon_rates(draw: st.DrawFn) -> AddOns:
    rate = st.floats(0.0, 0.05)
    return AddOns(
        min_delta_unhedged=draw(rate),
        min_delta_hedged=draw(rate),
        min_delta_by_underlying={"ETH": (draw(rate), draw(rate))} if draw(st.booleans()) else {},
        annualised_move_risk=draw(rate),
        min_annualised_move=draw(rate),
        delta_contingency_rate=draw(rate),
        short_option_rate=draw(rate),
        concentration_coefficient=draw(rate),
        concentration_power=draw(st.sampled_from([0.5, 1.0, 1.5])),
        liquidity_usd={"BTC": draw(st.floats(1e5, 1e9)), "SOL": draw(st.floats(1e4, 1e8))},
        delta_half_spread_bps=draw(st.floats(0.0, 50.0)),
        vega_half_spread=draw(rate),
        funding_periods=draw(st.floats(0.0, 3.0)),
        fee_rate=draw(st.floats(0.0, 0.001)),
    )


def reference_addons(case: RandomBook, addons: AddOns) -> tuple[np.ndarray, np.ndarray]:
    """(min-delta floor (A,), add-ons (A, 8) without the depeg column), straight from the module
    docstring's formulas, one account and one position at a time."""
    book, market = case.book, case.market
    table = book.instruments
    valuation = revalue(table, market)
    inputs = addon_inputs(book, valuation, market, addons)
    unhedged, hedged = addons.min_delta_rates(table.underlyings)
    liquidity = [addons.liquidity_usd.get(u, 0.0) for u in table.underlyings]
    floor = np.zeros(book.n_accounts)
    out = np.zeros((book.n_accounts, len(ADDON_NAMES)))
    p = book.positions
    for a in range(book.n_accounts):
        net: dict[int, float] = defaultdict(float)
        gross: dict[int, float] = defaultdict(float)
        vega: dict[int, float] = defaultdict(float)
        by_bucket: dict[int, float] = defaultdict(float)
        short = funding = fees = 0.0
        for k in range(p.indptr[a], p.indptr[a + 1]):
            i, q = int(p.indices[k]), float(p.data[k])
            u = int(table.underlying_index[i])
            d = q * inputs.delta_notional_usd[i]
            net[u] += d
            gross[u] += abs(d)
            vega[u] += q * inputs.vega_usd[i]
            by_bucket[int(inputs.roll_bucket[i])] += d
            short += max(-q, 0.0) * inputs.short_option_notional_usd[i]
            funding += q * inputs.funding_payment_usd[i]
            fees += abs(q) * inputs.closing_fee_usd[i]
        for u, d_u in net.items():
            size = abs(d_u)
            floor[a] += unhedged[u] * size + hedged[u] * 0.5 * (gross[u] - size)
            out[a, 1] += addons.delta_contingency_rate * size
            if liquidity[u] > 0.0 and addons.concentration_coefficient > 0.0:
                out[a, 3] += (
                    addons.concentration_coefficient
                    * size
                    * (size / liquidity[u]) ** addons.concentration_power
                )
            out[a, 4] += addons.delta_half_spread_bps * 1e-4 * size + addons.vega_half_spread * abs(vega[u])
        out[a, 0] = sum(abs(d) * inputs.roll_rate[b] for b, d in by_bucket.items())
        out[a, 2] = addons.short_option_rate * short
        out[a, 5] = max(funding, 0.0)
        out[a, 6] = fees
    return floor, out


@settings(max_examples=80, deadline=None)
@given(case=random_books(max_accounts=6, max_instruments=8), addons=addon_rates())
def test_kernel_addons_equal_the_reference(case: RandomBook, addons: AddOns) -> None:
    book, market = case.book, case.market
    valuation = revalue(book.instruments, market)
    scenarios = PortfolioMargin(portfolio_preset("paradex-pm")).scenarios(book, valuation)
    reval = revalue_scenarios(book.instruments, book.assets, market, valuation, scenarios)
    totals = portfolio_totals(
        book, market, valuation, scenarios, reval, addons, n_grid_scenarios=scenarios.n_scenarios
    )
    floor, expected = reference_addons(case, addons)
    scale = max(1.0, float(np.abs(expected).max()), float(floor.max()))
    np.testing.assert_allclose(totals.min_delta_usd, floor, rtol=1e-9, atol=1e-9 * scale)
    np.testing.assert_allclose(totals.addons_usd[:, :7], expected[:, :7], rtol=1e-9, atol=1e-9 * scale)


@settings(max_examples=60, deadline=None)
@given(case=random_books(max_accounts=6, max_instruments=8))
def test_position_runs_order_weights_and_run_ends(case: RandomBook) -> None:
    book = book_ = case.book
    runs = book_.position_runs
    table = book.instruments
    buckets = risk_buckets(table)
    p = book.positions
    assert np.array_equal(runs.indptr, p.indptr)
    term = entry_term(book.entry_price, table.reciprocal_entry[p.indices])
    for a in range(book.n_accounts):
        lo, hi = p.indptr[a], p.indptr[a + 1]
        got = runs.instrument[lo:hi].astype(np.int64)
        # The same positions, in (bucket, instrument) order.
        assert sorted(got.tolist()) == sorted(p.indices[lo:hi].tolist())
        keys = [(int(buckets.bucket[i]), int(i)) for i in got]
        assert keys == sorted(keys)
        where = {int(i): k for k, i in enumerate(p.indices[lo:hi])}
        for j, i in enumerate(got):
            k = lo + where[int(i)]
            q = p.data[k]
            assert runs.quantity[lo + j] == q
            assert runs.entry_weight[lo + j] == pytest.approx(q * term[k], rel=1e-15)
            expected_weight = q / book.entry_price[k] if table.reciprocal_entry[i] else q
            assert runs.pnl_weight[lo + j] == pytest.approx(expected_weight, rel=1e-15)
            last = j + 1 == got.size
            next_bucket = -1 if last else buckets.bucket[got[j + 1]]
            next_under = -1 if last else buckets.underlying[buckets.bucket[got[j + 1]]]
            flags = int(runs.run_end[lo + j])
            assert bool(flags & BUCKET_END) == (last or next_bucket != buckets.bucket[i])
            assert bool(flags & UNDERLYING_END) == (last or next_under != table.underlying_index[i])
        # Alone in its underlying: side weight q; otherwise 0 and in the general section.
        under = buckets.underlying[buckets.bucket[got]]
        alone = np.array([(under == u).sum() == 1 for u in under], dtype=bool)
        general = ~alone
        assert np.array_equal(runs.side_weight[lo:hi], np.where(alone, runs.quantity[lo:hi], 0.0))
        assert np.array_equal((runs.run_end[lo:hi] & GENERAL) > 0, general)
        if general.any():
            g = runs.general_row[a]
            g0, g1 = runs.general_indptr[g], runs.general_indptr[g + 1]
            assert np.array_equal(runs.general_instrument[g0:g1], got[general])
            assert np.array_equal(runs.general_quantity[g0:g1], runs.quantity[lo:hi][general])
            ends = runs.general_run_end[g0:g1]
            assert np.array_equal(ends & (0xFF ^ ACCOUNT_END), runs.run_end[lo:hi][general])
            assert [bool(f & ACCOUNT_END) for f in ends] == [False] * (g1 - g0 - 1) + [True]
        else:
            assert runs.general_row[a] == runs.n_general  # the zero row
    # A general underlying puts even a lone position in the general section.
    on_btc = book.position_runs_for(frozenset({"BTC"}))
    btc = np.array([u == "BTC" for u in table.underlyings])[table.underlying_index[on_btc.instrument]]
    assert np.all(on_btc.side_weight[btc] == 0.0)
    assert np.all(on_btc.run_end[btc] & GENERAL)
    # Built once per book; a scaled book (other quantities) builds its own.
    assert book.position_runs is runs
    assert np.allclose(book.scaled(2.0).position_runs.quantity, 2.0 * runs.quantity)


@settings(max_examples=40, deadline=None)
@given(case=random_books(max_accounts=3, max_instruments=8))
def test_shared_scenario_rows_reproduce_every_instrument(case: RandomBook) -> None:
    """Delta-one contracts read their underlying's move row times a scale; every instrument's
    scenario P&L per contract is still exactly dA + dB."""
    book, market = case.book, case.market
    valuation = revalue(book.instruments, market)
    scenarios = PortfolioMargin(portfolio_preset("crossmargin-multi")).scenarios(book, valuation)
    reval = revalue_scenarios(book.instruments, book.assets, market, valuation, scenarios)
    k = kernel_inputs(
        book,
        market,
        valuation,
        scenarios,
        reval,
        AddOns(),
        n_grid_scenarios=scenarios.n_scenarios,
        numeraire=None,
    ).arrays
    s = scenarios.n_scenarios
    rebuilt = k.row_scale[:, None] * k.scenario_rows[k.row_of, :s]
    assert np.array_equal(rebuilt, reval.d_unit_value_usd + reval.d_entry_coefficient_usd)
    assert not np.any(k.scenario_rows[:, s:])  # padding columns stay zero


@settings(max_examples=15, deadline=None)
@given(case=random_books(max_accounts=5, max_instruments=8), addons=addon_rates())
def test_kept_output_buffers_are_overwritten_whole(case: RandomBook, addons: AddOns) -> None:
    """portfolio_totals(out=) writes every output of every account (NaN-filled buffers come back
    equal to a fresh call), and refuses buffers of the wrong shape, naming the field."""
    book, market = case.book, case.market
    valuation = revalue(book.instruments, market)
    scenarios = PortfolioMargin(portfolio_preset("paradex-pm")).scenarios(book, valuation)
    reval = revalue_scenarios(book.instruments, book.assets, market, valuation, scenarios)
    n_grid = scenarios.n_scenarios
    fresh = portfolio_totals(book, market, valuation, scenarios, reval, addons, n_grid_scenarios=n_grid)
    kept = PortfolioTotals.empty(book.n_accounts)
    for array in (kept.grid_usd, kept.min_delta_usd, kept.addons_usd):
        array.fill(np.nan)
    kept.worst_scenario.fill(-1)
    got = portfolio_totals(
        book, market, valuation, scenarios, reval, addons, n_grid_scenarios=n_grid, out=kept
    )
    assert got is kept
    np.testing.assert_array_equal(kept.grid_usd, fresh.grid_usd)
    np.testing.assert_array_equal(kept.worst_scenario, fresh.worst_scenario)
    np.testing.assert_array_equal(kept.min_delta_usd, fresh.min_delta_usd)
    np.testing.assert_array_equal(kept.addons_usd, fresh.addons_usd)
    wrong = PortfolioTotals.empty(book.n_accounts + 1)
    with pytest.raises(InputError, match=r"out\.grid_usd"):
        portfolio_totals(
            book, market, valuation, scenarios, reval, addons, n_grid_scenarios=n_grid, out=wrong
        )


@settings(max_examples=20, deadline=None)
@given(case=random_books(max_accounts=5, max_instruments=8))
def test_every_addon_off_charges_exactly_nothing(case: RandomBook) -> None:
    """With no add-on on, the kernel skips the add-on passes: floor and add-ons are exactly 0 for
    every account, lone positions and runs alike."""
    book, market = case.book, case.market
    valuation = revalue(book.instruments, market)
    scenarios = PortfolioMargin(portfolio_preset("paradex-pm")).scenarios(book, valuation)
    reval = revalue_scenarios(book.instruments, book.assets, market, valuation, scenarios)
    totals = portfolio_totals(
        book, market, valuation, scenarios, reval, AddOns(), n_grid_scenarios=scenarios.n_scenarios
    )
    assert np.all(totals.min_delta_usd == 0.0)
    assert np.all(totals.addons_usd == 0.0)
