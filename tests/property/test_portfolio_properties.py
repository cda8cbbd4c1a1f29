"""Invariants of portfolio margin (core/margin/portfolio/) over random books and every preset, each
kernel invariant under both builds of the kernel (CROSSMARGIN_KERNEL=simd|numba).

- a perfect hedge (long spot, short linear perp, same size) needs only its floor and add-ons;
- with add-ons and dampeners off, the portfolio requirement is at most the sum of the positions'
  requirements margined alone (the worst loss of a sum is at most the sum of the worst losses);
- adding the unshocked scenario never changes the requirement;
- the fused numba kernel equals a dense numpy/scipy reference (weights, dampeners, numeraire);
- the grid part is homogeneous of degree 1 in position size without dampeners, superlinear with;
- the explanation of every example account sums to its grid requirement;
- joint (correlated) scenarios charge BTC collateral against an ETH short and net BTC against ETH.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossmargin.adapters.files import load_book
from crossmargin.core.assets import Asset
from crossmargin.core.book import Book
from crossmargin.core.collateral import value_collateral
from crossmargin.core.instruments import Instrument, InstrumentKind, InstrumentTable
from crossmargin.core.margin.portfolio import (
    KERNELS,
    AddOns,
    PortfolioMargin,
    PortfolioParams,
    depeg_scenarios,
    explain_account,
    numeraire_factor,
    portfolio_totals,
)
from crossmargin.core.margin.presets import PORTFOLIO_PRESETS, crossmargin_multi, portfolio_preset
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import InstrumentValuation, entry_term, revalue
from crossmargin.core.scenarios import GridSpec, ScenarioRevaluation, ScenarioSet, revalue_scenarios
from crossmargin.engine.portfolio_run import explain_report
from tests.adapters.files.bad_books import DESK
from tests.builders import VALUATION_NS, RandomBook, at_par, book_from_rows, random_books, usd_asset

PRESETS = tuple(PORTFOLIO_PRESETS)
REL_TOLERANCE = 1e-9
MODEST = settings(max_examples=25)  # each example revalues I x S options: keep the suite fast
BOTH_KERNELS = pytest.mark.parametrize("kernel", KERNELS)


# --------------------------------------------------------------------------- helpers


def _zero_collateral(book: Book) -> Book:
    return book.with_balances(np.zeros_like(book.balances))


def _no_dampener(spec: GridSpec | None) -> GridSpec | None:
    return None if spec is None else dataclasses.replace(spec, extreme_dampener_usd=0.0)


def _without_dampeners(params: PortfolioParams) -> PortfolioParams:
    """The same methodology with every dampener (Deribit's extended-table offset) at 0."""
    return dataclasses.replace(
        params,
        grids={u: g for u, g in ((u, _no_dampener(g)) for u, g in params.grids.items()) if g is not None},
        default_grid=_no_dampener(params.default_grid),
    )


def _addons_off(params: PortfolioParams) -> PortfolioParams:
    return dataclasses.replace(_without_dampeners(params), addons=AddOns())


def _gross_pnl_scale(book: Book, market: MarketState, reval: ScenarioRevaluation) -> np.ndarray:
    """Per account, the largest sum of |item P&L| over scenarios: the size that rounding scales with."""
    q = abs(book.positions.to_scipy())
    qe = book.positions.to_scipy().copy()
    qe.data = np.abs(qe.data * entry_term(book.entry_price, book.instruments.reciprocal_entry[qe.indices]))
    collateral = np.abs(value_collateral(book.balances, book.assets, market.asset_prices(book.assets)).value_usd)
    gross = (
        q @ np.abs(reval.d_unit_value_usd)
        + qe @ np.abs(reval.d_entry_coefficient_usd)
        + collateral @ np.abs(reval.d_asset_factor)
    )
    scale: np.ndarray = np.asarray(gross).max(axis=1, initial=0.0)
    return scale


def _dense_grid(
    book: Book,
    market: MarketState,
    scenarios: ScenarioSet,
    reval: ScenarioRevaluation,
    valuation: InstrumentValuation,
    *,
    n_grid: int,
    numeraire: str | None,
    depeg_move: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Reference: the accounts x scenarios P&L as scipy.sparse products, then the group maxima.

    P&L = Q @ dA + QE @ dB + collateral_value @ dF, QE = Q with data q·entry_term(E);
    loss = weight·(-(P&L - V0·(f - 1)))/f - offset (f: numeraire factor, V0: today's equity); grid = Σ_groups max(0, max_{s in g} loss_s);
    depeg (rows after n_grid) = max(0, max over coins of min(loss, depeg_move·grid)), accounts
    with positions only.
    """
    q = book.positions.to_scipy()
    qe = q.copy()
    qe.data = q.data * entry_term(book.entry_price, book.instruments.reciprocal_entry[q.indices])
    collateral = value_collateral(book.balances, book.assets, market.asset_prices(book.assets)).value_usd
    pnl = np.asarray(
        q @ reval.d_unit_value_usd + qe @ reval.d_entry_coefficient_usd + collateral @ reval.d_asset_factor
    )
    # In the numeraire at today's price: (dV - V0·(f - 1)) / f, V0 = today's equity of the account.
    factor = numeraire_factor(scenarios, numeraire)
    equity_today = collateral.sum(axis=1) + np.asarray(
        q @ valuation.unit_value_usd + qe @ valuation.entry_coefficient_usd
    )
    loss = -(scenarios.weight / factor) * (pnl - equity_today[:, None] * (factor - 1.0)) - scenarios.offsets
    grid = np.zeros(book.n_accounts)
    for g in np.unique(scenarios.group[:n_grid]):
        rows = np.flatnonzero(scenarios.group[:n_grid] == g)
        grid += np.maximum(loss[:, rows].max(axis=1), 0.0)
    has_positions = np.diff(q.indptr) > 0
    depeg = np.zeros(book.n_accounts)
    if scenarios.n_scenarios > n_grid:
        # Only the collateral backing the requirement: each coin's loss capped at depeg_move·grid.
        capped = np.minimum(loss[:, n_grid:], depeg_move * grid[:, None])
        depeg = np.where(has_positions, np.maximum(capped.max(axis=1), 0.0), 0.0)
    return grid, depeg


def _close(actual: np.ndarray, expected: np.ndarray, *, scale: np.ndarray) -> None:
    allowed = REL_TOLERANCE * (np.abs(expected) + scale) + 1e-9
    assert np.all(np.abs(actual - expected) <= allowed), (actual, expected, scale)


# --------------------------------------------------------------------------- perfect hedge


@MODEST
@given(
    underlying=st.sampled_from(["BTC", "ETH", "SOL"]),
    price=st.floats(min_value=10.0, max_value=150_000.0),
    size=st.floats(min_value=1e-3, max_value=1e3),
    collateral_usd=st.floats(min_value=0.0, max_value=1e7),
    preset=st.sampled_from(PRESETS),
)
@BOTH_KERNELS
def test_perfect_hedge_needs_only_its_addons(
    underlying: str, price: float, size: float, collateral_usd: float, preset: str, kernel: str
) -> None:
    """Long spot, short linear perp, same size and underlying, entered at the mark, collateral in
    USD only: every scenario moves both legs by the same amount, so the grid part is 0 and the
    requirement is the floor (Paradex's hedged min-delta) plus the add-ons (fees, depeg, ...)."""
    table = InstrumentTable.from_instruments(
        [
            Instrument(id="SPOT", kind=InstrumentKind.SPOT, underlying=underlying),
            Instrument(id="PERP", kind=InstrumentKind.PERPETUAL, underlying=underlying),
        ]
    )
    market = MarketState.build(table, valuation_ns=VALUATION_NS, index_prices={underlying: price})
    book = book_from_rows(
        assets=[usd_asset()],
        instruments=table,
        balances={"hedger": {"USDC": collateral_usd}},
        positions=[("hedger", "SPOT", size, price), ("hedger", "PERP", -size, price)],
    )
    market = at_par(market, book)
    model = PortfolioMargin(portfolio_preset(preset), kernel=kernel)
    totals = model.totals(book, market, revalue(table, market))
    assert totals.grid_usd[0] == 0.0
    expected = totals.min_delta_usd[0] + totals.addons_usd[0].sum()
    assert model.evaluate(book, market).initial_margin_usd[0] == pytest.approx(expected, rel=1e-12, abs=0.0)


# --------------------------------------------------------------------------- sub-additivity


@MODEST
@given(case=random_books(), preset=st.sampled_from(PRESETS))
@BOTH_KERNELS
def test_portfolio_at_most_sum_of_positions_alone(case: RandomBook, preset: str, kernel: str) -> None:
    """With add-ons off, every dampener 0 and collateral 0 (so only positions matter), an account's
    requirement ≤ Σ its positions' requirements, each margined alone as a one-position account.
    (A dampener breaks this: n one-position accounts get n dampeners, the account gets one.)"""
    params = _addons_off(portfolio_preset(preset))
    model = PortfolioMargin(params, kernel=kernel)
    book = _zero_collateral(case.book)
    together = model.evaluate(book, case.market).initial_margin_usd
    nnz = book.positions.nnz
    alone_book = Book.from_arrays(
        account_ids=[f"position-{p}" for p in range(nnz)],
        assets=book.assets,
        instruments=book.instruments,
        account_index=np.arange(nnz),
        instrument_index=book.positions.indices.astype(np.int64),
        quantity=book.positions.data,
        entry_price=book.entry_price,
        balances=np.zeros((nnz, book.assets.n_assets)),
    )
    alone = model.evaluate(alone_book, case.market).initial_margin_usd
    summed = np.bincount(book.position_account, weights=alone, minlength=book.n_accounts)
    assert np.all(together <= summed * (1.0 + REL_TOLERANCE) + 1e-9), (together, summed)


# --------------------------------------------------------------------------- zero scenario


@MODEST
@given(case=random_books(), preset=st.sampled_from(PRESETS), use_numeraire=st.booleans())
@BOTH_KERNELS
def test_zero_scenario_never_changes_the_requirement(
    case: RandomBook, preset: str, use_numeraire: bool, kernel: str
) -> None:
    """The unshocked scenario has P&L exactly 0 and each group's charge is already ≥ 0."""
    params = portfolio_preset(preset)
    valuation = revalue(case.book.instruments, case.market)
    scenarios = PortfolioMargin(params).scenarios(case.book, valuation)
    numeraire = _numeraire(scenarios) if use_numeraire else None
    with_zero = scenarios.with_zero_scenario()
    assert with_zero.n_scenarios == scenarios.n_scenarios + 1
    assert with_zero.group[-1] == 0 and with_zero.n_groups == scenarios.n_groups
    grids = []
    for s in (scenarios, with_zero):
        reval = revalue_scenarios(case.book.instruments, case.book.assets, case.market, valuation, s)
        totals = portfolio_totals(
            case.book,
            case.market,
            valuation,
            s,
            reval,
            params.addons,
            n_grid_scenarios=s.n_scenarios,
            numeraire=numeraire,
            kernel=kernel,
        )
        grids.append(totals)
    assert np.array_equal(grids[0].grid_usd, grids[1].grid_usd)
    assert np.array_equal(grids[0].initial_margin_usd, grids[1].initial_margin_usd)


def _numeraire(scenarios: ScenarioSet) -> str | None:
    return next((c for c in ("BTC", "ETH") if c in scenarios.factors), None)


# --------------------------------------------------------------------------- dense reference


@MODEST
@given(case=random_books(), preset=st.sampled_from(PRESETS), use_numeraire=st.booleans())
@BOTH_KERNELS
def test_kernel_equals_dense_reference(
    case: RandomBook, preset: str, use_numeraire: bool, kernel: str
) -> None:
    """The fused kernel's grid part and depeg add-on equal the dense scipy/numpy reduction, with
    the preset's weights and dampeners and, optionally, a coin numeraire."""
    book, market = case.book, case.market
    valuation = revalue(book.instruments, market)
    params = portfolio_preset(preset)
    grid_set = PortfolioMargin(params).scenarios(book, valuation)
    numeraire = _numeraire(grid_set) if use_numeraire else None
    depeg = depeg_scenarios(book, params.addons, grid_set.factors)
    full = grid_set if depeg is None else grid_set.concat(depeg)
    reval = revalue_scenarios(book.instruments, book.assets, market, valuation, full)
    totals = portfolio_totals(
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
    expected_grid, expected_depeg = _dense_grid(
        book,
        market,
        full,
        reval,
        valuation,
        n_grid=grid_set.n_scenarios,
        numeraire=numeraire,
        depeg_move=params.addons.depeg_move,
    )
    scale = _gross_pnl_scale(book, market, reval) * np.max(1.0 / numeraire_factor(full, numeraire))
    _close(totals.grid_usd, expected_grid, scale=scale)
    _close(totals.addons_usd[:, -1], expected_depeg, scale=scale)
    # The worst scenario the kernel reports is a row whose loss is the largest group's charge.
    assert np.all((totals.worst_scenario >= 0) & (totals.worst_scenario < grid_set.n_scenarios))


# --------------------------------------------------------------------------- homogeneity


@MODEST
@given(case=random_books(), preset=st.sampled_from(PRESETS))
@BOTH_KERNELS
def test_doubling_positions_doubles_the_grid_part(case: RandomBook, preset: str, kernel: str) -> None:
    """Collateral 0: every scenario P&L is linear in the quantities, so the grid part doubles.
    With a dampener (deribit-pm's extended offset) it at least doubles: max(0, 2L - d) ≥ 2·max(0, L - d)."""
    book = _zero_collateral(case.book)
    valuation = revalue(book.instruments, case.market)
    params = portfolio_preset(preset)
    for p, exact in ((_without_dampeners(params), True), (params, False)):
        model = PortfolioMargin(p, kernel=kernel)
        once = model.totals(book, case.market, valuation).grid_usd
        twice = model.totals(book.scaled(2.0), case.market, valuation).grid_usd
        if exact:
            assert twice == pytest.approx(2.0 * once, rel=REL_TOLERANCE, abs=1e-9)
        else:
            assert np.all(twice >= 2.0 * once * (1.0 - REL_TOLERANCE) - 1e-9)


# --------------------------------------------------------------------------- explanation


DESK_ACCOUNTS = ("basis-trader", "vol-seller", "directional", "near-liquidation")


@pytest.fixture(scope="module")
def desk():  # type: ignore[no-untyped-def]
    return load_book(DESK)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("account", DESK_ACCOUNTS)
def test_explanation_sums_to_the_grid_requirement(desk, account: str, preset: str) -> None:  # type: ignore[no-untyped-def]
    report = explain_report(desk, account, preset=preset)
    grid = report["grid_usd"]
    positions = sum(p["contribution_usd"] for p in report["positions"])
    collateral = sum(c["contribution_usd"] for c in report["collateral"])
    scale = sum(abs(p["contribution_usd"]) for p in report["positions"]) + sum(
        abs(c["contribution_usd"]) for c in report["collateral"]
    )
    assert positions + collateral - report["dampener_usd"] == pytest.approx(
        grid, rel=REL_TOLERANCE, abs=REL_TOLERANCE * scale + 1e-9
    )
    # The requirement is the max over scenarios: per group (one group per underlying under "sum",
    # one group under "joint"), the largest counted loss, floored at 0, summed.
    losses = [(s["label"], s["loss_usd"]) for s in report["scenarios"]]
    params = portfolio_preset(preset)
    if params.combine == "joint":
        groups = {"joint": [loss for _, loss in losses]}
    else:
        groups = {}
        for label, loss in losses:
            groups.setdefault(label.split(" ", 1)[0], []).append(loss)
    by_max = sum(max(0.0, max(values)) for values in groups.values())
    assert grid == pytest.approx(by_max, rel=1e-12, abs=1e-9)
    assert sum(g["loss_usd"] for g in report["groups"]) == pytest.approx(grid, rel=1e-12, abs=1e-9)
    worst = report["worst_scenario"]
    if grid > 0.0:
        assert max(report["scenarios"], key=lambda s: s["loss_usd"])["loss_usd"] == pytest.approx(
            max(g["loss_usd"] for g in report["groups"]), rel=1e-12
        )
        assert report["scenarios"][worst["index"]]["label"] == worst["label"]
    # Same numbers as the whole-book kernel.
    book = desk.book
    model = PortfolioMargin(params)
    valuation = revalue(book.instruments, desk.market)
    row = book.account_row(account)
    totals = model.totals(book, desk.market, valuation)
    assert totals.grid_usd[row] == pytest.approx(grid, rel=REL_TOLERANCE, abs=1e-9)
    assert totals.initial_margin_usd[row] == pytest.approx(report["initial_margin_usd"], rel=REL_TOLERANCE)


# --------------------------------------------------------------------------- joint scenarios


BTC_USD = 60_000.0
ETH_USD = 3_000.0


def _pair_book(*, btc_collateral: float, btc_perp: float, eth_perp: float) -> tuple[Book, MarketState]:
    table = InstrumentTable.from_instruments(
        [
            Instrument(id="BTC-PERP", kind=InstrumentKind.PERPETUAL, underlying="BTC"),
            Instrument(id="ETH-PERP", kind=InstrumentKind.PERPETUAL, underlying="ETH"),
        ]
        if btc_perp
        else [Instrument(id="ETH-PERP", kind=InstrumentKind.PERPETUAL, underlying="ETH")]
    )
    market = MarketState.build(
        table,
        valuation_ns=VALUATION_NS,
        index_prices={"BTC": BTC_USD, "ETH": ETH_USD},
        asset_symbols=("BTC", "USDC"),
        asset_prices={"USDC": 1.0},
    )
    positions = [("desk", "ETH-PERP", eth_perp, ETH_USD)]
    if btc_perp:
        positions.append(("desk", "BTC-PERP", btc_perp, BTC_USD))
    book = book_from_rows(
        assets=[Asset(symbol="BTC"), usd_asset()],
        instruments=table,
        balances={"desk": {"BTC": btc_collateral}},
        positions=positions,
    )
    return book, market


def _sum_params() -> PortfolioParams:
    """Per-underlying grids with crossmargin-multi's own ranges (BTC 16 %, ETH 20 %), summed: the
    same moves without the correlation."""
    return PortfolioParams(
        name="sum",
        grids={"BTC": GridSpec(price_range=0.16), "ETH": GridSpec(price_range=0.20)},
        default_grid=None,
        combine="sum",
    )


def test_joint_charges_btc_collateral_against_an_eth_short() -> None:
    """10 BTC of collateral, short ETH perp of the same notional: BTC down while ETH rises loses
    on both legs. Per-underlying grids never move the BTC collateral at all (no BTC instrument)."""
    notional = 10.0 * BTC_USD
    book, market = _pair_book(btc_collateral=10.0, btc_perp=0.0, eth_perp=-notional / ETH_USD)
    valuation = revalue(book.instruments, market)
    joint = explain_account(PortfolioMargin(crossmargin_multi()), book, market, 0, valuation)
    summed = PortfolioMargin(_sum_params()).totals(book, market, valuation)
    worst = joint.scenarios.price_factor[joint.worst_scenario]
    btc, eth = joint.scenarios.factor_index("BTC"), joint.scenarios.factor_index("ETH")
    print(
        f"\nBTC collateral vs ETH short, {notional:,.0f} USD each: crossmargin-multi grid "
        f"{joint.grid_usd:,.2f} USD in '{joint.scenarios.labels[joint.worst_scenario]}' "
        f"(BTC {worst[btc] - 1:+.2%}, ETH {worst[eth] - 1:+.2%}); per-underlying sum grid "
        f"{summed.grid_usd[0]:,.2f} USD (ETH +20 % only)"
    )
    assert joint.grid_usd > 0.0
    assert worst[btc] < 1.0 < worst[eth]  # they move apart
    # Parting move on the ρ = 0.82 ellipsoid: √((1-ρ)/2) = 30 % of each range, opposite signs.
    assert joint.grid_usd == pytest.approx(notional * 0.3 * (0.16 + 0.20), rel=1e-9)


def test_joint_nets_a_hedged_pair_below_the_sum() -> None:
    """Long BTC perp, short ETH perp of the same notional: correlated joint moves charge the
    spread risk only; per-underlying grids summed charge both legs' full ranges."""
    notional = 10.0 * BTC_USD
    book, market = _pair_book(btc_collateral=0.0, btc_perp=notional / BTC_USD, eth_perp=-notional / ETH_USD)
    valuation = revalue(book.instruments, market)
    joint = PortfolioMargin(crossmargin_multi()).totals(book, market, valuation)
    summed = PortfolioMargin(_sum_params()).totals(book, market, valuation)
    presets = {
        name: float(PortfolioMargin(portfolio_preset(name)).totals(book, market, valuation).grid_usd[0])
        for name in ("deribit-pm", "span", "paradex-pm")
    }
    print(
        f"\nlong BTC perp / short ETH perp, {notional:,.0f} USD each: crossmargin-multi grid "
        f"{joint.grid_usd[0]:,.2f} USD (IM {joint.initial_margin_usd[0]:,.2f}); sum of per-underlying "
        f"grids {summed.grid_usd[0]:,.2f} USD; " + ", ".join(f"{k} {v:,.2f}" for k, v in presets.items())
    )
    assert summed.grid_usd[0] == pytest.approx(notional * (0.16 + 0.20), rel=1e-12)
    assert 0.0 < joint.grid_usd[0] < summed.grid_usd[0]
    assert all(joint.grid_usd[0] < v for v in presets.values())
