"""Deribit inverse (coin-settled) options, standard margin for short positions.

Formula source: Deribit Knowledge Base "Inverse Options",
https://support.deribit.com/hc/en-us/articles/25944688327069-Inverse-Options, as quoted by TSLab
https://doc.tslab.pro/tslab/eng/data-providers/connection-to-broker/deribit-cryptocurrency-exchange/deribit-margin-requirements-calculation:
    short call IM = max(0.15 - OTM/U, 0.1) + mark,   MM = 0.075 + mark
    short put  MM = max(0.075, 0.075·mark) + mark,    IM = max(max(0.15 - OTM/U, 0.1) + mark, MM)
(BTC per contract, mark in BTC). Deribit publishes no numeric example: the numbers in
data/deribit_inverse_options.json are COMPUTED BY HAND FROM THAT PUBLISHED FORMULA, not quoted.
Forward = index here so the underlying price U is unambiguous.
"""

from __future__ import annotations

from typing import Any

import pytest

from crossmargin.core.instruments import Instrument, InstrumentKind, InstrumentTable, OptionType, Settlement
from crossmargin.core.margin import CrossMargin, CrossParams, OptionMarginParams
from crossmargin.core.market import MarketState
from tests.builders import NS_PER_DAY, VALUATION_NS, at_par, book_from_rows, usd_asset
from tests.golden import load_golden

GOLDEN = load_golden("deribit_inverse_options.json")
REL_TOLERANCE = 1e-12


def _case_id(case: dict[str, Any]) -> str:
    return f"{case['position'].replace(' ', '_')}-K{case['strike']}-S{case['index_usd']}"


def _evaluate(case: dict[str, Any], quantity: float, params: CrossParams | None = None):  # type: ignore[no-untyped-def]
    option_type = OptionType.CALL if case["position"].endswith("call") else OptionType.PUT
    name = f"BTC-31JAN24-{case['strike']}-{'C' if option_type == OptionType.CALL else 'P'}"
    table = InstrumentTable.from_instruments(
        [
            Instrument(
                id=name,
                kind=InstrumentKind.OPTION,
                underlying="BTC",
                settlement=Settlement.INVERSE,
                expiry_ns=VALUATION_NS + 30 * NS_PER_DAY,
                strike=float(case["strike"]),
                option_type=option_type,
            )
        ]
    )
    index = float(case["index_usd"])
    book = book_from_rows(
        assets=[usd_asset()],
        instruments=table,
        balances={"writer": {"USDC": 1_000_000.0}},
        positions=[("writer", name, quantity, case["mark_btc"])],
    )
    market = MarketState.build(
        table,
        valuation_ns=VALUATION_NS,
        index_prices={"BTC": index},
        forward_prices={name: index},
        mark_prices={name: case["mark_btc"]},
    )
    market = at_par(market, book)
    return CrossMargin(params or CrossParams()).evaluate(book, market)


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=_case_id)
def test_short_option_one_contract(case: dict[str, Any]) -> None:
    result = _evaluate(case, -1.0)
    index = case["index_usd"]
    assert result.initial_margin_usd[0] / index == pytest.approx(
        case["initial_margin_btc"], rel=REL_TOLERANCE
    )
    assert result.maintenance_margin_usd[0] / index == pytest.approx(
        case["maintenance_margin_btc"], rel=REL_TOLERANCE
    )
    # The short's value is -mark in coin, worth -mark × index in USD.
    assert result.position_value_usd[0] == pytest.approx(-case["mark_btc"] * index, rel=REL_TOLERANCE)


@pytest.mark.parametrize("case", GOLDEN["cases"][:2], ids=_case_id)
def test_requirement_is_per_contract_times_size(case: dict[str, Any]) -> None:
    result = _evaluate(case, -7.5)
    assert result.initial_margin_usd[0] == pytest.approx(
        7.5 * case["initial_margin_btc"] * case["index_usd"], rel=REL_TOLERANCE
    )


def test_long_option_held_needs_no_margin_at_deribit() -> None:
    """Deribit: "IM = MM = 0 for a held position (premium is paid up front)". crossmargin's default
    instead reserves the premium (long_premium_as_margin); switching it off gives Deribit's 0."""
    case = GOLDEN["cases"][0]
    deribit = _evaluate(
        case, 2.0, CrossParams(option_margin=OptionMarginParams(long_premium_as_margin=False))
    )
    assert deribit.initial_margin_usd[0] == 0.0
    assert deribit.maintenance_margin_usd[0] == 0.0
    default = _evaluate(case, 2.0)
    premium_usd = 2.0 * case["mark_btc"] * case["index_usd"]
    assert default.initial_margin_usd[0] == pytest.approx(premium_usd, rel=REL_TOLERANCE)
    assert default.equity_usd[0] - default.initial_margin_usd[0] == pytest.approx(
        1_000_000.0, rel=REL_TOLERANCE
    )
