"""Sensitivity (SIMM-style delta) margin: hand-worked charges, the SIMM worked example, exact greeks
against finite differences of the book's own value path, the comparison with the full-revaluation
grid, and the margin-model contract over random books."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossmargin.core.assets import Asset, HaircutTier
from crossmargin.core.book import Book
from crossmargin.core.instruments import (
    Instrument,
    InstrumentKind,
    InstrumentTable,
    OptionType,
    Settlement,
)
from crossmargin.core.margin import MarginModel
from crossmargin.core.margin.portfolio import PortfolioMargin, PortfolioParams
from crossmargin.core.margin.sensitivity import (
    SensitivityMargin,
    SensitivityParams,
    correlated_norm,
    vega_bucket_index,
)
from crossmargin.core.market import MarketState
from crossmargin.core.scenarios import GridSpec, VolShock
from crossmargin.errors import InputError
from tests.builders import (
    NS_PER_DAY,
    VALUATION_NS,
    RandomBook,
    at_par,
    book_from_rows,
    random_books,
    usd_asset,
)

REL_TOLERANCE = 1e-12
# Central differences with a 1e-4 relative bump: O(h²) truncation on smooth Black-76 values.
FD_BUMP = 1e-4
FD_REL_TOLERANCE = 1e-6
SIMM_EXAMPLE_TOLERANCE = 0.005  # the notes quote K to the cent
SCALE_REL_TOLERANCE = 1e-9

BTC_USD = 50_000.0
ETH_USD = 2_500.0
PARAMS = SensitivityParams(
    delta_risk_weight={"BTC": 0.16, "ETH": 0.20},
    correlation={("BTC", "ETH"): 0.8},
    maintenance_fraction=0.8,
)
MODEL = SensitivityMargin(PARAMS)

LINEAR = InstrumentTable.from_instruments(
    [
        Instrument(id="BTC-SPOT", kind=InstrumentKind.SPOT, underlying="BTC"),
        Instrument(id="BTC-PERP", kind=InstrumentKind.PERPETUAL, underlying="BTC"),
        Instrument(id="ETH-PERP", kind=InstrumentKind.PERPETUAL, underlying="ETH"),
    ]
)
LINEAR_MARKET = MarketState.build(
    LINEAR, valuation_ns=VALUATION_NS, index_prices={"BTC": BTC_USD, "ETH": ETH_USD}
)


def _btc_asset(haircut: float = 0.0) -> Asset:
    return Asset(symbol="BTC", haircut_tiers=(HaircutTier(above=0.0, haircut=haircut),))


# ------------------------------------------------------------------------------ hand-worked charges


def test_two_underlying_delta_margin_is_the_correlated_norm() -> None:
    """Long 2 BTC perp (D₁ = 100,000), short 20 ETH perp (D₂ = -50,000): WS = (16,000, -10,000),
    K = sqrt(WS₁² + WS₂² + 2ρ WS₁ WS₂) with ρ = 0.8 = sqrt(256e6 + 100e6 - 256e6) = 10,000."""
    book = book_from_rows(
        assets=[usd_asset()],
        instruments=LINEAR,
        balances={"a": {"USDC": 100_000.0}},
        positions=[("a", "BTC-PERP", 2.0, 48_000.0), ("a", "ETH-PERP", -20.0, 2_600.0)],
    )
    sens = MODEL.sensitivities(book, at_par(LINEAR_MARKET, book))
    np.testing.assert_allclose(sens.delta_usd, [[100_000.0, -50_000.0]], rtol=REL_TOLERANCE)
    ws1, ws2, rho = 0.16 * 100_000.0, 0.20 * -50_000.0, 0.8
    expected = math.sqrt(ws1**2 + ws2**2 + 2.0 * rho * ws1 * ws2)
    result = MODEL.evaluate(book, at_par(LINEAR_MARKET, book))
    assert expected == pytest.approx(10_000.0, rel=REL_TOLERANCE)
    assert result.initial_margin_usd[0] == pytest.approx(expected, rel=REL_TOLERANCE)
    assert result.maintenance_margin_usd[0] == pytest.approx(0.8 * expected, rel=REL_TOLERANCE)
    assert result.model == "sensitivity"
    # Equity as every model sees it: collateral + PnL 2·2,000 - 20·(-100) = 106,000.
    assert result.equity_usd[0] == pytest.approx(106_000.0, rel=REL_TOLERANCE)


def test_hedged_linear_book_needs_no_delta_margin() -> None:
    book = book_from_rows(
        assets=[usd_asset()],
        instruments=LINEAR,
        balances={"a": {"USDC": 10_000.0}},
        positions=[("a", "BTC-SPOT", 3.0, 40_000.0), ("a", "BTC-PERP", -3.0, 45_000.0)],
    )
    charges = MODEL.charges(book, at_par(LINEAR_MARKET, book))
    assert charges.delta_usd[0] == 0.0
    assert MODEL.evaluate(book, at_par(LINEAR_MARKET, book)).initial_margin_usd[0] == 0.0


def test_collateral_btc_counts_as_delta_but_never_adds_margin() -> None:
    """1 BTC at a 10 % haircut is 45,000 USD of delta: it offsets a short perp, but on its own (or
    on the same side as the positions) it costs nothing beyond the positions' charge."""
    book = book_from_rows(
        assets=[usd_asset(), _btc_asset(haircut=0.1)],
        instruments=LINEAR,
        balances={
            "hedged": {"BTC": 1.0},
            "alone": {"BTC": 1.0},
            "same-side": {"BTC": 1.0},
            "over-hedged": {"BTC": 1.0},
        },
        positions=[
            ("hedged", "BTC-PERP", -0.9, BTC_USD),
            ("same-side", "BTC-PERP", 0.5, BTC_USD),
            ("over-hedged", "BTC-PERP", -2.0, BTC_USD),
        ],
    )
    sens = MODEL.sensitivities(book, at_par(LINEAR_MARKET, book))
    np.testing.assert_allclose(sens.collateral_delta_usd[:, 0], 45_000.0, rtol=REL_TOLERANCE)
    np.testing.assert_allclose(sens.collateral_delta_usd[:, 1], 0.0)
    im = MODEL.evaluate(book, at_par(LINEAR_MARKET, book)).initial_margin_usd
    assert im[0] == pytest.approx(0.0, abs=1e-9)  # 45,000 - 45,000
    assert im[1] == 0.0  # collateral only: zero positions need zero margin
    assert im[2] == pytest.approx(0.16 * 25_000.0, rel=REL_TOLERANCE)  # positions only
    assert im[3] == pytest.approx(0.16 * 55_000.0, rel=REL_TOLERANCE)  # 100,000 - 45,000


def test_simm_worked_example_through_the_aggregation() -> None:
    """Research notes §5.3: equity bucket 11, RW 19, ρ 0.45, s = (+100, -60) USD per 1 %:
    WS = (1,900, -1,140), K = sqrt(2,960,200) = 1,720.52."""
    sensitivities = np.array([100.0, -60.0])
    weighted = 19.0 * sensitivities
    correlation = np.array([[1.0, 0.45], [0.45, 1.0]])
    np.testing.assert_allclose(weighted, [1_900.0, -1_140.0])
    k = correlated_norm(weighted, correlation)
    assert float(k) == pytest.approx(1_720.52, abs=SIMM_EXAMPLE_TOLERANCE)
    assert float(k) ** 2 == pytest.approx(2_960_200.0, rel=REL_TOLERANCE)
    # Rows are accounts: the same pair twice and its negative give the same K.
    np.testing.assert_allclose(correlated_norm(np.array([weighted, -weighted]), correlation), [k, k])


# ------------------------------------------------------------------- exact greeks of the value path

MIXED = InstrumentTable.from_instruments(
    [
        Instrument(
            id="BTC-INV-PERP",
            kind=InstrumentKind.PERPETUAL,
            underlying="BTC",
            settlement=Settlement.INVERSE,
            contract_size=10.0,
        ),
        Instrument(
            id="BTC-INV-FUT",
            kind=InstrumentKind.FUTURE,
            underlying="BTC",
            settlement=Settlement.INVERSE,
            contract_size=10.0,
            expiry_ns=VALUATION_NS + 90 * NS_PER_DAY,
        ),
        Instrument(
            id="ETH-FUT",
            kind=InstrumentKind.FUTURE,
            underlying="ETH",
            expiry_ns=VALUATION_NS + 30 * NS_PER_DAY,
        ),
        Instrument(
            id="BTC-INV-C",
            kind=InstrumentKind.OPTION,
            underlying="BTC",
            settlement=Settlement.INVERSE,
            expiry_ns=VALUATION_NS + 20 * NS_PER_DAY,
            strike=55_000.0,
            option_type=OptionType.CALL,
        ),
        Instrument(
            id="BTC-P",
            kind=InstrumentKind.OPTION,
            underlying="BTC",
            expiry_ns=VALUATION_NS + 200 * NS_PER_DAY,
            strike=45_000.0,
            option_type=OptionType.PUT,
        ),
        Instrument(
            id="ETH-C",
            kind=InstrumentKind.OPTION,
            underlying="ETH",
            expiry_ns=VALUATION_NS + 3 * NS_PER_DAY,
            strike=2_600.0,
            option_type=OptionType.CALL,
        ),
    ]
)
MIXED_VOLS = {"BTC-INV-C": 0.55, "BTC-P": 0.65, "ETH-C": 0.8}
MIXED_MARKS = {"BTC-INV-PERP": 50_300.0, "BTC-INV-FUT": 51_200.0, "ETH-FUT": 2_520.0}


def _mixed_market(*, factor: float = 1.0, vol_factor: float = 1.0) -> MarketState:
    """The whole complex scaled by `factor` (index, marks), every implied vol by `vol_factor`."""
    return MarketState.build(
        MIXED,
        valuation_ns=VALUATION_NS,
        index_prices={"BTC": BTC_USD * factor, "ETH": ETH_USD * factor},
        rate=0.03,
        mark_prices={k: v * factor for k, v in MIXED_MARKS.items()},
        implied_vols={k: v * vol_factor for k, v in MIXED_VOLS.items()},
        asset_symbols=("USDC",),  # _mixed_book's collateral
        asset_prices={"USDC": 1.0},
    )


def _mixed_book() -> Book:
    # Entries far from the marks, so the inverse PnL (which moves with S) is large.
    return book_from_rows(
        assets=[usd_asset()],
        instruments=MIXED,
        balances={"a": {"USDC": 1e6}, "b": {"USDC": 1e6}, "empty": {"USDC": 1.0}},
        positions=[
            ("a", "BTC-INV-PERP", -20_000.0, 35_000.0),
            ("a", "BTC-INV-FUT", 5_000.0, 70_000.0),
            ("a", "BTC-INV-C", -3.0, 0.02),
            ("a", "ETH-C", 40.0, 30.0),
            ("b", "ETH-FUT", -15.0, 2_000.0),
            ("b", "BTC-P", -2.0, 1_500.0),
            ("b", "BTC-INV-PERP", 1_000.0, 60_000.0),
        ],
    )


def _position_value(book: Book, market: MarketState) -> np.ndarray:
    return MODEL.evaluate(book, market).position_value_usd


def test_delta_gamma_and_vega_are_derivatives_of_the_position_value() -> None:
    """D = S·∂V/∂S, Γ = S²·∂²V/∂S² (whole complex scaled), ν = σ·∂V/∂σ (all vols scaled), checked
    by central differences of the position value that every model reports. The inverse rows need
    the entry-dependent term q·cs·S/E: q·delta_usd·S alone misses the USD value of the coin PnL."""
    book = _mixed_book()
    sens = MODEL.sensitivities(book, _mixed_market())
    h = FD_BUMP
    up = _position_value(book, _mixed_market(factor=1.0 + h))
    down = _position_value(book, _mixed_market(factor=1.0 - h))
    mid = _position_value(book, _mixed_market())
    delta_fd = (up - down) / (2.0 * h)
    gamma_fd = (up - 2.0 * mid + down) / (h * h)
    vega_fd = (
        _position_value(book, _mixed_market(vol_factor=1.0 + h))
        - _position_value(book, _mixed_market(vol_factor=1.0 - h))
    ) / (2.0 * h)
    scale = np.abs(sens.position_delta_usd).sum(axis=1) + 1.0
    np.testing.assert_allclose(
        sens.position_delta_usd.sum(axis=1), delta_fd, rtol=0.0, atol=FD_REL_TOLERANCE * scale.max()
    )
    np.testing.assert_allclose(sens.cash_gamma_usd.sum(axis=1), gamma_fd, rtol=1e-3, atol=1e-2)
    np.testing.assert_allclose(
        sens.vega_usd.sum(axis=(1, 2)), vega_fd, rtol=0.0, atol=FD_REL_TOLERANCE * scale.max()
    )
    # The naive q·delta_usd·S differs from the exact inverse delta by the position's USD PnL.
    naive = -20_000.0 * 10.0 * BTC_USD / 50_300.0
    exact = -20_000.0 * 10.0 * BTC_USD / 35_000.0
    assert naive != pytest.approx(exact, rel=0.1)
    assert sens.position_delta_usd[2].tolist() == [0.0, 0.0]


def test_vega_buckets_follow_expiry_edges() -> None:
    years = np.array([0.5, 7.0, 29.9, 30.0, 364.0, 365.0, 4_000.0, np.inf]) / 365.0
    buckets = vega_bucket_index(years, PARAMS.vega_bucket_days)
    assert buckets.tolist() == [0, 1, 1, 2, 4, 5, 5, 5]
    sens = MODEL.sensitivities(_mixed_book(), _mixed_market())
    # BTC-INV-C 20 d -> bucket 1, BTC-P 200 d -> bucket 4, ETH-C 3 d -> bucket 0.
    assert np.flatnonzero(sens.vega_usd[0, 0]).tolist() == [1]
    assert np.flatnonzero(sens.vega_usd[0, 1]).tolist() == [0]
    assert np.flatnonzero(sens.vega_usd[1, 0]).tolist() == [4]


def test_curvature_charges_only_short_gamma() -> None:
    book = _mixed_book()
    sens = MODEL.sensitivities(book, _mixed_market())
    charges = MODEL.charges(book, _mixed_market())
    weights = PARAMS.risk_weights(sens.underlyings)
    expected = np.maximum(0.0, -0.5 * sens.cash_gamma_usd * weights**2).sum(axis=1)
    np.testing.assert_allclose(charges.curvature_usd, expected, rtol=REL_TOLERANCE)
    assert sens.cash_gamma_usd[1, 0] < 0.0 < charges.curvature_usd[1]  # short BTC put
    off = SensitivityMargin(SensitivityParams(curvature=False)).charges(book, _mixed_market())
    assert np.all(off.curvature_usd == 0.0)


# ---------------------------------------------------------------- comparison with the scenario grid

GRID_SHOCKS = {
    # Deribit PM as published: vol up 50 % / down 25 % relative, scaled (30/DTE)^0.30 below 30 days
    # and ^0.13 beyond (https://support.deribit.com/hc/en-us/articles/25944756247837-Portfolio-Margin).
    "deribit relative 0.30/0.13": VolShock(up=0.5, down=0.25, short_power=0.3, long_power=0.13),
    # The grid as first written: ±0.5 / 0.25 vol points absolute, (30/DTE)^0.3 throughout.
    "absolute 0.3": VolShock(up=0.5, down=0.25, relative=False, short_power=0.3, long_power=0.3),
}


def _grid_model(vol: VolShock) -> PortfolioMargin:
    return PortfolioMargin(PortfolioParams(default_grid=GridSpec(price_range=0.16, price_steps=9, vol=vol)))


def _single_position(
    instrument: Instrument, quantity: float, entry: float, vol: float | None
) -> tuple[Book, MarketState]:
    table = InstrumentTable.from_instruments([instrument])
    market = MarketState.build(
        table,
        valuation_ns=VALUATION_NS,
        index_prices={"BTC": BTC_USD},
        implied_vols={instrument.id: vol} if vol is not None else None,
    )
    book = book_from_rows(
        assets=[usd_asset()],
        instruments=table,
        balances={"a": {"USDC": 1e6}},
        positions=[("a", instrument.id, quantity, entry)],
    )
    market = at_par(market, book)
    return book, market


@pytest.mark.parametrize("shock", list(GRID_SHOCKS))
def test_sensitivity_undercharges_far_otm_short_call_relative_to_grid(shock: str) -> None:
    """Short 10 one-year calls struck at 2x the forward (r = 0), vol 60 %: most of the grid's loss
    is convexity in vol and the joint up-move/vol-up corner, which a linear vega charge and a
    one-sided gamma term miss."""
    call = Instrument(
        id="BTC-1Y-2X-C",
        kind=InstrumentKind.OPTION,
        underlying="BTC",
        expiry_ns=VALUATION_NS + 365 * NS_PER_DAY,
        strike=2.0 * BTC_USD,
        option_type=OptionType.CALL,
    )
    book, market = _single_position(call, -10.0, 0.0, 0.6)
    sensitivity_im = float(MODEL.evaluate(book, market).initial_margin_usd[0])
    grid_im = float(_grid_model(GRID_SHOCKS[shock]).evaluate(book, market).initial_margin_usd[0])
    charges = MODEL.charges(book, market)
    print(
        f"\nfar-OTM short call [{shock}]: sensitivity IM {sensitivity_im:,.0f} "
        f"(delta {charges.delta_usd[0]:,.0f}, vega {charges.vega_usd[0]:,.0f}, "
        f"curvature {charges.curvature_usd[0]:,.0f}) < grid IM {grid_im:,.0f}"
    )
    assert sensitivity_im < grid_im


@pytest.mark.parametrize("shock", list(GRID_SHOCKS))
@pytest.mark.parametrize("kind", ["perpetual", "atm-7d-call"])
def test_sensitivity_close_to_grid_at_the_money_short_dated(shock: str, kind: str) -> None:
    """A linear perpetual: both charge 16 % of notional. A short ATM 7-day linear call: curvature
    and delta stand in for the grid's corner; within a factor of 2 either way."""
    if kind == "perpetual":
        perp = Instrument(id="BTC-PERP", kind=InstrumentKind.PERPETUAL, underlying="BTC")
        book, market = _single_position(perp, 3.0, BTC_USD, None)
    else:
        call = Instrument(
            id="BTC-7D-C",
            kind=InstrumentKind.OPTION,
            underlying="BTC",
            expiry_ns=VALUATION_NS + 7 * NS_PER_DAY,
            strike=BTC_USD,
            option_type=OptionType.CALL,
        )
        book, market = _single_position(call, -10.0, 0.0, 0.6)
    sensitivity_im = float(MODEL.evaluate(book, market).initial_margin_usd[0])
    grid_im = float(_grid_model(GRID_SHOCKS[shock]).evaluate(book, market).initial_margin_usd[0])
    print(f"\n{kind} [{shock}]: sensitivity IM {sensitivity_im:,.0f}, grid IM {grid_im:,.0f}")
    assert 0.5 * grid_im <= sensitivity_im <= 2.0 * grid_im
    if kind == "perpetual":
        assert sensitivity_im == pytest.approx(0.16 * 3.0 * BTC_USD, rel=REL_TOLERANCE)
        assert sensitivity_im == pytest.approx(grid_im, rel=1e-9)


# ---------------------------------------------------------------------------------- parameters


def test_params_validation() -> None:
    with pytest.raises(InputError, match="positive semi-definite"):
        SensitivityParams(
            correlation={("BTC", "ETH"): 0.9, ("BTC", "SOL"): 0.9, ("ETH", "SOL"): -0.9},
        )
    with pytest.raises(InputError, match="given twice"):
        SensitivityParams(correlation={("BTC", "ETH"): 0.8, ("ETH", "BTC"): 0.7})
    with pytest.raises(InputError, match="pair"):
        SensitivityParams(correlation={("BTC", "BTC"): 0.8})
    with pytest.raises(InputError, match="vega_bucket_days"):
        SensitivityParams(vega_bucket_days=(0.0, 30.0, 7.0, math.inf))
    with pytest.raises(InputError, match="vega_bucket_days"):
        SensitivityParams(vega_bucket_days=(1.0, math.inf))
    with pytest.raises(InputError, match="maintenance_fraction"):
        SensitivityParams(maintenance_fraction=1.5)
    with pytest.raises(InputError, match="delta_risk_weight"):
        SensitivityParams(delta_risk_weight={"BTC": -0.1})


def test_unlisted_underlying_takes_defaults() -> None:
    params = SensitivityParams(default_delta_risk_weight=0.3, default_correlation=0.25)
    np.testing.assert_allclose(params.risk_weights(["BTC", "DOGE"]), [0.16, 0.3])
    np.testing.assert_allclose(params.correlation_matrix(["BTC", "ETH", "DOGE"])[0], [1.0, 0.8, 0.25])


def test_breakdown_follows_the_margin_model_protocol() -> None:
    model: MarginModel = MODEL
    book = _mixed_book()
    parts = model.breakdown(book, _mixed_market(), [0, 1])
    assert parts.position_instrument.size == 7
    np.testing.assert_allclose(
        np.bincount(parts.position_account, weights=parts.value_usd, minlength=3)[:2],
        model.evaluate(book, _mixed_market()).position_value_usd[:2],
        rtol=REL_TOLERANCE,
    )


# ------------------------------------------------------------------------ contract on random books


@given(case=random_books())
def test_im_at_least_mm_at_least_zero_finite_and_deterministic(case: RandomBook) -> None:
    first = MODEL.evaluate(case.book, case.market)
    second = MODEL.evaluate(case.book, case.market)
    assert np.all(np.isfinite(first.initial_margin_usd))
    assert np.all(first.maintenance_margin_usd >= 0.0)
    assert np.all(first.initial_margin_usd >= first.maintenance_margin_usd)
    np.testing.assert_array_equal(first.initial_margin_usd, second.initial_margin_usd)
    np.testing.assert_array_equal(first.equity_usd, second.equity_usd)


@given(case=random_books(with_positions=False))
def test_zero_positions_need_zero_margin(case: RandomBook) -> None:
    result = MODEL.evaluate(case.book, case.market)
    assert np.all(result.initial_margin_usd == 0.0)
    assert np.all(result.maintenance_margin_usd == 0.0)


@given(case=random_books(), k=st.floats(min_value=0.1, max_value=10.0))
def test_scaling_positions_scales_every_charge(case: RandomBook, k: float) -> None:
    """Without coin collateral every charge is homogeneous of degree 1 in the positions."""
    book = case.book
    coins = [n for n, s in enumerate(book.assets.symbols) if s in book.instruments.underlyings]
    balances = book.balances.copy()
    balances[:, coins] = 0.0
    book = book.with_balances(balances)
    base = MODEL.charges(book, case.market)
    scaled = MODEL.charges(book.scaled(k), case.market)
    for name in ("delta_usd", "vega_usd", "curvature_usd"):
        expected = k * getattr(base, name)
        np.testing.assert_allclose(
            getattr(scaled, name), expected, rtol=SCALE_REL_TOLERANCE, atol=1e-9, err_msg=name
        )


@given(case=random_books(tiered_haircuts=False), k=st.floats(min_value=0.1, max_value=10.0))
def test_scaling_positions_and_collateral_scales_delta_margin(case: RandomBook, k: float) -> None:
    """Single-tier haircuts make collateral value linear in the balance, so the min rule keeps
    delta margin homogeneous when positions and balances scale together."""
    book = case.book
    base = MODEL.charges(book, case.market).delta_usd
    scaled_book = book.scaled(k).with_balances(book.balances * k)
    scaled = MODEL.charges(scaled_book, case.market).delta_usd
    np.testing.assert_allclose(scaled, k * base, rtol=SCALE_REL_TOLERANCE, atol=1e-9)


@pytest.mark.parametrize("seed", [None, 3, 7])  # None: examples/desk.yaml (inverse contracts)
def test_sensitivities_are_the_sparse_products_bit_for_bit(seed: int | None) -> None:
    """book_sensitivities sums each position's delta, gamma and vega into its account with
    np.bincount (no scipy on the margin path); the reference is the sparse product Q @ map it
    replaced (scipy's SpGEMM adds each row's terms in position order, as bincount does)."""
    import scipy.sparse as sp

    from crossmargin.core.margin.sensitivity import book_sensitivities
    from crossmargin.core.pricing import entry_term, revalue
    from crossmargin.core.synthetic import SynthSpec, synth_book, synth_market

    if seed is None:
        from crossmargin.adapters.files import load_book
        from tests.adapters.files.bad_books import DESK

        loaded = load_book(DESK)
        book, market = loaded.book, loaded.market
        assert np.any(book.instruments.reciprocal_entry[book.positions.indices])
    else:
        book = synth_book(SynthSpec(n_accounts=3_000, seed=seed))
        market = synth_market(book.instruments)
    valuation = revalue(book.instruments, market)
    params = SensitivityParams()
    got = book_sensitivities(book, market, valuation, params)

    table = book.instruments
    n_i, n_u, n_b = table.n_instruments, len(table.underlyings), params.n_vega_buckets
    spot, inverse, u = valuation.spot_usd, table.reciprocal_entry, table.underlying_index
    bucket = vega_bucket_index(valuation.years_to_expiry, params.vega_bucket_days)
    rows = np.arange(n_i)
    unit_map = sp.csr_array(
        (
            np.concatenate(
                [
                    np.where(inverse, 0.0, valuation.delta_usd * spot),
                    valuation.gamma_usd * spot * spot,
                    np.where(table.is_option, valuation.vega_usd * valuation.implied_vol, 0.0),
                ]
            ),
            (np.tile(rows, 3), np.concatenate([u, n_u + u, 2 * n_u + u * n_b + bucket])),
        ),
        shape=(n_i, 2 * n_u + n_u * n_b),
    )
    entry_map = sp.csr_array((np.where(inverse, valuation.entry_coefficient_usd, 0.0), (rows, u)), shape=(n_i, n_u))
    q = book.positions.to_scipy()
    weighted = sp.csr_array(
        (q.data * entry_term(book.entry_price, inverse[q.indices]), q.indices, q.indptr), shape=q.shape
    )
    per_account = (q @ unit_map).toarray()
    expected_delta = per_account[:, :n_u] + (weighted @ entry_map).toarray()
    assert np.any(expected_delta != 0.0) and np.any(per_account[:, 2 * n_u :] != 0.0)
    np.testing.assert_array_equal(got.position_delta_usd, expected_delta)
    np.testing.assert_array_equal(got.cash_gamma_usd, per_account[:, n_u : 2 * n_u])
    np.testing.assert_array_equal(got.vega_usd, per_account[:, 2 * n_u :].reshape(-1, n_u, n_b))
