"""A seeded synthetic price history and a small book for VaR tests that need no shared data."""

from __future__ import annotations

import numpy as np

from crossmargin.core.assets import Asset, HaircutTier
from crossmargin.core.book import Book
from crossmargin.core.instruments import Instrument, InstrumentKind, OptionType, Settlement
from crossmargin.core.market import MarketState
from crossmargin.core.var.history import PriceHistory
from tests.builders import at_par, book_from_rows, usd_asset

VALUATION_NS = 1_704_067_200 * 10**9  # 2024-01-01T00:00:00Z
DAYS = 1_200


def synthetic_history(seed: int = 11) -> PriceHistory:
    """BTC, ETH (correlated 0.8, t(4) shocks, a volatility regime switch 100 days before the end)
    and USDC (pegged, tiny noise), ending 2023-12-31."""
    rng = np.random.default_rng(seed)
    days = np.arange(
        np.datetime64("2023-12-31") - DAYS + 1, np.datetime64("2024-01-01"), dtype="datetime64[D]"
    )
    vol = np.where(np.arange(DAYS) < DAYS - 100, 0.03, 0.07)
    z = rng.standard_t(4.0, size=(DAYS, 2)) / np.sqrt(2.0)
    z[:, 1] = 0.8 * z[:, 0] + 0.6 * z[:, 1]
    returns = z * vol[:, None]
    close = np.empty((DAYS, 3))
    close[:, 0] = 40_000.0 * np.exp(np.cumsum(returns[:, 0]))
    close[:, 1] = 2_000.0 * np.exp(np.cumsum(returns[:, 1]))
    close[:, 2] = 1.0 + rng.normal(0.0, 2e-4, DAYS)
    return PriceHistory(days=days, symbols=("BTC", "ETH", "USDC"), close_usd=close)


def var_book() -> tuple[Book, MarketState]:
    """Four accounts: long BTC perp on USDC; short ETH call against ETH collateral; a BTC/ETH pair;
    an idle account holding only BTC (no positions)."""
    instruments = [
        Instrument(id="BTC-PERP", kind=InstrumentKind.PERPETUAL, underlying="BTC"),
        Instrument(id="ETH-PERP", kind=InstrumentKind.PERPETUAL, underlying="ETH"),
        Instrument(
            id="ETH-C-2200",
            kind=InstrumentKind.OPTION,
            underlying="ETH",
            settlement=Settlement.INVERSE,
            expiry_ns=VALUATION_NS + 30 * 86_400 * 10**9,
            strike=2_200.0,
            option_type=OptionType.CALL,
        ),
    ]
    assets = [
        usd_asset("USDC"),
        Asset(symbol="BTC", haircut_tiers=(HaircutTier(above=0.0, haircut=0.05),)),
        Asset(symbol="ETH", haircut_tiers=(HaircutTier(above=0.0, haircut=0.07),)),
    ]
    book = book_from_rows(
        assets=assets,
        instruments=instruments,
        balances={
            "long-btc": {"USDC": 50_000.0},
            "covered-call": {"ETH": 20.0},
            "pair": {"USDC": 80_000.0},
            "idle": {"BTC": 1.0},
        },
        positions=[
            ("long-btc", "BTC-PERP", 2.0, 41_000.0),
            ("covered-call", "ETH-C-2200", -20.0, 0.04),
            ("pair", "BTC-PERP", 1.0, 42_000.0),
            ("pair", "ETH-PERP", -18.0, 2_300.0),
        ],
    )
    market = MarketState.build(
        book.instruments,
        valuation_ns=VALUATION_NS,
        index_prices={"BTC": 42_000.0, "ETH": 2_300.0},
        implied_vols={"ETH-C-2200": 0.6},
    )
    market = at_par(market, book)
    return book, market
