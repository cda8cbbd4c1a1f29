"""Model-aware liquidation prices (equity = each model's MM): every model's price is a crossing of
equity − MM when re-evaluated by the ordinary margin path; the cross model matches the closed form
and the vectorised cross root finder; a portfolio-margined option book agrees with brute-force
repricing on a fine grid; an account never liquidated in range reports null; bankruptcy prices are
model-independent."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from crossmargin.core.assets import Asset
from crossmargin.core.book import Book
from crossmargin.core.instruments import Instrument, InstrumentKind, MarginSchedule, Settlement
from crossmargin.core.liquidation.model_prices import MODEL_LOG_TOLERANCE, model_price_levels
from crossmargin.core.liquidation.prices import cross_price_levels, isolated_prices
from crossmargin.core.liquidation.roots import nearest_roots
from crossmargin.core.margin import CrossMargin, MarginModel
from crossmargin.core.margin.portfolio import PortfolioMargin, PortfolioParams
from crossmargin.core.margin.sensitivity import SensitivityMargin
from crossmargin.core.margin.var import VarMargin, var_preset
from crossmargin.core.market import MarketState
from tests.builders import at_par, book_from_rows
from tests.core.liquidation.option_book import IMPLIED_VOLS, option_book
from tests.core.var.synthetic import VALUATION_NS, synthetic_history

FLAT = MarginSchedule.flat(initial_rate=0.10, maintenance_rate=0.05)
INDEX = 40_000.0
STEP = np.exp(MODEL_LOG_TOLERANCE)  # the stated tolerance as a price factor
BRUTE_STEP = 0.015  # ln f between brute-force repricings
BRUTE_POINTS = 75
CLOSED_FORM = 2e-7  # relative: model tolerance 1e-7 in ln f, plus rounding


def _models() -> dict[str, MarginModel]:
    var = VarMargin(dataclasses.replace(var_preset("hs-es975"), window_days=500), synthetic_history())
    return {
        "cross": CrossMargin(),
        "portfolio": PortfolioMargin(PortfolioParams()),
        "sensitivity": SensitivityMargin(),
        "var": var,
    }


MODELS = _models()


def _at(book: Book, price: float, vols: dict[str, float]) -> tuple[Book, MarketState]:
    """The book and market at BTC = price, built from scratch (independent of the solver's path)."""
    market = MarketState.build(
        book.instruments, valuation_ns=VALUATION_NS, index_prices={"BTC": price}, implied_vols=vols
    )
    return book, at_par(market, book)


def _gaps(
    model: MarginModel, book: Book, price: float, vols: dict[str, float]
) -> tuple[np.ndarray, np.ndarray]:
    """(equity − MM, equity) per account by the ordinary margin path at this BTC price."""
    result = model.evaluate(*_at(book, price, vols))
    return result.equity_usd - result.maintenance_margin_usd, result.equity_usd


def _perp_book(*, side: float, inverse: bool) -> tuple[Book, float, float]:
    perp = Instrument(
        id="P",
        kind=InstrumentKind.PERPETUAL,
        underlying="BTC",
        margin=FLAT,
        settlement=Settlement.INVERSE if inverse else Settlement.LINEAR,
        contract_size=10.0 if inverse else 1.0,
    )
    assets = [Asset(symbol="USDC"), Asset(symbol="BTC")]
    quantity = side * (1000.0 if inverse else 1.0)
    collateral = 0.3 if inverse else 15_000.0
    book = book_from_rows(
        assets=assets,
        instruments=[perp],
        balances={"a": {"BTC" if inverse else "USDC": collateral}},
        positions=[("a", "P", quantity, INDEX)],
    )
    return book, quantity, collateral


def _check_crossing(
    model: MarginModel, book: Book, row: int, price: float, which: int, vols: dict[str, float]
) -> None:
    """gap <= 0 at the price, > 0 one tolerance step toward today: a crossing within tolerance."""
    toward_today = price * STEP if price < INDEX else price / STEP
    assert _gaps(model, book, price, vols)[which][row] <= 0.0, (price, which)
    assert _gaps(model, book, toward_today, vols)[which][row] > 0.0, (price, which)


@pytest.mark.parametrize("model_name", list(MODELS))
@pytest.mark.parametrize(("side", "inverse"), [(1.0, False), (-1.0, False), (1.0, True)])
def test_every_model_price_is_a_crossing_of_its_own_maintenance(
    model_name: str, side: float, inverse: bool
) -> None:
    model = MODELS[model_name]
    book, quantity, collateral = _perp_book(side=side, inverse=inverse)
    market = MarketState.build(book.instruments, valuation_ns=VALUATION_NS, index_prices={"BTC": INDEX})
    market = at_par(market, book)
    levels = model_price_levels(model, book, market)
    liquidation = levels.liquidation_price[0, 0]
    bankruptcy = levels.bankruptcy_price[0, 0]
    if liquidation == INDEX:  # already below this model's maintenance today
        assert _gaps(model, book, INDEX, {})[0][0] <= 0.0
    elif side > 0:  # a long is liquidated on the way down
        assert liquidation == levels.liquidation_below[0, 0] and liquidation < INDEX
    elif np.isfinite(liquidation):
        assert liquidation == levels.liquidation_above[0, 0] and liquidation > INDEX
    if np.isfinite(liquidation) and liquidation != INDEX:
        _check_crossing(model, book, 0, liquidation, 0, {})
        # liquidation (equity = MM >= 0) comes before bankruptcy (equity = 0) on the way
        if np.isfinite(bankruptcy):
            assert abs(np.log(liquidation / INDEX)) <= abs(np.log(bankruptcy / INDEX)) + 1e-12
    # bankruptcy (equity = 0) is the same for every model and matches the closed form
    _, closed_bankruptcy = isolated_prices(
        quantity=[quantity],
        contract_size=[book.instruments.contract_size[0]],
        entry_price=[INDEX],
        collateral=[collateral],
        maintenance_rate=[0.05],
        inverse=[inverse],
    )
    if np.isnan(closed_bankruptcy[0]):
        assert np.isnan(bankruptcy)
    else:
        assert bankruptcy == pytest.approx(closed_bankruptcy[0], rel=1e-9)
        _check_crossing(model, book, 0, bankruptcy, 1, {})


@pytest.mark.parametrize(("side", "inverse"), [(1.0, False), (-1.0, False), (1.0, True), (-1.0, True)])
def test_cross_model_matches_closed_form_and_vectorised_root(side: float, inverse: bool) -> None:
    book, quantity, collateral = _perp_book(side=side, inverse=inverse)
    market = MarketState.build(book.instruments, valuation_ns=VALUATION_NS, index_prices={"BTC": INDEX})
    market = at_par(market, book)
    by_model = model_price_levels(CrossMargin(), book, market)
    vectorised = cross_price_levels(book, market)
    closed, _ = isolated_prices(
        quantity=[quantity],
        contract_size=[book.instruments.contract_size[0]],
        entry_price=[INDEX],
        collateral=[collateral],
        maintenance_rate=[0.05],
        inverse=[inverse],
    )
    for price in (by_model.liquidation_price[0, 0], vectorised.liquidation_price[0, 0]):
        if np.isnan(closed[0]):
            assert np.isnan(price)
        else:
            assert price == pytest.approx(closed[0], rel=CLOSED_FORM)
    np.testing.assert_array_equal(by_model.bankruptcy_price, vectorised.bankruptcy_price)


def test_never_liquidated_in_range_is_null_for_every_model() -> None:
    book = book_from_rows(
        assets=[Asset(symbol="USDC"), Asset(symbol="BTC")],
        instruments=[Instrument(id="P", kind=InstrumentKind.PERPETUAL, underlying="BTC", margin=FLAT)],
        balances={"rich": {"USDC": 1_000_000.0}},
        positions=[("rich", "P", 0.01, INDEX)],
    )
    market = MarketState.build(book.instruments, valuation_ns=VALUATION_NS, index_prices={"BTC": INDEX})
    market = at_par(market, book)
    for model in MODELS.values():
        levels = model_price_levels(model, book, market)
        for values in (
            levels.liquidation_price,
            levels.liquidation_below,
            levels.liquidation_above,
            levels.bankruptcy_price,
        ):
            assert np.isnan(values[0, 0]), model.name


def test_portfolio_option_book_agrees_with_brute_force_repricing() -> None:
    book = option_book(index_usd=INDEX, valuation_ns=VALUATION_NS)
    vols = IMPLIED_VOLS
    model = MODELS["portfolio"]
    market = MarketState.build(
        book.instruments, valuation_ns=VALUATION_NS, index_prices={"BTC": INDEX}, implied_vols=vols
    )
    levels = model_price_levels(model, book, at_par(market, book))
    # Brute force: the whole book at every price of a fine grid (1.5 % steps out to ×1/3 and ×3).
    grid_below = INDEX * np.exp(-np.arange(1, BRUTE_POINTS + 1) * BRUTE_STEP)
    grid_above = INDEX * np.exp(np.arange(1, BRUTE_POINTS + 1) * BRUTE_STEP)
    gap_below = np.array([_gaps(model, book, p, vols)[0] for p in grid_below])
    gap_above = np.array([_gaps(model, book, p, vols)[0] for p in grid_above])
    assert np.all(_gaps(model, book, INDEX, vols)[0] > 0.0)
    found_both_sides = 0
    for row in range(book.n_accounts):
        for found, grid, gaps in (
            (levels.liquidation_below[row, 0], grid_below, gap_below[:, row]),
            (levels.liquidation_above[row, 0], grid_above, gap_above[:, row]),
        ):
            first = np.flatnonzero(gaps <= 0.0)
            if first.size == 0:  # no crossing on the brute-force grid: none found, or beyond it
                assert np.isnan(found) or abs(np.log(found / INDEX)) > BRUTE_POINTS * BRUTE_STEP
                continue
            # the solver's price lies in the first brute-force interval that crosses
            nearer = INDEX if first[0] == 0 else grid[first[0] - 1]
            assert min(nearer, grid[first[0]]) <= found <= max(nearer, grid[first[0]]), (row, found)
            _check_crossing(model, book, row, found, 0, vols)
            found_both_sides += 1
    assert found_both_sides == 2  # the short-vol book is liquidated on both sides
    assert np.isfinite(levels.liquidation_below[0, 0]) and np.isfinite(levels.liquidation_above[0, 0])
    assert np.isnan(levels.liquidation_price[1, 0])  # the long put covers the perp's downside
    assert levels.liquidation_price[0, 0] in (levels.liquidation_below[0, 0], levels.liquidation_above[0, 0])


def test_root_search_finds_the_nearest_root_each_side() -> None:
    """Two roots per side for one account (the nearer is reported), one for another, none for a third."""
    roots = np.array([[-0.3, -1.2, 0.05, 0.8], [-0.4, -5.0, 2.0, 3.0]])

    def gap(x: np.ndarray, active: np.ndarray) -> np.ndarray:
        near = np.array([np.prod(x[0] - roots[0]), np.prod(x[1] - roots[1]), 1.0 + 0.0 * x[2]])
        return near

    found = nearest_roots(gap, 3, tolerance=1e-10)
    assert found.below[:2] == pytest.approx([-0.3, -0.4], abs=1e-10)
    assert found.above[:2] == pytest.approx([0.05, 2.0], abs=1e-10)
    assert np.isnan(found.below[2]) and np.isnan(found.above[2]) and np.isnan(found.nearest[2])
    assert found.nearest[:2] == pytest.approx([0.05, -0.4], abs=1e-10)
