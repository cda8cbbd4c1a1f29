"""Deribit portfolio margin (2024 model): the published `private/pme/simulate` example.

Source: https://docs.deribit.com/api-reference/account-management/private-simulate (example
response, timestamp 1718619740501 = 2024-06-17T10:22:20.501Z; mirrored at
docs.cdp.coinbase.com). Inputs: BTC-PERPETUAL 0.314538364 BTC, BTC-28JUN24 -0.001187534 BTC,
index btc_usd 65,666.19, marks 65,910.57 / 67,371.75. Published outputs: the per-instrument risk
vectors (BTC P&L per price bucket), worst_case 0.05968587238095239, roll_shock 0.00315725898,
risk_matrix_margin 0.06284313098, maintenance_margin 0.050274504784 (= mm_factor 0.8 x RMM).

Our model margins in USD and, with `numeraire="BTC"`, measures each scenario's loss in BTC at the
shocked price and converts it back at today's index, so every published BTC number is our USD
number divided by the index (today's price, for requirements) or by the shocked index S·(1+m)
(for per-scenario P&L cells). Deribit's inverse contracts: BTC-PERPETUAL and BTC-28JUN24 are 10 USD
per contract, so a size of x BTC at mark M is x·M/10 contracts; entry = mark (no unrealised P&L).
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from crossmargin.core.assets import Asset
from crossmargin.core.book import Book
from crossmargin.core.instruments import Instrument, InstrumentKind, InstrumentTable, Settlement
from crossmargin.core.margin.portfolio import (
    AddOns,
    PortfolioMargin,
    PortfolioParams,
    explain_account,
)
from crossmargin.core.margin.presets import deribit_pm
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import revalue
from crossmargin.core.scenarios import GridSpec
from tests.builders import at_par, book_from_rows
from tests.golden import load_golden

GOLDEN = load_golden("deribit_pme_simulate.json")
OUTPUTS = GOLDEN["outputs_btc"]
INDEX_USD = float(GOLDEN["index_price_usd"]["btc_usd"])
VALUATION_NS = int(GOLDEN["timestamp_ms"]) * 1_000_000
CONTRACT_SIZE_USD = 10.0
PERP, FUTURE = "BTC-PERPETUAL", "BTC-28JUN24"

CELL_REL_TOLERANCE = 1e-12  # the published cells carry ~16 significant digits
CELL_ABS_TOLERANCE = 1e-18  # for the zero cells (no move)
PUBLISHED_ROUNDING_BTC = 1e-9  # Deribit rounds the worst case to 9 dp before adding add-ons

PARAMS = PortfolioParams(
    name="deribit-pme-simulate",
    numeraire="BTC",
    default_grid=GridSpec(price_range=0.16, price_steps=9),
    addons=AddOns(annualised_move_risk=0.075, min_annualised_move=0.01),
    maintenance_fraction=0.8,
)


def _expiry_ns(text: str) -> int:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    return int(moment.timestamp()) * 1_000_000_000


def _example(*, btc_balance: float = 0.0) -> tuple[Book, MarketState]:
    spec = GOLDEN["instruments"]
    table = InstrumentTable.from_instruments(
        [
            Instrument(
                id=PERP,
                kind=InstrumentKind.PERPETUAL,
                underlying="BTC",
                settlement=Settlement.INVERSE,
                contract_size=CONTRACT_SIZE_USD,
            ),
            Instrument(
                id=FUTURE,
                kind=InstrumentKind.FUTURE,
                underlying="BTC",
                settlement=Settlement.INVERSE,
                contract_size=CONTRACT_SIZE_USD,
                expiry_ns=_expiry_ns(spec[FUTURE]["expiry"]),
            ),
        ]
    )
    marks = {name: float(spec[name]["mark_price"]) for name in (PERP, FUTURE)}
    book = book_from_rows(
        assets=[Asset(symbol="BTC")],
        instruments=table,
        balances={"pm": {"BTC": btc_balance}},
        positions=[
            (
                "pm",
                name,
                float(spec[name]["position_btc"]) * marks[name] / CONTRACT_SIZE_USD,
                marks[name],
            )
            for name in (PERP, FUTURE)
        ],
    )
    market = MarketState.build(
        table, valuation_ns=VALUATION_NS, index_prices={"BTC": INDEX_USD}, mark_prices=marks
    )
    market = at_par(market, book)
    return book, market


def _cells_btc(params: PortfolioParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(per-position BTC P&L (2, S), applied BTC move (S,), price factor (S,)) for the example."""
    book, market = _example()
    explanation = explain_account(PortfolioMargin(params), book, market, 0)
    scenarios = explanation.scenarios
    factor = scenarios.price_factor[:, scenarios.factor_index("BTC")]
    applied = np.clip(factor - 1.0, -scenarios.caps, scenarios.caps)  # delta-one cap (extended rows)
    # explain_account reports P&L in the numeraire (BTC) at today's price: / index gives BTC.
    cells = explanation.scenario_pnl_usd / INDEX_USD
    return cells, applied, factor


def test_valuation_date_is_2024_06_17() -> None:
    moment = datetime.fromtimestamp(VALUATION_NS / 1e9, tz=UTC)
    assert moment.date().isoformat() == "2024-06-17"


def test_standard_grid_is_nine_price_points() -> None:
    _, applied, _ = _cells_btc(PARAMS)
    assert applied == pytest.approx(GOLDEN["price_moves"], abs=1e-15)


@pytest.mark.parametrize("name", [PERP, FUTURE])
def test_per_instrument_btc_cells(name: str) -> None:
    """Our scenario P&L in the BTC numeraire = the published BTC cell, size·(1 - 1/(1+m)) (a
    future at entry is worth 0 today, so its coin P&L is its USD P&L over the shocked index)."""
    cells, _, _ = _cells_btc(PARAMS)
    row = (PERP, FUTURE).index(name)
    published = GOLDEN["standard_btc"][name]
    assert cells[row] == pytest.approx(published, rel=CELL_REL_TOLERANCE, abs=CELL_ABS_TOLERANCE)


def test_aggregated_risk_vector() -> None:
    """Deribit's aggregated vector: min(0, Σ instruments), gains shown as 0."""
    cells, _, _ = _cells_btc(PARAMS)
    aggregated = np.minimum(cells.sum(axis=0), 0.0)
    assert aggregated == pytest.approx(
        GOLDEN["standard_btc"]["aggregated"], rel=CELL_REL_TOLERANCE, abs=CELL_ABS_TOLERANCE
    )


def test_worst_case() -> None:
    """worst_case = grid_usd / index (the loss in BTC at the -16 % bucket, valued at today's index)."""
    book, market = _example()
    explanation = explain_account(PortfolioMargin(PARAMS), book, market, 0)
    assert explanation.grid_usd / INDEX_USD == pytest.approx(OUTPUTS["worst_case"], rel=CELL_REL_TOLERANCE)
    # "bucket 1, side left": the -16 % end of the grid.
    assert explanation.scenarios.labels[explanation.worst_scenario].startswith("BTC -16.0%")
    assert OUTPUTS["delta_shock"] == 0  # not modelled; 0 in the example (net delta far below threshold)


def test_roll_shock() -> None:
    """Σ_expiry |delta_e| · max(1 %, 7.5 % · T_e): both expiries sit on the 1 % floor (28JUN24 is
    11 days out: 7.5 % x 11/365 = 0.23 %)."""
    book, market = _example()
    explanation = explain_account(PortfolioMargin(PARAMS), book, market, 0)
    roll_btc = explanation.addons_usd["roll_shock"] / INDEX_USD
    assert roll_btc == pytest.approx(OUTPUTS["roll_shock"], rel=CELL_REL_TOLERANCE)
    others = {k: v for k, v in explanation.addons_usd.items() if k != "roll_shock"}
    assert all(v == 0.0 for v in others.values())


def test_risk_matrix_margin_and_maintenance() -> None:
    """RMM = worst_case + delta_shock + roll_shock; MM = 0.8 x RMM.

    Unrounded, RMM = 0.0596858723809 + 0.00315725898 = 0.06284313136 BTC; Deribit publishes
    0.06284313098, which is the worst case rounded to 9 dp (0.059685872) plus the roll shock. So
    the published RMM and MM are matched to 1e-9 BTC, and the rounding is checked exactly."""
    book, market = _example()
    result = PortfolioMargin(PARAMS).evaluate(book, market)
    rmm_btc = float(result.initial_margin_usd[0]) / INDEX_USD
    mm_btc = float(result.maintenance_margin_usd[0]) / INDEX_USD
    assert rmm_btc == pytest.approx(OUTPUTS["risk_matrix_margin"], abs=PUBLISHED_ROUNDING_BTC)
    assert mm_btc == pytest.approx(OUTPUTS["maintenance_margin"], abs=PUBLISHED_ROUNDING_BTC)
    assert mm_btc == pytest.approx(0.8 * rmm_btc, rel=1e-15)
    # The published rounding: round(worst_case, 9) + roll_shock, and MM = 0.8 x that.
    rounded = round(OUTPUTS["worst_case"], 9) + OUTPUTS["roll_shock"]
    assert rounded == pytest.approx(OUTPUTS["risk_matrix_margin"], abs=1e-15)
    assert 0.8 * OUTPUTS["risk_matrix_margin"] == pytest.approx(OUTPUTS["maintenance_margin"], abs=1e-15)
    # IM = RMM + mmp_margin + open_orders_margin (+ spot_margin 0), published to 9 dp.
    im = OUTPUTS["risk_matrix_margin"] + OUTPUTS["mmp_margin"] + OUTPUTS["open_orders_margin"]
    assert im == pytest.approx(OUTPUTS["initial_margin"], abs=PUBLISHED_ROUNDING_BTC)


def test_extended_table_futures_keep_boundary_cells_and_are_dampened() -> None:
    """Under the deribit-pm preset's grid (vol up/same/down, extended -66 %..+500 % options-only,
    dampener 100,000 USD) the futures' extended cells equal their ±16 % boundary cells (as
    published), the aggregated extended cells charge nothing, and the worst case is unchanged."""
    preset = deribit_pm()
    params = PortfolioParams(
        name="deribit-pm-btc",
        numeraire="BTC",
        default_grid=preset.default_grid,
        addons=preset.addons,
        maintenance_fraction=preset.maintenance_fraction,
    )
    cells, _, factor = _cells_btc(params)
    book, market = _example()
    explanation = explain_account(PortfolioMargin(params), book, market, 0)
    extended = np.flatnonzero(np.isfinite(explanation.scenarios.caps))
    assert factor[extended] - 1.0 == pytest.approx(GOLDEN["extended_moves"], abs=1e-15)
    for row, name in enumerate((PERP, FUTURE)):
        assert cells[row, extended] == pytest.approx(GOLDEN["extended_btc"][name], rel=CELL_REL_TOLERANCE)
    # 27 standard cells (9 prices x up/same/down) + 8 extended.
    assert explanation.scenarios.n_scenarios == 27 + 8
    assert explanation.grid_usd / INDEX_USD == pytest.approx(OUTPUTS["worst_case"], rel=CELL_REL_TOLERANCE)
    assert np.all(explanation.per_group_scenario < 27)  # the worst is a standard cell


def test_coin_balance_carries_no_risk_in_its_own_numeraire() -> None:
    book, market = _example(btc_balance=10.0)
    coin_only = book_from_rows(
        assets=[Asset(symbol="BTC")],
        instruments=book.instruments,
        balances={"holder": {"BTC": 10.0}},
    )
    result = PortfolioMargin(PARAMS).totals(coin_only, market, revalue(coin_only.instruments, market))
    assert result.grid_usd[0] == pytest.approx(0.0, abs=1e-6)
    # And adding the balance to the published portfolio changes nothing.
    with_coin = PortfolioMargin(PARAMS).evaluate(book, market)
    assert float(with_coin.initial_margin_usd[0]) / INDEX_USD == pytest.approx(
        OUTPUTS["risk_matrix_margin"], abs=PUBLISHED_ROUNDING_BTC
    )
