"""The crowding add-on: hand-computed numbers on a four-account book, its monotonicity (hypothesis),
under cross and portfolio margin, and per-account exactness on sub-books (the incremental engine)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossmargin.core.assets import Asset
from crossmargin.core.instruments import Instrument, InstrumentKind, InstrumentTable, MarginSchedule
from crossmargin.core.margin import CrossMargin
from crossmargin.core.margin.crowding import (
    CrowdedMargin,
    CrowdingParams,
    MarketCrowding,
    account_exposure,
    crowding_addon_usd,
    crowding_rate,
    crowding_score,
    crowding_state,
    crowding_terms,
)
from crossmargin.core.margin.portfolio import PortfolioMargin
from crossmargin.core.margin.presets import portfolio_preset
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import revalue
from crossmargin.errors import InputError
from tests.builders import VALUATION_NS, RandomBook, book_from_rows, random_books, usd_asset

REL_TOLERANCE = 1e-12
FIVE_PERCENT = MarginSchedule.flat(initial_rate=0.05, maintenance_rate=0.025)
TABLE = InstrumentTable.from_instruments(
    [
        Instrument(id="BTC-PERP", kind=InstrumentKind.PERPETUAL, underlying="BTC", margin=FIVE_PERCENT),
        Instrument(id="ETH-PERP", kind=InstrumentKind.PERPETUAL, underlying="ETH", margin=FIVE_PERCENT),
    ]
)
MARKET = MarketState.build(
    TABLE,
    valuation_ns=VALUATION_NS,
    index_prices={"BTC": 50_000.0, "ETH": 2_500.0},
    asset_symbols=("USDC", "BTC"),  # the books below: USDC, then BTC
    asset_prices={"USDC": 1.0},
)
PARAMS = CrowdingParams()


def crowded_book():  # type: ignore[no-untyped-def]
    """Longs a (2 BTC = 100k), b and c (1 BTC = 50k each); m short 3 BTC (150k) holding 1 BTC
    (50k) of collateral, which offsets its short: D_m = -100k. So L = 200k, S = 100k."""
    return book_from_rows(
        assets=[usd_asset(), Asset(symbol="BTC")],
        instruments=TABLE,
        balances={
            "a": {"USDC": 50_000.0},
            "b": {"USDC": 20_000.0},
            "c": {"USDC": 20_000.0},
            "m": {"USDC": 100_000.0, "BTC": 1.0},
        },
        positions=[
            ("a", "BTC-PERP", 2.0, 50_000.0),
            ("b", "BTC-PERP", 1.0, 50_000.0),
            ("c", "BTC-PERP", 1.0, 50_000.0),
            ("m", "BTC-PERP", -3.0, 50_000.0),
        ],
    )


# Funding 30 % a year (longs pay) and open interest 1.375x its trailing mean, for BTC.
HISTORY = MarketCrowding(
    underlyings=("BTC",), funding_apr=np.array([0.30]), open_interest_ratio=np.array([1.375])
)


def test_crowding_state_hand_computed() -> None:
    """imbalance (200k - 100k) / 300k = 1/3; long HHI 0.5² + 0.25² + 0.25² = 0.375, short HHI 1.
    Ramps: funding (0.30 - 0.10) / 0.40 = 0.5 (long side; 0 short); OI (1.375 - 1.15) / 0.45 =
    0.5; imbalance (1/3 - 0.2) / 0.6 = 2/9 (long; 0 short); HHI long (0.375 - 0.1) / 0.4 = 0.6875,
    short 1. Weights 0.3, 0.3, 0.2, 0.2:
    long  = 0.3·0.5 + 0.3·0.5 + 0.2·2/9 + 0.2·0.6875 = 0.48194...
    short = 0 + 0.3·0.5 + 0 + 0.2·1 = 0.35."""
    book = crowded_book()
    state = crowding_state(book, revalue(TABLE, MARKET), PARAMS, HISTORY)
    assert state.long_total_usd[0] == pytest.approx(200_000.0, rel=REL_TOLERANCE)
    assert state.short_total_usd[0] == pytest.approx(100_000.0, rel=REL_TOLERANCE)
    assert state.imbalance[0] == pytest.approx(1.0 / 3.0, rel=REL_TOLERANCE)
    assert state.concentration_long[0] == pytest.approx(0.375, rel=REL_TOLERANCE)
    assert state.concentration_short[0] == pytest.approx(1.0, rel=REL_TOLERANCE)
    assert state.score_long[0] == pytest.approx(
        0.15 + 0.15 + 0.2 * 2.0 / 9.0 + 0.2 * 0.6875, rel=REL_TOLERANCE
    )
    assert state.score_short[0] == pytest.approx(0.35, rel=REL_TOLERANCE)
    # ETH: nobody holds it and it has no history: no crowding.
    assert state.score_long[1] == 0.0 and state.score_short[1] == 0.0


def test_crowding_addon_hand_computed() -> None:
    """rate = 0.05 · c · (1 + 2·share): a (share 0.5) 0.05·0.48194·2 on 100k = 4,819.44; b and c
    (0.25) 0.05·0.48194·1.5 on 50k = 1,807.29 each; m (share 1 of the short side) 0.05·0.35·3 =
    0.0525 on 100k = 5,250 (its BTC collateral offsets a third of its short)."""
    book = crowded_book()
    valuation = revalue(TABLE, MARKET)
    state = crowding_state(book, valuation, PARAMS, HISTORY)
    score_long = 0.15 + 0.15 + 0.2 * 2.0 / 9.0 + 0.2 * 0.6875
    expected = [
        100_000.0 * 0.05 * score_long * 2.0,
        50_000.0 * 0.05 * score_long * 1.5,
        50_000.0 * 0.05 * score_long * 1.5,
        100_000.0 * 0.0525,
    ]
    addon = crowding_addon_usd(book, valuation, state, PARAMS)
    np.testing.assert_allclose(addon, expected, rtol=REL_TOLERANCE)
    assert addon[0] == pytest.approx(4_819.444444444444, rel=1e-12)
    assert addon[3] == pytest.approx(5_250.0, rel=1e-12)


def test_crowding_cap_binds() -> None:
    """rate_cap 0.03 caps m's 0.0525: add-on 3,000 on 100k."""
    params = CrowdingParams(rate_cap=0.03)
    book = crowded_book()
    valuation = revalue(TABLE, MARKET)
    addon = crowding_addon_usd(book, valuation, crowding_state(book, valuation, params, HISTORY), params)
    assert addon[3] == pytest.approx(3_000.0, rel=REL_TOLERANCE)


def test_crowding_collateral_never_creates_long_exposure() -> None:
    """A BTC balance with no BTC short is not an exposure; it offsets a short only up to zero."""
    book = book_from_rows(
        assets=[usd_asset(), Asset(symbol="BTC")],
        instruments=TABLE,
        balances={"idle": {"BTC": 3.0}, "hedged": {"BTC": 5.0}},
        positions=[("hedged", "BTC-PERP", -2.0, 50_000.0)],
    )
    exposure = account_exposure(book, revalue(TABLE, MARKET)).toarray()
    np.testing.assert_array_equal(exposure, np.zeros((2, 2)))


def test_crowded_cross_margin_adds_addon_to_im_and_half_to_mm() -> None:
    """Cross IM of a: 5 % of 100k = 5,000; with the add-on 5,000 + 4,819.44; MM 2,500 + half."""
    book = crowded_book()
    model = CrowdedMargin.measured(CrossMargin(), book, MARKET, PARAMS, HISTORY)
    base = CrossMargin().evaluate(book, MARKET)
    result = model.evaluate(book, MARKET)
    addon = crowding_addon_usd(book, revalue(TABLE, MARKET), model.state, PARAMS)  # type: ignore[arg-type]
    np.testing.assert_allclose(result.initial_margin_usd, base.initial_margin_usd + addon, rtol=REL_TOLERANCE)
    np.testing.assert_allclose(
        result.maintenance_margin_usd, base.maintenance_margin_usd + 0.5 * addon, rtol=REL_TOLERANCE
    )
    np.testing.assert_array_equal(result.equity_usd, base.equity_usd)
    assert result.initial_margin_usd[0] == pytest.approx(5_000.0 + 4_819.444444444444, rel=1e-12)
    assert result.model == "cross+crowding"
    # The breakdown's positions add up to the account requirement.
    parts = model.breakdown(book, MARKET, [0, 3])
    assert parts.initial_margin_usd.sum() == pytest.approx(result.initial_margin_usd[[0, 3]].sum(), rel=1e-12)


def test_crowded_portfolio_margin_adds_the_same_addon() -> None:
    book = crowded_book()
    base_model = PortfolioMargin(portfolio_preset("deribit-pm"))
    model = CrowdedMargin.measured(base_model, book, MARKET, PARAMS, HISTORY)
    base = base_model.evaluate(book, MARKET)
    result = model.evaluate(book, MARKET)
    addon = crowding_addon_usd(book, revalue(TABLE, MARKET), model.state, PARAMS)  # type: ignore[arg-type]
    np.testing.assert_allclose(result.initial_margin_usd - base.initial_margin_usd, addon, rtol=1e-9)
    assert np.all(addon > 0.0)


def test_crowding_addon_per_account_is_exact_on_sub_books() -> None:
    """With the state frozen, an account's add-on depends only on its own positions: evaluating
    any subset of accounts gives the same numbers (what keeps RiskEngine's incremental path exact)."""
    book = crowded_book()
    model = CrowdedMargin.measured(CrossMargin(), book, MARKET, PARAMS, HISTORY)
    full = model.evaluate(book, MARKET).initial_margin_usd
    for rows in ([0], [3], [1, 3], [2, 0]):
        sub = model.evaluate(book.select(rows), MARKET).initial_margin_usd
        np.testing.assert_array_equal(sub, full[rows])


def test_crowding_params_reject_bad_values() -> None:
    with pytest.raises(InputError, match="funding_full_apr"):
        CrowdingParams(funding_threshold_apr=0.5, funding_full_apr=0.5)
    with pytest.raises(InputError, match="weight"):
        CrowdingParams(
            weight_funding=0.0, weight_open_interest=0.0, weight_imbalance=0.0, weight_concentration=0.0
        )
    with pytest.raises(InputError, match="rate_cap"):
        CrowdingParams(rate_cap=1.5)
    with pytest.raises(InputError, match="funding_apr"):
        MarketCrowding(
            underlyings=("BTC",), funding_apr=np.array([0.1, 0.2]), open_interest_ratio=np.array([1.0])
        )


def test_crowding_unknown_signals_drop_out_of_the_score() -> None:
    """Only OI known (ramp 0.5): score 0.5, not 0.3·0.5 = 0.15."""
    score = crowding_score(
        PARAMS, funding_apr=np.nan, open_interest_ratio=1.375, imbalance=np.nan, concentration=np.nan
    )
    assert float(score) == pytest.approx(0.5, rel=REL_TOLERANCE)


signal = st.floats(min_value=-2.0, max_value=3.0, allow_nan=False)
unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@given(
    funding=signal,
    oi=st.floats(min_value=0.0, max_value=3.0),
    imbalance=unit,
    hhi=unit,
    which=st.integers(min_value=0, max_value=3),
    bump=st.floats(min_value=0.0, max_value=2.0),
    share=unit,
)
def test_crowding_more_crowding_never_lowers_the_addon(
    funding: float, oi: float, imbalance: float, hhi: float, which: int, bump: float, share: float
) -> None:
    signals = [funding, oi, imbalance, hhi]
    more = list(signals)
    more[which] += bump
    names = ("funding_apr", "open_interest_ratio", "imbalance", "concentration")
    before = crowding_score(PARAMS, **dict(zip(names, signals, strict=True)))
    after = crowding_score(PARAMS, **dict(zip(names, more, strict=True)))
    assert after >= before
    assert crowding_rate(PARAMS, score=after, share=share) >= crowding_rate(PARAMS, score=before, share=share)


@given(score=unit, share=unit, bump=unit, slope=st.floats(min_value=0.0, max_value=10.0))
def test_crowding_larger_share_never_lowers_the_addon(
    score: float, share: float, bump: float, slope: float
) -> None:
    params = CrowdingParams(share_slope=slope)
    low = crowding_rate(params, score=score, share=share)
    high = crowding_rate(params, score=score, share=min(share + bump, 1.0))
    assert high >= low
    assert 0.0 <= low <= params.rate_cap


@settings(max_examples=25)
@given(
    funding=st.floats(min_value=-1.0, max_value=1.0),
    oi=st.floats(min_value=0.5, max_value=2.0),
    bump_funding=st.floats(min_value=0.0, max_value=1.0),
    bump_oi=st.floats(min_value=0.0, max_value=1.0),
)
def test_crowding_book_addon_monotone_in_market_signals(
    funding: float, oi: float, bump_funding: float, bump_oi: float
) -> None:
    """On the whole book: more open interest, and funding more against the side an account is on,
    never lowers any account's add-on (longs see +funding, shorts -funding)."""
    book = crowded_book()
    valuation = revalue(TABLE, MARKET)

    def addon(f: float, r: float) -> np.ndarray:
        history = MarketCrowding(
            underlyings=("BTC",), funding_apr=np.array([f]), open_interest_ratio=np.array([r])
        )
        return crowding_addon_usd(book, valuation, crowding_state(book, valuation, PARAMS, history), PARAMS)

    base = addon(funding, oi)
    longs_crowded = addon(funding + bump_funding, oi + bump_oi)
    shorts_crowded = addon(funding - bump_funding, oi + bump_oi)
    assert np.all(longs_crowded[:3] >= base[:3])
    assert np.all(shorts_crowded[3:] >= base[3:])


@settings(max_examples=25)  # each example margins a random book three ways
@given(
    case=random_books(max_accounts=5, max_instruments=6),
    funding=st.floats(min_value=-1.0, max_value=1.0),
    oi=st.floats(min_value=0.5, max_value=2.0),
)
def test_crowding_kernel_equals_sparse_reference(case: RandomBook, funding: float, oi: float) -> None:
    """The fused kernel and the sparse path agree on random books (options, inverse contracts,
    collateral in the underlying), and the breakdown's positions sum to the add-on."""
    book, market = case.book, case.market
    valuation = revalue(book.instruments, market)
    names = book.instruments.underlyings
    history = MarketCrowding(
        underlyings=names,
        funding_apr=np.full(len(names), funding),
        open_interest_ratio=np.full(len(names), oi),
    )
    state = crowding_state(book, valuation, PARAMS, history)
    kernel = crowding_addon_usd(book, valuation, state, PARAMS)
    reference = crowding_terms(book, valuation, state, PARAMS)
    np.testing.assert_allclose(kernel, reference, rtol=1e-9, atol=1e-9)
    model = CrowdedMargin(base=CrossMargin(), params=PARAMS, state=state)
    rows = list(range(book.n_accounts))
    parts = model.breakdown(book, market, rows)
    base = CrossMargin().breakdown(book, market, rows)
    added = np.bincount(
        np.repeat(np.arange(book.n_accounts), np.diff(book.positions.indptr)),
        weights=parts.initial_margin_usd - base.initial_margin_usd,
        minlength=book.n_accounts,
    )
    has_positions = np.diff(book.positions.indptr) > 0
    np.testing.assert_allclose(added[has_positions], kernel[has_positions], rtol=1e-9, atol=1e-6)
