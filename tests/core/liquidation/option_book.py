"""The option book both liquidation-price suites check against brute-force repricing: a short-vol
account (short a linear 45k call and an inverse 35k put, a little long perp) and a long-put account,
30 days to expiry, on flat 10 % / 5 % rates."""

from __future__ import annotations

from crossmargin.core.assets import Asset
from crossmargin.core.book import Book
from crossmargin.core.instruments import Instrument, InstrumentKind, MarginSchedule, OptionType, Settlement
from tests.builders import book_from_rows

FLAT = MarginSchedule.flat(initial_rate=0.10, maintenance_rate=0.05)
IMPLIED_VOLS = {"C": 0.6, "P": 0.7}


def option_book(*, index_usd: float, valuation_ns: int) -> Book:
    expiry = valuation_ns + 30 * 86_400 * 10**9
    instruments = [
        Instrument(id="PERP", kind=InstrumentKind.PERPETUAL, underlying="BTC", margin=FLAT),
        Instrument(
            id="C", kind=InstrumentKind.OPTION, underlying="BTC", expiry_ns=expiry, strike=45_000.0,
            option_type=OptionType.CALL,
        ),
        Instrument(
            id="P", kind=InstrumentKind.OPTION, underlying="BTC", expiry_ns=expiry, strike=35_000.0,
            option_type=OptionType.PUT, settlement=Settlement.INVERSE,
        ),
    ]  # fmt: skip
    return book_from_rows(
        assets=[Asset(symbol="USDC"), Asset(symbol="BTC")],
        instruments=instruments,
        balances={"short-vol": {"USDC": 60_000.0}, "long-put": {"USDC": 3_000.0, "BTC": 0.05}},
        positions=[
            ("short-vol", "C", -3.0, 1_000.0),
            ("short-vol", "P", -2.0, 0.02),
            ("short-vol", "PERP", 0.5, index_usd),
            ("long-put", "P", 4.0, 0.02),
            ("long-put", "PERP", 1.0, index_usd),
        ],
    )
