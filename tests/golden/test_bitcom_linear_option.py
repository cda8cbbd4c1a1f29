"""bit.com / bitexch USD(T)-margined options: the Deribit rule multiplied through by the underlying.

Source: https://helpcenter.bitexch.io/en/articles/9777723-margin-rules-for-usdt-margined-options
(also https://helpcenter.bit.com/hc/en-us/articles/11039356631321-3-Margin-Rules-for-USD-Margined-Options),
worked example ETH-USDT-17NOV23-1850-P: "Underlying around: 2098, Strike=1850, Mark=2.4",
"MM=max(157.35,7.5%* 2.4)+2.4=159.75", "IM=...=212.2", "Pos IM=50*212.2=10,610",
"Pos MM=50*159.75=7987.5".
"""

from __future__ import annotations

import pytest

from crossmargin.core.instruments import Instrument, InstrumentKind, InstrumentTable, OptionType
from crossmargin.core.margin import CrossMargin, IsolatedMargin
from crossmargin.core.market import MarketState
from tests.builders import NS_PER_DAY, VALUATION_NS, at_par, book_from_rows, usd_asset
from tests.golden import load_golden

GOLDEN = load_golden("bitcom_usd_option_put.json")
REL_TOLERANCE = 1e-12


def _evaluate(contracts: float):  # type: ignore[no-untyped-def]
    name = GOLDEN["instrument"]
    underlying = float(GOLDEN["underlying_usd"])
    table = InstrumentTable.from_instruments(
        [
            Instrument(
                id=name,
                kind=InstrumentKind.OPTION,
                underlying="ETH",
                contract_size=1.0,
                expiry_ns=VALUATION_NS + 14 * NS_PER_DAY,
                strike=float(GOLDEN["strike"]),
                option_type=OptionType.PUT,
            )
        ]
    )
    book = book_from_rows(
        assets=[usd_asset("USDT")],
        instruments=table,
        balances={"writer": {"USDT": 20_000.0}},
        positions=[("writer", name, -contracts, GOLDEN["mark_usd"])],
    )
    market = MarketState.build(
        table,
        valuation_ns=VALUATION_NS,
        index_prices={"ETH": underlying},
        forward_prices={name: underlying},
        mark_prices={name: GOLDEN["mark_usd"]},
    )
    market = at_par(market, book)
    return book, market


def test_per_contract_margin() -> None:
    book, market = _evaluate(1.0)
    result = CrossMargin().evaluate(book, market)
    assert result.maintenance_margin_usd[0] == pytest.approx(
        GOLDEN["maintenance_margin_per_contract_usd"], rel=REL_TOLERANCE
    )
    assert result.initial_margin_usd[0] == pytest.approx(
        GOLDEN["initial_margin_per_contract_usd"], rel=REL_TOLERANCE
    )


@pytest.mark.parametrize("model", [CrossMargin(), IsolatedMargin()], ids=["cross", "isolated"])
def test_fifty_contracts(model: CrossMargin | IsolatedMargin) -> None:
    book, market = _evaluate(float(GOLDEN["contracts"]))
    result = model.evaluate(book, market)
    assert result.initial_margin_usd[0] == pytest.approx(
        GOLDEN["position_initial_margin_usd"], rel=REL_TOLERANCE
    )
    assert result.maintenance_margin_usd[0] == pytest.approx(
        GOLDEN["position_maintenance_margin_usd"], rel=REL_TOLERANCE
    )
    # Equity: 20,000 USDT less the short's mark value 50 × 2.4.
    assert result.equity_usd[0] == pytest.approx(20_000.0 - 50 * 2.4, rel=REL_TOLERANCE)
