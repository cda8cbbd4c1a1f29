"""CME SPAN: McMillan's published 16-scenario risk arrays, reduced by our portfolio kernel, and the
structure of the `span` preset.

Sources (public):
- L. G. McMillan, *Options as a Strategic Investment*, 4th ed., Prentice Hall Press, 2002
  (ISBN 978-0-7352-0197-2), ch. 34 "Futures and Futures Options", pp. 668-670: the risk arrays
  of one S&P 500 future (p. 668: "the required maintenance margin for the futures is $10,000,
  which represents a 20-point move", "an 'extreme' move is 14 points, or $7,000 of risk"), one
  long Dec 410 call (p. 669) and the covered write, long future and short call (p. 670), in
  McMillan's sign convention (+ = profit). The arrays below are copied from those three tables.
- The 16-scenario layout (price 0, ±1/3, ±2/3, ±3/3 of the scan range, each with volatility up
  and down; scenarios 15/16 the extreme moves, ±2 x the scan range, 35 % of the loss) and the
  worst-scenario rule: CME Group, "CME SPAN Methodology Overview",
  https://www.cmegroup.com/clearing/risk-management/span-overview.html, and CME's public SPAN
  reference, "Risk Arrays - Standard" ("pairs scenarios 1-14 and shows 15 and 16 (the extreme
  scenarios) separately"),
  https://cmegroupclientsite.atlassian.net/wiki/spaces/pubspan/pages/46137504/Risk+Arrays+-+Standard.

Scan risks:
- long call 3,990: PUBLISHED ("the SPAN requirement would be $3,990 ('futures down three-thirds;
  volatility down')");
- long future 10,000: READ OFF the published future column (scenarios 13/14, -10,000);
- covered write 6,620: the covered-write column is published, its worst row (scenario 13,
  -6,620) is READ OFF the table; the book's text is cut off before it states the total.

The arrays are fed to `portfolio_totals` as a ScenarioRevaluation (per-contract USD P&L, one
column per scenario) with every weight 1: McMillan's extreme rows 15/16 already hold 35 % of the
±2-range move (7,000 = 0.35 x 2 x 10,000), so weighting them again would count the cover twice.
"""

from __future__ import annotations

import numpy as np
import pytest

from crossmargin.core.book import Book
from crossmargin.core.instruments import Instrument, InstrumentKind, InstrumentTable, OptionType
from crossmargin.core.margin.portfolio import AddOns, PortfolioMargin, portfolio_totals
from crossmargin.core.margin.presets import SPAN_SCAN_RANGES, span_like
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import revalue
from crossmargin.core.scenarios import ScenarioRevaluation, ScenarioSet
from tests.builders import NS_PER_DAY, VALUATION_NS, at_par, book_from_rows, usd_asset

# McMillan's risk arrays, + = profit, USD per contract, scenarios 1..16.
LONG_FUTURE = [
    0,
    0,
    3330,
    3330,
    -3330,
    -3330,
    6670,
    6670,
    -6670,
    -6670,
    10000,
    10000,
    -10000,
    -10000,
    7000,
    -7000,
]
LONG_CALL = [
    460,
    -610,
    2640,
    1730,
    -1270,
    -2340,
    5210,
    4540,
    -2540,
    -3430,
    8060,
    7640,
    -3380,
    -3990,
    3130,
    -1500,
]
COVERED_WRITE = [
    -460,
    610,
    690,
    1600,
    -2060,
    -990,
    1460,
    2130,
    -4130,
    -3240,
    1940,
    2360,
    -6620,
    -6010,
    3870,
    -5500,
]
LABELS = (
    "unch, vol up",
    "unch, vol down",
    "up 1/3, vol up",
    "up 1/3, vol down",
    "down 1/3, vol up",
    "down 1/3, vol down",
    "up 2/3, vol up",
    "up 2/3, vol down",
    "down 2/3, vol up",
    "down 2/3, vol down",
    "up 3/3, vol up",
    "up 3/3, vol down",
    "down 3/3, vol up",
    "down 3/3, vol down",
    "up extreme",
    "down extreme",
)
SCAN_RANGE_USD = 10_000.0
EXTREME_COVER = 0.35


def _book(future_quantity: float, call_quantity: float) -> tuple[Book, MarketState]:
    """An S&P future and a Dec 410 call; the market is a placeholder (only the add-on inputs read
    it, and every add-on is off): the scenario P&L comes from McMillan's arrays."""
    table = InstrumentTable.from_instruments(
        [
            Instrument(
                id="SP-FUT",
                kind=InstrumentKind.FUTURE,
                underlying="SPX",
                expiry_ns=VALUATION_NS + 90 * NS_PER_DAY,
            ),
            Instrument(
                id="SP-DEC-410-C",
                kind=InstrumentKind.OPTION,
                underlying="SPX",
                expiry_ns=VALUATION_NS + 90 * NS_PER_DAY,
                strike=410.0,
                option_type=OptionType.CALL,
            ),
        ]
    )
    market = MarketState.build(
        table, valuation_ns=VALUATION_NS, index_prices={"SPX": 410.0}, implied_vols={"SP-DEC-410-C": 0.2}
    )
    positions = [
        (name, quantity)
        for name, quantity in (("SP-FUT", future_quantity), ("SP-DEC-410-C", call_quantity))
        if quantity != 0.0
    ]
    book = book_from_rows(
        assets=[usd_asset()],
        instruments=table,
        balances={"account": {}},
        # Entry: the future at 410 (it needs a price > 0), the call at a zero premium (unused).
        positions=[
            ("account", name, quantity, 410.0 if name == "SP-FUT" else 0.0) for name, quantity in positions
        ],
    )
    market = at_par(market, book)
    return book, market


def _scan_risk(future_quantity: float, call_quantity: float) -> tuple[float, int]:
    book, market = _book(future_quantity, call_quantity)
    n = len(LABELS)
    scenarios = ScenarioSet(
        factors=("SPX",),
        price_factor=np.ones((n, 1)),  # unused: the revaluation below is given
        vol_shift=np.zeros((n, book.instruments.n_instruments)),
        weight=np.ones(n),  # rows 15/16 are already at 35 % in the published arrays
        group=np.zeros(n, dtype=np.int64),
        labels=LABELS,
    )
    reval = ScenarioRevaluation(
        d_unit_value_usd=np.array([LONG_FUTURE, LONG_CALL], dtype=np.float64),
        d_entry_coefficient_usd=np.zeros((2, n)),
        d_asset_factor=np.zeros((book.assets.n_assets, n)),
        instrument_factor=np.ones((2, n)),
    )
    totals = portfolio_totals(
        book,
        market,
        revalue(book.instruments, market),
        scenarios,
        reval,
        AddOns(),
        n_grid_scenarios=n,
    )
    assert totals.min_delta_usd[0] == 0.0 and not totals.addons_usd.any()
    return float(totals.grid_usd[0]), int(totals.worst_scenario[0])


def test_published_columns_are_consistent() -> None:
    """Covered write = long future - long call in every row (how the notes rebuilt lost signs),
    and the extreme future rows are 35 % of twice the scan range."""
    assert np.array_equal(np.subtract(LONG_FUTURE, LONG_CALL), COVERED_WRITE)
    assert LONG_FUTURE[14] == EXTREME_COVER * 2 * SCAN_RANGE_USD
    assert LONG_FUTURE[15] == -EXTREME_COVER * 2 * SCAN_RANGE_USD


@pytest.mark.parametrize(
    ("name", "future_quantity", "call_quantity", "expected_usd", "worst_rows"),
    [
        ("long call (published)", 0.0, 1.0, 3_990.0, {13}),  # scenario 14: down 3/3, vol down
        ("long future (read off)", 1.0, 0.0, 10_000.0, {12, 13}),  # scenarios 13/14 tie
        ("covered write (read off)", 1.0, -1.0, 6_620.0, {12}),  # scenario 13: down 3/3, vol up
    ],
)
def test_scan_risk(
    name: str, future_quantity: float, call_quantity: float, expected_usd: float, worst_rows: set[int]
) -> None:
    grid_usd, worst = _scan_risk(future_quantity, call_quantity)
    assert grid_usd == expected_usd, name
    assert worst in worst_rows, (name, LABELS[worst])


def test_short_call_alone_is_charged_its_worst_gain_reversed() -> None:
    """A short call loses in the up scenarios: 8,060 (up 3/3, vol up)."""
    grid_usd, worst = _scan_risk(0.0, -1.0)
    assert grid_usd == 8_060.0
    assert LABELS[worst] == "up 3/3, vol up"


def _span_scenarios() -> tuple[ScenarioSet, np.ndarray]:
    """The span preset's scenarios for a book with a BTC and an ETH option (so vol shocks show)."""
    spots = {"BTC": 60_000.0, "ETH": 3_000.0}
    instruments = [
        Instrument(
            id=f"{u}-C",
            kind=InstrumentKind.OPTION,
            underlying=u,
            expiry_ns=VALUATION_NS + 20 * NS_PER_DAY,
            strike=spot,
            option_type=OptionType.CALL,
        )
        for u, spot in spots.items()
    ]
    table = InstrumentTable.from_instruments(instruments)
    market = MarketState.build(
        table, valuation_ns=VALUATION_NS, index_prices=spots, implied_vols={i.id: 0.5 for i in instruments}
    )
    book = book_from_rows(assets=[usd_asset()], instruments=table, balances={"a": {}})
    valuation = revalue(table, market)
    return PortfolioMargin(span_like()).scenarios(book, valuation), valuation.implied_vol


@pytest.mark.parametrize("underlying", ["BTC", "ETH"])
def test_span_preset_structure(underlying: str) -> None:
    """16 scenarios per underlying: 0, ±1/3, ±2/3, ±3/3 of the scan range, each with vol up and
    vol down (14), plus ±2 x the scan range with vol unchanged at weight 0.35 (2)."""
    scenarios, _ = _span_scenarios()
    column = scenarios.factor_index(underlying)
    option = scenarios.factors.index(underlying)  # one option per underlying, same order
    scan = SPAN_SCAN_RANGES[underlying]
    rows = np.flatnonzero([label.startswith(f"{underlying} ") for label in scenarios.labels])
    assert rows.size == 16
    assert len(set(scenarios.group[rows].tolist())) == 1
    moves = scenarios.price_factor[rows, column] - 1.0
    regular = scenarios.weight[rows] == 1.0
    extreme = ~regular
    assert regular.sum() == 14 and extreme.sum() == 2
    thirds = np.round(moves[regular] / scan * 3).astype(int)
    assert moves[regular] == pytest.approx(thirds * scan / 3, abs=1e-12)
    assert sorted(thirds.tolist()) == sorted([k for k in range(-3, 4) for _ in range(2)])
    vol = scenarios.vol_shift[rows, option]
    for k in range(-3, 4):  # each price point: one vol-up and one vol-down row
        paired = vol[regular][thirds == k]
        assert sorted(np.sign(paired).tolist()) == [-1.0, 1.0]
    assert sorted(moves[extreme].tolist()) == pytest.approx([-2 * scan, 2 * scan], abs=1e-12)
    assert np.all(scenarios.weight[rows][extreme] == EXTREME_COVER)
    assert np.all(vol[extreme] == 0.0)  # vol unchanged in the extreme rows
    assert np.all(scenarios.offsets[rows] == 0.0)
