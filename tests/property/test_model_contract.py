"""One contract for every margin model and preset (like scikit-learn's `check_estimator`).

Models (`MODEL_CASES`, one pytest id each): cross on the book's own schedules and on every
`TIER_PRESETS` table, isolated, portfolio under its default methodology and every
`PORTFOLIO_PRESETS` entry, sensitivity, cross and portfolio with the crowding add-on, and VaR/ES under every `VAR_PRESETS` entry, twice: on a
synthetic history built here (BTC, ETH, USDC; always runs) and on the shared daily closes
(`tests/conftest.py::shared_data_dir`: skipped outside CI when the data is absent).

Clauses, each a hypothesis test over random books (`tests/builders.py::random_books`):

  C1 empty      no positions -> IM = MM = 0, position value 0, equity = haircut collateral value
                (`core.collateral.value_collateral`).
  C2 sane       IM >= MM >= 0, every field finite, two evaluations (same model, and a model
                built afresh) equal bit for bit.
  C3 monotone   every position x k (k > 1) never lowers IM or MM.
  C4 linear     for models linear in size, IM(k·x) = k·IM(x) and MM(k·x) = k·MM(x) (to
                REL_TOLERANCE): cross and isolated on flat schedules (one tier, no per-unit
                growth), portfolio under the default methodology, paradex-pm, span and
                crossmargin-multi, sensitivity, and VaR/ES under every preset (a quantile or tail
                mean of k·loss is k times that of loss). Not claimed for the tier presets (rates
                step up with notional: superlinear) nor deribit-pm (its extended table subtracts a
                fixed 100,000 USD dampener per account: affine, not linear).
  C5 haircut    a larger haircut never raises equity (nor collateral value).
  C6 explain    the breakdown adds up: position IM/MM contributions sum to the account's IM/MM
                (accounts holding positions; one without has nothing to split and C1 holds it to
                zero), position values to its position value, collateral contributions to its
                collateral value.

Where collateral is itself a risk factor (portfolio, sensitivity and VaR reprice coin and
stablecoin collateral with the scenarios), scaling only the positions is not a homogeneous change
of the account: a short perpetual that hedges BTC collateral needs less margin when it grows
towards the collateral (`test_collateral_hedge_is_why_risk_models_scale_without_collateral` shows
one). C3 and C4 therefore hold for those models on books without collateral; that is the clause
being precise, not the model being wrong.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from crossmargin.adapters.history.prices import load_price_history
from crossmargin.adapters.volatility import GarchFilter
from crossmargin.core.assets import Asset, AssetTable, HaircutTier
from crossmargin.core.book import Book
from crossmargin.core.collateral import value_collateral
from crossmargin.core.instruments import Instrument, InstrumentKind
from crossmargin.core.margin import CrossMargin, IsolatedMargin, MarginModel, MarginResult
from crossmargin.core.margin.crowding import CrowdedMargin
from crossmargin.core.margin.portfolio import PortfolioMargin, PortfolioParams
from crossmargin.core.margin.presets import PORTFOLIO_PRESETS, TIER_PRESETS, with_tier_preset
from crossmargin.core.margin.result import RESULT_ARRAYS
from crossmargin.core.margin.sensitivity import SensitivityMargin
from crossmargin.core.margin.var import VAR_PRESETS, VarMargin, var_preset
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import revalue
from crossmargin.core.var.history import PriceHistory
from tests.builders import VALUATION_NS, RandomBook, at_par, book_from_rows, random_books, usd_asset
from tests.conftest import shared_data_dir

FloatArray = npt.NDArray[np.float64]

# Sums of per-position terms in different orders: allow the last bits of the summed magnitudes.
REL_TOLERANCE = 1e-9
# Collateral value against `value_collateral` (a different summation order): relative to Σ|b|·price.
COLLATERAL_REL_TOLERANCE = 1e-12
# A net P&L against its gross notional (float64 eps 2.2e-16, a few operations per position).
NOTIONAL_REL_TOLERANCE = 1e-12
DEFAULT_PROFILE_EXAMPLES = 60  # tests/conftest.py's "crossmargin" profile
RESULT_FIELDS = RESULT_ARRAYS


# ------------------------------------------------------------------------------------ histories

SYNTHETIC_FIRST_DAY = "2022-01-01"  # covers the fhs-es975-floor stress window (2022-05..2022-12)
SYNTHETIC_LAST_DAY = "2023-12-31"  # the last close known at tests.builders.VALUATION_NS


def synthetic_history(seed: int = 7) -> PriceHistory:
    """Daily closes of BTC, ETH (correlated 0.8, Student-t(4) shocks at 3 % then 6 % a day) and
    USDC (pegged, 0.02 % noise) from SYNTHETIC_FIRST_DAY to SYNTHETIC_LAST_DAY: enough for every
    VAR_PRESETS window (730 days asked, half needed), warm-up and stress floor."""
    days = np.arange(
        np.datetime64(SYNTHETIC_FIRST_DAY),
        np.datetime64(SYNTHETIC_LAST_DAY) + 1,
        dtype="datetime64[D]",
    )
    rng = np.random.default_rng(seed)
    shocks = rng.standard_t(4.0, size=(days.size, 2)) / np.sqrt(2.0)
    shocks[:, 1] = 0.8 * shocks[:, 0] + 0.6 * shocks[:, 1]
    vol = np.where(np.arange(days.size) < days.size - 120, 0.03, 0.06)
    close = np.empty((days.size, 3))
    close[:, 0] = 30_000.0 * np.exp(np.cumsum(shocks[:, 0] * vol))
    close[:, 1] = 2_000.0 * np.exp(np.cumsum(shocks[:, 1] * vol))
    close[:, 2] = 1.0 + rng.normal(0.0, 2e-4, days.size)
    return PriceHistory(days=days, symbols=("BTC", "ETH", "USDC"), close_usd=close)


@dataclass(slots=True)
class CachedVolatility:
    """A volatility filter that fits once per distinct return matrix (GARCH fits take ~0.1 s per
    factor; every random book over the same factors asks for the same fit)."""

    inner: Callable[[FloatArray], FloatArray]
    fits: dict[tuple[tuple[int, ...], bytes], FloatArray] = field(default_factory=dict)

    def __call__(self, daily: FloatArray) -> FloatArray:
        key = (daily.shape, daily.tobytes())
        if key not in self.fits:
            self.fits[key] = self.inner(daily)
        return self.fits[key].copy()


_HISTORIES: dict[str, PriceHistory] = {}
_GARCH = CachedVolatility(GarchFilter())


def history(source: str) -> PriceHistory:
    """The price history `source` names: synthetic (built here) or data (the shared daily closes,
    loaded once; the test skips where they are absent, except in CI)."""
    if source not in _HISTORIES:
        if source == "synthetic":
            _HISTORIES[source] = synthetic_history()
        else:
            _HISTORIES[source] = load_price_history(shared_data_dir() / "prices_daily_yahoo.csv")
    return _HISTORIES[source]


# ------------------------------------------------------------------------------------ the models


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelCase:
    """One model under test. `prepare` turns a random book into the book the model margins (a tier
    preset rewrites the perpetuals' schedules); `collateral_is_risk`: collateral moves with the
    scenarios or sensitivities (C3/C4 then run on books without collateral); `linear`: C4 holds
    (on flat schedules for cross and isolated); `examples`: hypothesis examples per clause."""

    id: str
    model: Callable[[], MarginModel]
    prepare: Callable[[Book], Book] = lambda book: book
    collateral_is_risk: bool = False
    linear: bool = True
    examples: int = 10


def _tiered(name: str) -> Callable[[Book], Book]:
    return lambda book: with_tier_preset(book, name)


def _var(preset: str, source: str) -> Callable[[], MarginModel]:
    def build() -> MarginModel:
        params = var_preset(preset)
        volatility = _GARCH if params.volatility_filter == "garch" else None
        return VarMargin(params, history(source), volatility)

    return build


def _has_dampener(params: PortfolioParams) -> bool:
    """Deribit's extended table subtracts a fixed USD dampener per account (100,000 in
    deribit-pm): weight·loss - dampener is affine in size, not linear, so C4 is not claimed."""
    grids = [*params.grids.values(), *([params.default_grid] if params.default_grid else [])]
    return any(grid.extreme_dampener_usd > 0.0 for grid in grids)


def _portfolio(params: Callable[[], PortfolioParams]) -> Callable[[], MarginModel]:
    return lambda: PortfolioMargin(params())


MODEL_CASES: list[ModelCase] = [
    ModelCase(id="cross-book", model=CrossMargin),
    *(
        ModelCase(id=f"cross-{name}", model=CrossMargin, prepare=_tiered(name), linear=False)
        for name in TIER_PRESETS
    ),
    ModelCase(id="isolated", model=IsolatedMargin),
    ModelCase(id="portfolio-default", model=_portfolio(PortfolioParams), collateral_is_risk=True, examples=5),
    *(
        ModelCase(
            id=f"portfolio-{name}",
            model=_portfolio(params),
            collateral_is_risk=True,
            linear=not _has_dampener(params()),
            examples=5,
        )
        for name, params in PORTFOLIO_PRESETS.items()
    ),
    ModelCase(id="sensitivity", model=SensitivityMargin, collateral_is_risk=True),
    # The crowding add-on measured on each book itself (no frozen state, no history): a balance of
    # the underlying offsets a short, so like the risk models it is a hedge (C3/C4 without it).
    ModelCase(
        id="cross+crowding",
        model=lambda: CrowdedMargin(base=CrossMargin()),
        collateral_is_risk=True,
        examples=5,
    ),
    ModelCase(
        id="portfolio-default+crowding",
        model=lambda: CrowdedMargin(base=PortfolioMargin(PortfolioParams())),
        collateral_is_risk=True,
        examples=2,
    ),
    *(
        ModelCase(
            id=f"var-{name}-{source}",
            model=_var(name, source),
            collateral_is_risk=True,
            examples=3 if source == "synthetic" else 2,
        )
        for source in ("synthetic", "data")
        for name in VAR_PRESETS
    ),
]
CASE_BY_ID = {case.id: case for case in MODEL_CASES}


# ------------------------------------------------------------------------------------ violations


def collateral_only_book() -> RandomBook:
    """One account holding 1 BTC (20,000 USD, no haircut) and no position; the book lists a BTC
    perpetual nobody holds (so BTC is an underlying with a scenario grid)."""
    btc = Asset(symbol="BTC")
    perp = Instrument(id="BTC-PERP", kind=InstrumentKind.PERPETUAL, underlying="BTC")
    book = book_from_rows(assets=[usd_asset(), btc], instruments=[perp], balances={"holder": {"BTC": 1.0}})
    market = MarketState.build(book.instruments, valuation_ns=VALUATION_NS, index_prices={"BTC": 20_000.0})
    market = at_par(market, book)
    return RandomBook(book=book, market=market, assets=(usd_asset(), btc), instruments=(perp,))


def instrument_free_book() -> RandomBook:
    """One account, 100 USDC, and no instrument at all (a book of deposits only)."""
    usdc = usd_asset()
    book = book_from_rows(assets=[usdc], instruments=[], balances={"saver": {"USDC": 100.0}})
    market = MarketState.build(book.instruments, valuation_ns=VALUATION_NS, index_prices={})
    market = at_par(market, book)
    return RandomBook(book=book, market=market, assets=(usdc,), instruments=())


@dataclass(frozen=True, slots=True)
class Violation:
    """A clause a model breaks today: the reason and the shrunk counterexamples. The case is marked
    xfail(strict=True) and runs only these examples: when the model is fixed it passes, the strict
    mark fails, and the entry must go (the clause then runs over random books again)."""

    reason: str
    examples: tuple[Callable[[], RandomBook], ...]


# No known violation today. Portfolio margin charged an account with no position (collateral_only_book:
# 3,000-3,200 USD per preset, the BTC grid's worst move on 20,000 USD of BTC) and raised on a book
# with no instrument (instrument_free_book); both are regressions below since the fix.
KNOWN_VIOLATIONS: dict[tuple[str, str], Violation] = {}


def cases(clause: str, *, only: Callable[[ModelCase], bool] = lambda case: True) -> list[object]:
    """MODEL_CASES (those `only` keeps) as pytest params, a known violation of `clause` marked
    xfail(strict=True)."""
    params: list[object] = []
    for case in filter(only, MODEL_CASES):
        violation = KNOWN_VIOLATIONS.get((clause, case.id))
        marks = [] if violation is None else [pytest.mark.xfail(strict=True, reason=violation.reason)]
        params.append(pytest.param(case, id=case.id, marks=marks))
    return params


def run(
    case: ModelCase,
    clause_name: str,
    strategy: st.SearchStrategy[RandomBook],
    clause: Callable[..., None],
    *,
    regressions: tuple[dict[str, object], ...] = (),
    **extra: st.SearchStrategy[float],
) -> None:
    """Run `clause(case, model, book, market, random=..., **drawn)` over `case.examples` random
    books (`book` is the random book as the case prepares it); a known violation runs only its
    counterexamples."""
    model = case.model()
    violation = KNOWN_VIOLATIONS.get((clause_name, case.id))

    def check(random: RandomBook, **drawn: float) -> None:
        clause(case, model, case.prepare(random.book), random.market, random=random, **drawn)

    if violation is not None:
        for counterexample in violation.examples:
            check(counterexample())
        return
    # The case's budget at the default profile (60 examples); `--hypothesis-profile=thorough`
    # scales every case up in proportion.
    examples = max(1, round(case.examples * settings().max_examples / DEFAULT_PROFILE_EXAMPLES))
    test = given(random=strategy, **extra)(check)
    for regression in regressions:  # shrunk counterexamples of the clause (or of its tolerance)
        test = example(**regression)(test)
    settings(max_examples=examples)(test)()


def without_collateral(book: Book) -> Book:
    return book.with_balances(np.zeros_like(book.balances))


def _close(
    actual: FloatArray, expected: FloatArray, *, scale: FloatArray | float, rel: float, what: str
) -> None:
    allowed = rel * (np.abs(expected) + np.asarray(scale))
    assert np.all(np.abs(actual - expected) <= allowed), (what, actual, expected)


# ------------------------------------------------------------------------------------ C1 empty


def _empty(
    case: ModelCase, model: MarginModel, book: Book, market: MarketState, *, random: RandomBook
) -> None:
    result = model.evaluate(book, market)
    assert np.all(result.initial_margin_usd == 0.0)
    assert np.all(result.maintenance_margin_usd == 0.0)
    assert np.all(result.position_value_usd == 0.0)
    price = market.asset_prices(book.assets)
    scale = np.abs(book.balances) @ price
    haircut_value = value_collateral(book.balances, book.assets, price).total_usd
    _close(result.equity_usd, haircut_value, scale=scale, rel=COLLATERAL_REL_TOLERANCE, what="equity")


@pytest.mark.parametrize("case", cases("empty"))
def test_no_positions_need_no_margin_and_equity_is_haircut_collateral(case: ModelCase) -> None:
    run(case, "empty", random_books(with_positions=False), _empty)


@pytest.mark.parametrize("case", cases("empty"))
@pytest.mark.parametrize("example", [collateral_only_book, instrument_free_book])
def test_the_shrunk_empty_account_counterexamples_need_no_margin(
    case: ModelCase, example: Callable[[], RandomBook]
) -> None:
    """Portfolio margin once charged collateral_only_book's idle account and raised on
    instrument_free_book: every model now charges both nothing."""
    random = example()
    _empty(case, case.model(), case.prepare(random.book), random.market, random=random)


def never_funded_book() -> RandomBook:
    """Two accounts: one that never deposited nor traded, one holding 1 BTC. The book lists a BTC
    perpetual nobody holds."""
    btc = Asset(symbol="BTC")
    perp = Instrument(id="BTC-PERP", kind=InstrumentKind.PERPETUAL, underlying="BTC")
    book = book_from_rows(
        assets=[usd_asset(), btc],
        instruments=[perp],
        balances={"never-funded": {}, "holder": {"BTC": 1.0}},
    )
    market = MarketState.build(book.instruments, valuation_ns=VALUATION_NS, index_prices={"BTC": 20_000.0})
    market = at_par(market, book)
    return RandomBook(book=book, market=market, assets=(usd_asset(), btc), instruments=(perp,))


@pytest.mark.parametrize("case", cases("empty"))
def test_an_account_with_nothing_in_it_is_flat_not_bankrupt(case: ModelCase) -> None:
    """Equity 0 with no collateral and no requirement owes nothing: not bankrupt, margin ratio 0,
    nothing to liquidate (it was once reported bankrupt, ratio null, under every pooled model)."""
    random = never_funded_book()
    book = case.prepare(random.book)
    result = case.model().evaluate(book, random.market)
    row = book.account_row("never-funded")
    assert result.equity_usd[row] == 0.0
    assert not result.bankrupt[row]
    assert result.margin_ratio[row] == 0.0
    assert not result.below_maintenance[row]


# ------------------------------------------------------------------------------------ C2 sane


def _equal_bit_for_bit(first: MarginResult, second: MarginResult) -> None:
    for name in RESULT_FIELDS:
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name), err_msg=name)


def _sane(
    case: ModelCase, model: MarginModel, book: Book, market: MarketState, *, random: RandomBook
) -> None:
    first = model.evaluate(book, market)
    for name in RESULT_FIELDS[:-2]:
        values = getattr(first, name)
        assert values.shape == (book.n_accounts,), name
        assert np.all(np.isfinite(values)), name
    assert np.all(first.maintenance_margin_usd >= 0.0)
    assert np.all(first.initial_margin_usd >= first.maintenance_margin_usd)
    _equal_bit_for_bit(first, model.evaluate(book, market))
    _equal_bit_for_bit(first, case.model().evaluate(book, market))


@pytest.mark.parametrize("case", cases("sane"))
def test_im_at_least_mm_at_least_zero_finite_and_deterministic(case: ModelCase) -> None:
    run(case, "sane", random_books(), _sane)


# ------------------------------------------------------------------------------------ C3 monotone

SCALE_UP = st.floats(min_value=1.0, max_value=20.0, exclude_min=True)


def _scaling_book(case: ModelCase, book: Book) -> Book:
    return without_collateral(book) if case.collateral_is_risk else book


def _monotone(
    case: ModelCase, model: MarginModel, book: Book, market: MarketState, *, random: RandomBook, factor: float
) -> None:
    book = _scaling_book(case, book)
    base = model.evaluate(book, market)
    big = model.evaluate(book.scaled(factor), market)
    for name in ("initial_margin_usd", "maintenance_margin_usd"):
        before, after = getattr(base, name), getattr(big, name)
        assert np.all(after >= before * (1.0 - REL_TOLERANCE)), (name, factor, before, after)


@pytest.mark.parametrize("case", cases("monotone"))
def test_scaling_positions_up_never_lowers_margin(case: ModelCase) -> None:
    run(case, "monotone", random_books(), _monotone, factor=SCALE_UP)


# ------------------------------------------------------------------------------------ C4 linear


def cancelling_pnl_book() -> RandomBook:
    """Hypothesis' shrunk counterexample to C4 with a tolerance relative to the net position value:
    short 100 BTC (10,000 contracts of 0.01) bought at 14,000 and long 2,000 ETH bought at 700,
    index 20,000 and 1,000: -600,000 + 600,000 = 0 USD of position value, and x (1 + 2^-52) it
    rounds to 1.2e-10 USD. Cancelling P&L is exact only to the gross notional's last bits."""
    perps = tuple(
        Instrument(id=f"{u}-PERP", kind=InstrumentKind.PERPETUAL, underlying=u, contract_size=0.01)
        for u in ("BTC", "ETH")
    )
    book = book_from_rows(
        assets=[usd_asset()],
        instruments=perps,
        balances={"pair": {}},
        positions=[("pair", "BTC-PERP", -10_000.0, 14_000.0), ("pair", "ETH-PERP", 200_000.0, 700.0)],
    )
    market = MarketState.build(
        book.instruments, valuation_ns=VALUATION_NS, index_prices={"BTC": 20_000.0, "ETH": 1_000.0}
    )
    market = at_par(market, book)
    return RandomBook(book=book, market=market, assets=(usd_asset(),), instruments=perps)


def gross_notional_usd(book: Book, market: MarketState) -> FloatArray:
    """Σ |quantity| · contract notional per account, USD: contract_size · index for linear and
    options, contract_size (USD) for inverse delta-one. The scale of a net P&L's rounding."""
    table = book.instruments
    inst = book.positions.indices
    spot = revalue(table, market).spot_usd[inst]
    notional = table.contract_size[inst] * np.where(table.reciprocal_entry[inst], 1.0, spot)
    weights = np.abs(book.positions.data) * notional
    return np.bincount(book.position_account, weights=weights, minlength=book.n_accounts).astype(np.float64)


def _linear(
    case: ModelCase, model: MarginModel, book: Book, market: MarketState, *, random: RandomBook, factor: float
) -> None:
    book = _scaling_book(case, book)
    base = model.evaluate(book, market)
    big = model.evaluate(book.scaled(factor), market)
    for name in ("initial_margin_usd", "maintenance_margin_usd"):
        expected = factor * getattr(base, name)
        _close(getattr(big, name), expected, scale=0.0, rel=REL_TOLERANCE, what=f"{name} x {factor!r}")
    # Position value is a net P&L: its rounding scales with the gross notional, not with the net.
    _close(
        big.position_value_usd,
        factor * base.position_value_usd,
        scale=factor * gross_notional_usd(book, market),
        rel=NOTIONAL_REL_TOLERANCE,
        what=f"position_value_usd x {factor!r}",
    )


@pytest.mark.parametrize("case", cases("linear", only=lambda case: case.linear))
def test_linear_models_scale_exactly_with_size(case: ModelCase) -> None:
    run(
        case,
        "linear",
        random_books(schedule="flat"),
        _linear,
        regressions=({"random": cancelling_pnl_book(), "factor": 1.0000000000000002},),
        factor=SCALE_UP,
    )


# ------------------------------------------------------------------------------------ C5 haircut


def _harsher(book: Book, assets: tuple[Asset, ...], bump: float) -> Book:
    """Every tier's haircut h -> h + (1 - h)·bump (tiers stay non-decreasing and below 1)."""
    harsher = [
        dataclasses.replace(
            asset,
            haircut_tiers=tuple(
                HaircutTier(above=t.above, haircut=min(t.haircut + (1.0 - t.haircut) * bump, 0.999))
                for t in asset.haircut_tiers
            ),
        )
        for asset in assets
    ]
    return dataclasses.replace(book, assets=AssetTable.from_assets(harsher))


def _haircut(
    case: ModelCase, model: MarginModel, book: Book, market: MarketState, *, random: RandomBook, bump: float
) -> None:
    before = model.evaluate(book, market)
    after = model.evaluate(_harsher(book, random.assets, bump), market)
    slack = COLLATERAL_REL_TOLERANCE * (np.abs(book.balances) @ market.asset_prices(book.assets) + 1.0)
    assert np.all(after.equity_usd <= before.equity_usd + slack)
    assert np.all(after.collateral_value_usd <= before.collateral_value_usd + slack)


@pytest.mark.parametrize("case", cases("haircut"))
def test_larger_haircut_never_raises_equity(case: ModelCase) -> None:
    run(case, "haircut", random_books(), _haircut, bump=st.floats(min_value=0.0, max_value=0.99))


# ------------------------------------------------------------------------------------ C6 explain


def _explain(
    case: ModelCase, model: MarginModel, book: Book, market: MarketState, *, random: RandomBook
) -> None:
    result = model.evaluate(book, market)
    n = book.n_accounts
    parts = model.breakdown(book, market, list(range(n)))

    def per_account(values: FloatArray) -> FloatArray:
        return np.bincount(parts.position_account, weights=values, minlength=n).astype(np.float64)

    # Accounts without positions have nothing to split their requirement over: C1 says it is 0.
    held = np.diff(book.positions.indptr) > 0
    for total, contributions in (
        ("initial_margin_usd", parts.initial_margin_usd),
        ("maintenance_margin_usd", parts.maintenance_margin_usd),
        ("position_value_usd", parts.value_usd),
    ):
        _close(
            per_account(contributions)[held],
            getattr(result, total)[held],
            scale=per_account(np.abs(contributions))[held],
            rel=REL_TOLERANCE,
            what=total,
        )
    _close(
        parts.collateral_value_usd.sum(axis=1),
        result.collateral_value_usd,
        scale=np.abs(parts.collateral_value_usd).sum(axis=1),
        rel=REL_TOLERANCE,
        what="collateral_value_usd",
    )


@pytest.mark.parametrize("case", cases("explain"))
def test_breakdown_adds_up_to_the_account_totals(case: ModelCase) -> None:
    run(case, "explain", random_books(max_accounts=3, max_instruments=4), _explain)


# ------------------------------------------------------------------------------------ why C3/C4 drop collateral


@pytest.mark.parametrize("model_id", ["portfolio-deribit-pm", "sensitivity", "var-hs-es975-synthetic"])
def test_collateral_hedge_is_why_risk_models_scale_without_collateral(model_id: str) -> None:
    """10 BTC of collateral, short 4 BTC of a linear perpetual: growing the short to 8 BTC hedges
    more of the collateral, so a model that margins collateral risk asks for less. Scaling the
    positions alone is not scaling the account's risk."""
    perp = Instrument(id="BTC-PERP", kind=InstrumentKind.PERPETUAL, underlying="BTC")
    btc = Asset(symbol="BTC", haircut_tiers=(HaircutTier(above=0.0, haircut=0.05),))

    def book(short_btc: float) -> Book:
        return book_from_rows(
            assets=[usd_asset(), btc],
            instruments=[perp],
            balances={"hedger": {"BTC": 10.0}},
            positions=[("hedger", "BTC-PERP", -short_btc, 42_000.0)],
        )

    market = at_par(
        MarketState.build(book(4.0).instruments, valuation_ns=VALUATION_NS, index_prices={"BTC": 42_000.0}),
        book(4.0),
    )
    model = CASE_BY_ID[model_id].model()
    small = float(model.evaluate(book(4.0), market).initial_margin_usd[0])
    large = float(model.evaluate(book(8.0), market).initial_margin_usd[0])
    assert large < small, (small, large)
