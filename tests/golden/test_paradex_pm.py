"""Paradex portfolio margin: the min-delta worked example, the 24-scenario structure, the tail
weights and the vol-shock multipliers.

Source: https://docs.paradex.trade/risk/portfolio-margin (GitHub tradeparadex/paradex-docs,
docs/pages/risk-system/portfolio-margin.mdx @ f0ba8b68398478a5f216c7dbb293b12f22b72ca1):
- "Long 1 BTC-USD-PERP (delta = +1); Short 5 BTC 70k Calls (delta = +0.3 each)" … "Min Delta Risk
  = (0.2% × 0.5 + 0.1% × 1.0) × 70,000 = $140" (MinDeltaRisk = (UnhedgedMF·|NetDelta| +
  HedgedMF·HedgedDelta)·Spot, HedgedDelta = (GrossDelta − |NetDelta|)/2);
- 24 scenarios: spot at ±R, ±¾R, ±½R, ±¼R, 0, interior points with vol up and vol down, ±R vol up
  only (16), plus 8 tail moves −66 … +500 % with vol up at the published weights;
- ShockedIV = MarkIV × (1 + VolShock × (30 / max(1, DTE))^(0.30 if DTE < 30 else 0.13)).
  the page's full scenario table shocks vol by +40 % (vol up) and -22 % (vol down), the values
  the preset uses for BTC; the worked example takes "BTC Spot = $70,000".
The vol-multiplier values in VOL_MULTIPLIERS (2.774191 …) are not printed by Paradex: they are
that published formula evaluated at DTE 1, 7, 30 and 90 to six decimals, e.g. DTE 1:
(30/1)^0.30 = 2.774191, IV x (1 + 0.40 · 2.774191) = IV x 2.109676 and
IV x (1 - 0.22 · 2.774191) = IV x 0.389678 (the last assertion of `test_vol_multipliers`
recomputes the formula unrounded).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from crossmargin.core.assets import Asset
from crossmargin.core.book import Book
from crossmargin.core.instruments import (
    Instrument,
    InstrumentKind,
    InstrumentTable,
    OptionType,
    Settlement,
)
from crossmargin.core.margin.portfolio import AddOns, PortfolioMargin, PortfolioParams
from crossmargin.core.margin.presets import EXTENDED_MOVES, paradex_pm
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import revalue
from crossmargin.core.scenarios import ScenarioSet
from tests.builders import NS_PER_DAY, VALUATION_NS, at_par, book_from_rows, usd_asset

SPOT_USD = 70_000.0
CALL_DELTA = 0.3
CALL_VOL = 0.60
CALL_DAYS = 30
MIN_DELTA_USD = 140.0  # published
REL_TOLERANCE = 1e-12

# Published tail weights (%), in EXTENDED_MOVES order (-66, -33, +50, +100, +200, +300, +400, +500 %).
TAIL_WEIGHTS_PCT = {
    "BTC": (10.61, 21.21, 14, 7, 1.75, 0.78, 0.44, 0.28),
    "ETH": (12.12, 24.24, 16, 8, 2, 0.89, 0.5, 0.32),
    "SOL": (18.18, 36.36, 24, 12, 3, 1.33, 0.75, 0.48),
}
TABLE_HALF_UNIT_PCT = 0.005 + 1e-9  # the table shows at most 2 decimals
RANGES = {"BTC": 0.14, "ETH": 0.16, "SOL": 0.24}

# (DTE, (30/max(1, DTE))^p, IV x up, IV x down) for BTC's +40 % / -22 %: the published formula,
# evaluated here to six decimals (module docstring).
VOL_MULTIPLIERS = [
    (1, 2.774191, 2.109676, 0.389678),
    (7, 1.547416, 1.618966, 0.659569),
    (30, 1.0, 1.40, 0.78),
    (90, 0.866910, 1.346764, 0.809280),
]
SIX_DECIMALS = 5e-7 + 1e-12


def _strike_for_delta(*, forward: float, delta: float, vol: float, years: float) -> float:
    """Black-76 call strike with N(d1) = delta at rate 0: ln(F/K) = d1·σ√T - σ²T/2."""
    d1 = norm.ppf(delta)
    return forward * math.exp(-d1 * vol * math.sqrt(years) + 0.5 * vol * vol * years)


def _min_delta_example() -> tuple[Book, MarketState]:
    years = CALL_DAYS / 365.0
    strike = _strike_for_delta(forward=SPOT_USD, delta=CALL_DELTA, vol=CALL_VOL, years=years)
    table = InstrumentTable.from_instruments(
        [
            Instrument(id="BTC-USD-PERP", kind=InstrumentKind.PERPETUAL, underlying="BTC"),
            Instrument(
                id="BTC-CALL",
                kind=InstrumentKind.OPTION,
                underlying="BTC",
                settlement=Settlement.LINEAR,
                expiry_ns=VALUATION_NS + CALL_DAYS * NS_PER_DAY,
                strike=strike,
                option_type=OptionType.CALL,
            ),
        ]
    )
    market = MarketState.build(
        table,
        valuation_ns=VALUATION_NS,
        index_prices={"BTC": SPOT_USD},
        rate=0.0,
        implied_vols={"BTC-CALL": CALL_VOL},
    )
    book = book_from_rows(
        assets=[usd_asset()],
        instruments=table,
        balances={"trader": {"USDC": 100_000.0}},
        positions=[("trader", "BTC-USD-PERP", 1.0, SPOT_USD), ("trader", "BTC-CALL", -5.0, 0.0)],
    )
    market = at_par(market, book)
    return book, market


def test_call_delta_is_exactly_point_three() -> None:
    book, market = _min_delta_example()
    valuation = revalue(book.instruments, market)
    assert valuation.delta_usd[1] == pytest.approx(CALL_DELTA, rel=REL_TOLERANCE)
    assert valuation.delta_usd[0] == 1.0


@pytest.mark.parametrize(
    ("rates", "expected_usd"),
    [
        (None, MIN_DELTA_USD),  # the preset's BTC row: 0.2 % / 0.1 % (published: $140)
        ((0.02, 0.01), 1_400.0),  # the older doc version's 2 % / 1 % (derived: ten times as much)
    ],
    ids=["paradex-pm", "paradex-v1-coefficients"],
)
def test_min_delta_worked_example(rates: tuple[float, float] | None, expected_usd: float) -> None:
    """Net delta 1 - 5·0.3 = -0.5, gross 2.5, hedged (2.5 - 0.5)/2 = 1.0;
    (0.2 % · 0.5 + 0.1 % · 1.0) · 70,000 = 140 USD."""
    book, market = _min_delta_example()
    params = paradex_pm()
    if rates is not None:
        params = PortfolioParams(
            name="paradex-v1",
            grids=params.grids,
            default_grid=params.default_grid,
            addons=AddOns(min_delta_unhedged=rates[0], min_delta_hedged=rates[1]),
            maintenance_fraction=0.5,
        )
    model = PortfolioMargin(params)
    totals = model.totals(book, market, revalue(book.instruments, market))
    assert totals.min_delta_usd[0] == pytest.approx(expected_usd, rel=REL_TOLERANCE)
    # IMR = max(SCAN, MinDelta) + provisions; MMR = 50 % of the risk part + provisions.
    risk = max(totals.grid_usd[0], totals.min_delta_usd[0])
    provisions = totals.provisions_usd[0]
    result = model.evaluate(book, market)
    assert result.initial_margin_usd[0] == pytest.approx(risk + totals.addons_usd[0].sum(), rel=1e-12)
    if rates is None:
        assert result.maintenance_margin_usd[0] == pytest.approx(0.5 * risk + provisions, rel=1e-12)


def _three_asset_scenarios() -> ScenarioSet:
    """The paradex-pm scenario set for a book with an option on each of BTC, ETH and SOL."""
    spots = {"BTC": 70_000.0, "ETH": 3_500.0, "SOL": 150.0}
    instruments = [
        Instrument(
            id=f"{u}-CALL",
            kind=InstrumentKind.OPTION,
            underlying=u,
            expiry_ns=VALUATION_NS + 10 * NS_PER_DAY,
            strike=spot,
            option_type=OptionType.CALL,
        )
        for u, spot in spots.items()
    ]
    table = InstrumentTable.from_instruments(instruments)
    market = MarketState.build(
        table,
        valuation_ns=VALUATION_NS,
        index_prices=spots,
        implied_vols={i.id: 0.6 for i in instruments},
    )
    book = book_from_rows(
        assets=[Asset(symbol="USDC")], instruments=table, balances={"a": {}}, positions=[]
    )
    return PortfolioMargin(paradex_pm()).scenarios(book, revalue(table, market))


@pytest.mark.parametrize("underlying", ["BTC", "ETH", "SOL"])
def test_24_scenarios_per_underlying(underlying: str) -> None:
    scenarios = _three_asset_scenarios()
    column = scenarios.factor_index(underlying)
    moves = scenarios.price_factor[:, column] - 1.0
    rows = [n for n, label in enumerate(scenarios.labels) if label.startswith(f"{underlying} ")]
    assert len(rows) == 24
    assert len({int(scenarios.group[n]) for n in rows}) == 1  # one group per underlying ("sum")
    others = np.delete(scenarios.price_factor[rows], column, axis=1)
    assert np.all(others == 1.0)  # only this underlying moves in its grid
    assert set(np.flatnonzero(moves != 0.0)) <= set(rows)
    price_range = RANGES[underlying]
    standard = [n for n in rows if scenarios.weight[n] == 1.0]
    tail = [n for n in rows if scenarios.weight[n] < 1.0]
    assert len(standard) == 16 and len(tail) == 8
    quarter_steps = sorted({round(moves[n] / price_range * 4) for n in standard})
    assert quarter_steps == [-4, -3, -2, -1, 0, 1, 2, 3, 4]
    for n in standard:
        assert moves[n] / price_range * 4 == pytest.approx(round(moves[n] / price_range * 4), abs=1e-12)
    # ±R: vol up only; interior points: vol up and vol down; no "vol same" row.
    for n in standard:
        label = scenarios.labels[n]
        assert "vol same" not in label
    for k in range(-4, 5):
        at = [n for n in standard if round(moves[n] / price_range * 4) == k]
        kinds = sorted("up" if "vol up" in scenarios.labels[n] else "down" for n in at)
        assert kinds == (["up"] if abs(k) == 4 else ["down", "up"]), (k, kinds)
    # Tail: the eight published moves, all with vol up.
    assert moves[tail] == pytest.approx(EXTENDED_MOVES, abs=1e-12)
    assert all("vol up" in scenarios.labels[n] for n in tail)


@pytest.mark.parametrize("underlying", ["BTC", "ETH", "SOL"])
def test_tail_weights_match_the_published_table(underlying: str) -> None:
    grid = paradex_pm().grids[underlying]
    assert grid.extreme_moves == EXTENDED_MOVES
    assert grid.extreme_weights is not None
    ours_pct = np.array(grid.extreme_weights) * 100.0
    published = np.array(TAIL_WEIGHTS_PCT[underlying], dtype=np.float64)
    assert np.all(np.abs(ours_pct - published) <= TABLE_HALF_UNIT_PCT), (underlying, ours_pct, published)


@pytest.mark.parametrize(("days", "multiplier", "up", "down"), VOL_MULTIPLIERS)
def test_vol_multipliers(days: int, multiplier: float, up: float, down: float) -> None:
    """(30/max(1, DTE))^p with p = 0.30 below 30 days and 0.13 from 30 on; BTC +40 % / -22 %."""
    shock = paradex_pm().grids["BTC"].vol
    years = np.array([days / 365.0])
    assert shock.multiplier(years)[0] == pytest.approx(multiplier, abs=SIX_DECIMALS)
    vol = np.array([0.5])
    shocked_up = (vol + shock.shift(years, vol, direction=1.0)) / vol
    shocked_down = (vol + shock.shift(years, vol, direction=-1.0)) / vol
    assert shocked_up[0] == pytest.approx(up, abs=SIX_DECIMALS)
    assert shocked_down[0] == pytest.approx(down, abs=SIX_DECIMALS)
    # Exactly the published formula (no rounding):
    power = 0.30 if days < 30 else 0.13
    assert shock.multiplier(years)[0] == pytest.approx((30.0 / max(1, days)) ** power, rel=1e-12)
