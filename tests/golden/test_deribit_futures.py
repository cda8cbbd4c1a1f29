"""Deribit BTC futures standard margin: linear growth with position size.

Source: Deribit "Linear Perpetual", https://support.deribit.com/hc/en-us/articles/25944738177565-Linear-Perpetual
("Initial margin requirement | 2% + (POS Size in BTC) * 0.005%", "Maintenance margin requirement |
1% + (POS Size in BTC) * 0.005%", worked examples at index 100,000: 25 BTC -> 2.125 % = 53,125 USDC,
350 BTC -> 3.75 % = 1,312,500 USDC, MM 25 BTC -> 1.125 % = 28,125). Same BTC parameters for inverse
futures since https://support.deribit.com/hc/en-us/articles/25944826427293-11-January-2022; the
older https://test.deribit.com/pages/docs/futures gives "25 BTC ... 2.125% (= 0.53125 BTC)" and
"350 BTC ... 3.75% (= 13.125 BTC)".
"""

from __future__ import annotations

from typing import Any

import pytest

from crossmargin.core.instruments import (
    Instrument,
    InstrumentKind,
    InstrumentTable,
    MarginSchedule,
    Settlement,
)
from crossmargin.core.margin import CrossMargin, IsolatedMargin
from crossmargin.core.market import MarketState
from tests.builders import NS_PER_DAY, VALUATION_NS, at_par, book_from_rows, usd_asset
from tests.golden import load_golden

GOLDEN = load_golden("deribit_futures_btc.json")
EXAMPLES = GOLDEN["examples"]
INDEX_USD = float(GOLDEN["index_price_usd"])
REL_TOLERANCE = 1e-12
DERIBIT_BTC = MarginSchedule.flat(
    initial_rate=GOLDEN["initial_rate"],
    maintenance_rate=GOLDEN["maintenance_rate"],
    rate_per_unit=GOLDEN["rate_per_btc"],
)


def _evaluate(
    instrument: Instrument, quantity: float, *, entry: float, marks: dict[str, float] | None = None
):  # type: ignore[no-untyped-def]
    table = InstrumentTable.from_instruments([instrument])
    book = book_from_rows(
        assets=[usd_asset()],
        instruments=table,
        balances={"trader": {"USDC": 50_000_000.0}},
        positions=[("trader", instrument.id, quantity, entry)],
    )
    market = MarketState.build(
        table, valuation_ns=VALUATION_NS, index_prices={"BTC": INDEX_USD}, mark_prices=marks
    )
    market = at_par(market, book)
    return CrossMargin().evaluate(book, market), IsolatedMargin().evaluate(book, market)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: f"{e['size_btc']}BTC")
@pytest.mark.parametrize("side", [1.0, -1.0], ids=["long", "short"])
def test_linear_perpetual_published_examples(example: dict[str, Any], side: float) -> None:
    perp = Instrument(
        id="BTC_USDC-PERPETUAL", kind=InstrumentKind.PERPETUAL, underlying="BTC", margin=DERIBIT_BTC
    )
    cross, isolated = _evaluate(perp, side * example["size_btc"], entry=INDEX_USD)
    for result in (cross, isolated):
        assert result.initial_margin_usd[0] == pytest.approx(example["initial_margin_usd"], rel=REL_TOLERANCE)
        assert result.maintenance_margin_usd[0] == pytest.approx(
            example["maintenance_margin_usd"], rel=REL_TOLERANCE
        )
    notional = example["size_btc"] * INDEX_USD
    assert cross.initial_margin_usd[0] / notional == pytest.approx(example["initial_rate"], rel=REL_TOLERANCE)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: f"{e['size_btc']}BTC")
def test_inverse_perpetual_same_rates_in_coin(example: dict[str, Any]) -> None:
    """BTC-PERPETUAL: 10 USD contracts, quantity in contracts; size in BTC = contracts·10/mark, the
    requirement is size·rate in BTC, worth BTC × index in USD."""
    perp = Instrument(
        id="BTC-PERPETUAL",
        kind=InstrumentKind.PERPETUAL,
        underlying="BTC",
        settlement=Settlement.INVERSE,
        contract_size=10.0,
        margin=DERIBIT_BTC,
    )
    contracts = example["size_btc"] * INDEX_USD / 10.0
    cross, _ = _evaluate(perp, -contracts, entry=INDEX_USD)
    assert cross.initial_margin_usd[0] / INDEX_USD == pytest.approx(
        example["initial_margin_btc"], rel=REL_TOLERANCE
    )
    assert cross.maintenance_margin_usd[0] / INDEX_USD == pytest.approx(
        example["maintenance_margin_btc"], rel=REL_TOLERANCE
    )
    assert cross.initial_margin_usd[0] == pytest.approx(example["initial_margin_usd"], rel=REL_TOLERANCE)


def test_inverse_future_margin_in_coin_converted_at_index_not_mark() -> None:
    """A dated inverse future marked at 102,000 with the index at 100,000: 255,000 contracts of 10
    USD are 2,550,000/102,000 = 25 BTC, so the published 25 BTC rates apply: IM 0.53125 BTC, MM
    0.28125 BTC, worth 53,125 and 28,125 USD at the index (not 54,187.5 at the mark)."""
    future = Instrument(
        id="BTC-27DEC24",
        kind=InstrumentKind.FUTURE,
        underlying="BTC",
        settlement=Settlement.INVERSE,
        contract_size=10.0,
        expiry_ns=VALUATION_NS + 90 * NS_PER_DAY,
        margin=DERIBIT_BTC,
    )
    cross, _ = _evaluate(future, 255_000.0, entry=102_000.0, marks={"BTC-27DEC24": 102_000.0})
    assert cross.initial_margin_usd[0] == pytest.approx(53_125.0, rel=REL_TOLERANCE)
    assert cross.maintenance_margin_usd[0] == pytest.approx(28_125.0, rel=REL_TOLERANCE)
    # Entered at the mark: no PnL, equity is the collateral.
    assert cross.equity_usd[0] == pytest.approx(50_000_000.0, rel=REL_TOLERANCE)


def test_zero_size_needs_no_margin() -> None:
    """Published row "size 0 -> 0": an account with no position has IM = MM = 0."""
    table = InstrumentTable.from_instruments(
        [
            Instrument(
                id="BTC_USDC-PERPETUAL", kind=InstrumentKind.PERPETUAL, underlying="BTC", margin=DERIBIT_BTC
            )
        ]
    )
    book = book_from_rows(assets=[usd_asset()], instruments=table, balances={"trader": {"USDC": 1_000.0}})
    market = MarketState.build(table, valuation_ns=VALUATION_NS, index_prices={"BTC": INDEX_USD})
    market = at_par(market, book)
    result = CrossMargin().evaluate(book, market)
    assert result.initial_margin_usd[0] == 0.0
    assert result.maintenance_margin_usd[0] == 0.0
    assert result.equity_usd[0] == 1_000.0
