"""Private margin checks (MPyC) on random books with options, on the example desk's instruments
(Deribit BTC/ETH options, inverse and linear perpetuals, a future, multi-tier and size-scaled
schedules): the formulas the shares compute equal the plaintext engine (cross model and the
portfolio kernel under every preset), and a real three-party run equals the engine within the
stated fixed-point precision."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("mpyc")

import crossmargin
from crossmargin.adapters.mpc import run_parties
from crossmargin.core.book import Book
from crossmargin.core.margin.cross import CrossMargin
from crossmargin.core.margin.portfolio import AddOns, PortfolioMargin
from crossmargin.core.margin.presets import PORTFOLIO_PRESETS, portfolio_preset
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import revalue
from crossmargin.engine.private_margin import account_secrets, plaintext_margin, public_data
from crossmargin.errors import InputError
from tests.builders import VALUATION_NS, book_from_rows, usd_asset

DESK = Path(__file__).resolve().parents[3] / "examples" / "desk.yaml"
# Stated precision (engine/private_margin, adapters/mpc/party): input roundings of 2**-41 per
# secret unit and 2**-49 per public coefficient, over tens of terms of up to ~1e6 USD, plus
# float64's own rounding in the engine.
TOLERANCE_USD = 1e-6
TOLERANCE_RELATIVE = 1e-12
FIELDS = (
    "equity_usd",
    "maintenance_margin_usd",
    "grid_requirement_usd",
    "portfolio_initial_margin_usd",
    "portfolio_maintenance_margin_usd",
)


@functools.cache
def _desk() -> tuple[Book, MarketState]:
    loaded = crossmargin.load_book(str(DESK))
    return loaded.book, loaded.market


def random_book(seed: int, n_accounts: int = 6, *, idle: bool = False) -> tuple[Book, MarketState]:
    """The desk's instruments, assets and market with random accounts: each holds a random half
    of the instruments (options long and short), random collateral from thin to ample, some
    borrowing USDC or BTC; with `idle`, the last account holds collateral only."""
    desk, market = _desk()
    rng = np.random.default_rng(seed)
    table = desk.instruments
    valuation = revalue(table, market)
    mark = np.where(table.is_option, valuation.option_premium_settlement, valuation.mark_price)
    rows, cols, quantity, entry = [], [], [], []
    for row in range(n_accounts - int(idle)):
        for i in np.flatnonzero(rng.random(table.n_instruments) < 0.5):
            lots = 100.0 if table.is_inverse[i] and not table.is_option[i] else 1.0
            rows.append(row)
            cols.append(int(i))
            quantity.append(float(rng.integers(-40, 41) or 3) * lots)
            entry.append(float(mark[i] * rng.uniform(0.9, 1.1)))
    scale = rng.uniform(0.02, 1.5, n_accounts)  # thin to ample collateral
    balances = scale[:, None] * np.column_stack(
        [
            rng.uniform(-2e4, 3e5, n_accounts),  # USDC, may be borrowed
            rng.uniform(0, 1e5, n_accounts),  # USDT
            rng.uniform(-1, 20, n_accounts),  # BTC, may be borrowed
            rng.uniform(0, 300, n_accounts),  # ETH
        ]
    )
    book = Book.from_arrays(
        account_ids=tuple(f"a{n}" for n in range(n_accounts)),
        assets=desk.assets,
        instruments=table,
        account_index=rows,
        instrument_index=cols,
        quantity=quantity,
        entry_price=entry,
        balances=balances,
    )
    return book, market


def _engine(book: Book, market: MarketState, preset: str) -> dict[str, np.ndarray]:
    params = portfolio_preset(preset)
    cross = CrossMargin().evaluate(book, market)
    model = PortfolioMargin(params)
    portfolio = model.evaluate(book, market)
    return {
        "equity_usd": cross.equity_usd,
        "maintenance_margin_usd": cross.maintenance_margin_usd,
        "grid_requirement_usd": model.totals(book, market, revalue(book.instruments, market)).grid_usd,
        "portfolio_initial_margin_usd": portfolio.initial_margin_usd,
        "portfolio_maintenance_margin_usd": portfolio.maintenance_margin_usd,
        "portfolio_equity_usd": portfolio.equity_usd,
    }


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= TOLERANCE_USD + TOLERANCE_RELATIVE * abs(b)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), preset=st.sampled_from(sorted(PORTFOLIO_PRESETS)))
def test_mpc_formulas_equal_the_engine_under_every_preset(seed: int, preset: str) -> None:
    """What the shares compute (in float64, the same formulas) is the engine's cross margin and
    portfolio requirement, for books with options, under each portfolio preset."""
    book, market = random_book(seed, idle=True)
    public = public_data(book, market, portfolio_preset(preset))
    engine = _engine(book, market, preset)
    np.testing.assert_allclose(engine["portfolio_equity_usd"], engine["equity_usd"], rtol=1e-12)
    for row in range(book.n_accounts):
        plain = plaintext_margin(public, account_secrets(book, row))
        for name in FIELDS:
            expected = float(engine[name][row])
            assert abs(plain[name] - expected) <= 1e-9 * max(1.0, abs(expected)), (name, row)


def test_mpc_three_party_portfolio_margin_with_options_equals_engine(tmp_path: Path) -> None:
    """A real three-party MPyC run (three processes on this machine) under deribit-pm: equity,
    cross MM, grid, portfolio IM and MM opened to the owner equal the engine's within the stated
    precision, and the public verdicts equal the engine's. Account 0 holds options and falls
    short of cross maintenance but not of portfolio maintenance (the verdicts differ), account 1
    holds options and covers both, account 2 holds collateral only and needs nothing (the
    secret 'has positions' bit)."""
    book, market = random_book(23, n_accounts=3, idle=True)
    public = public_data(book, market, portfolio_preset("deribit-pm"))
    accounts = [account_secrets(book, row) for row in range(book.n_accounts)]
    assert all(np.any(a.quantity[book.instruments.is_option] != 0.0) for a in accounts[:2])
    result = run_parties(public, accounts, tmp_path / "run")
    engine = _engine(book, market, "deribit-pm")
    verdicts = []
    for row, private in enumerate(result["accounts"]):
        for name in FIELDS:
            assert _close(private[name], float(engine[name][row])), (name, row)
        covers = bool(engine["equity_usd"][row] >= engine["maintenance_margin_usd"][row])
        covers_pm = bool(engine["equity_usd"][row] >= engine["portfolio_maintenance_margin_usd"][row])
        assert private["equity_covers_maintenance"] == covers
        assert private["equity_covers_portfolio_maintenance"] == covers_pm
        verdicts.append((covers, covers_pm))
    assert verdicts == [(False, True), (True, True), (True, True)]
    assert result["accounts"][2]["portfolio_initial_margin_usd"] == 0.0
    assert result["accounts"][2]["maintenance_margin_usd"] == 0.0


def test_mpc_three_party_joint_preset_with_depeg_equals_engine(tmp_path: Path) -> None:
    """crossmargin-multi on shares: joint correlated moves, the short-option and roll add-ons and
    the stablecoin-depeg add-on (a secure min against the grid, then a truncated product)."""
    book, market = random_book(3, n_accounts=1)
    params = portfolio_preset("crossmargin-multi")
    public = public_data(book, market, params)
    plain = plaintext_margin(public, account_secrets(book, 0))
    assert public.group.min() < 0  # depeg rows present
    result = run_parties(public, [account_secrets(book, 0)], tmp_path / "run")
    engine = _engine(book, market, "crossmargin-multi")
    private = result["accounts"][0]
    for name in FIELDS:
        assert _close(private[name], float(engine[name][0])), name
    assert plain["portfolio_initial_margin_usd"] > plain["grid_requirement_usd"]  # add-ons count


def test_mpc_refuses_what_shares_cannot_compute_exactly() -> None:
    book, market = random_book(1, n_accounts=2)
    params = portfolio_preset("deribit-pm")
    concentrated = dataclasses.replace(
        params, addons=AddOns(concentration_coefficient=0.1, liquidity_usd={"BTC": 1e9})
    )
    with pytest.raises(InputError) as error:
        public_data(book, market, concentrated)
    assert error.value.field == "addons.concentration_coefficient"
    table = book.instruments
    falling = dataclasses.replace(table, tier_maintenance_rate=table.tier_maintenance_rate[:, ::-1].copy())
    with pytest.raises(InputError) as error:
        public_data(dataclasses.replace(book, instruments=falling), market, params)
    assert error.value.field == "instruments[BTC-USDC-PERP].margin"
    bare = book_from_rows(assets=[usd_asset()], instruments=[], balances={"a": {"USDC": 5.0}})
    bare_market = MarketState.build(bare.instruments, valuation_ns=VALUATION_NS, index_prices={})
    with pytest.raises(InputError) as error:
        public_data(bare, bare_market, params)
    assert error.value.field == "instruments"


def test_mpc_refuses_amounts_beyond_the_comparison_bit_length(tmp_path: Path) -> None:
    """The parties' comparisons assume |units| < 2**31: a larger balance is refused before any
    process starts, naming the account and field, and nothing is written."""
    book, market = random_book(2, n_accounts=1)
    public = public_data(book, market, portfolio_preset("deribit-pm"))
    secrets = account_secrets(book, 0)
    huge = dataclasses.replace(secrets, balances=secrets.balances + np.array([0.0, 0.0, 0.0, 2.0**31]))
    with pytest.raises(InputError) as error:
        run_parties(public, [huge], tmp_path / "run")
    assert error.value.field == "accounts[0].balances"
    assert not (tmp_path / "run").exists()


def test_mpc_worked_example_figures_of_the_docs() -> None:
    """docs/solvency.md section 4: the desk's vol-seller under deribit-pm, the figures the three
    parties open (here through the same formulas in plaintext) to the cent."""
    book, market = _desk()
    public = public_data(book, market, portfolio_preset("deribit-pm"))
    plain = plaintext_margin(public, account_secrets(book, book.account_ids.index("vol-seller")))
    expected = {
        "equity_usd": 579_090.04,
        "maintenance_margin_usd": 140_588.23,
        "grid_requirement_usd": 160_391.72,
        "portfolio_initial_margin_usd": 161_847.08,
        "portfolio_maintenance_margin_usd": 129_477.66,
    }
    assert {name: round(plain[name], 2) for name in expected} == expected
