"""Three-party MPyC margin check on random books: the private result equals the plaintext
engine's (cross model equity and MM; the scenario pass's grid) within the fixed-point tolerance."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mpyc")

from crossmargin.adapters.mpc import run_parties
from crossmargin.core.assets import Asset, HaircutTier
from crossmargin.core.instruments import Instrument, InstrumentKind, MarginSchedule, Settlement
from crossmargin.core.margin.cross import CrossMargin
from crossmargin.core.market import MarketState
from crossmargin.engine.private_margin import (
    account_secrets,
    plaintext_margin,
    price_grid,
    public_data,
)
from tests.builders import VALUATION_NS, book_from_rows

# SecFxp(96, 32): public coefficients and every product round to 2**-32; a few hundred terms of
# magnitude up to 1e7 USD keep the error far below a micro-dollar. Stated: 1e-6 USD + 1e-12 relative.
TOLERANCE_USD = 1e-6
TOLERANCE_RELATIVE = 1e-12


def _random_book(seed: int):
    rng = np.random.default_rng(seed)
    btc, eth = float(rng.uniform(20_000, 90_000)), float(rng.uniform(1_000, 4_000))
    assets = [
        Asset(
            symbol="USDC",
            haircut_tiers=(HaircutTier(above=0, haircut=0.0), HaircutTier(above=50_000, haircut=0.02)),
        ),
        Asset(
            symbol="BTC",
            haircut_tiers=(HaircutTier(above=0, haircut=0.05), HaircutTier(above=2, haircut=0.1)),
            liability_weight=1.1,
        ),
        Asset(
            symbol="ETH",
            haircut_tiers=(HaircutTier(above=0, haircut=0.07),),
            liability_weight=1.2,
        ),
    ]
    schedule = MarginSchedule.flat(initial_rate=0.02, maintenance_rate=0.01)
    instruments = [
        Instrument(
            id="BTC-PERP", kind=InstrumentKind.PERPETUAL, underlying="BTC", contract_size=1.0, margin=schedule
        ),
        Instrument(
            id="ETH-PERP", kind=InstrumentKind.PERPETUAL, underlying="ETH", contract_size=1.0, margin=schedule
        ),
        Instrument(
            id="BTC-INV",
            kind=InstrumentKind.PERPETUAL,
            underlying="BTC",
            contract_size=10.0,
            settlement=Settlement.INVERSE,
            margin=schedule,
        ),
    ]
    accounts = {
        f"a{n}": {
            "USDC": float(rng.uniform(-20_000, 200_000)),
            "BTC": float(rng.uniform(-1, 4)),
            "ETH": float(rng.uniform(0, 30)),
        }
        for n in range(3)
    }
    positions = []
    for account in accounts:
        positions.append(
            (account, "BTC-PERP", float(rng.integers(-5, 6)) or 1.0, btc * float(rng.uniform(0.9, 1.1)))
        )
        positions.append(
            (account, "ETH-PERP", float(rng.integers(-40, 41)) or 2.0, eth * float(rng.uniform(0.9, 1.1)))
        )
        positions.append(
            (account, "BTC-INV", float(rng.integers(-3000, 3001)) or 5.0, btc * float(rng.uniform(0.9, 1.1)))
        )
    book = book_from_rows(assets=assets, instruments=instruments, balances=accounts, positions=positions)
    market = MarketState.build(
        book.instruments, valuation_ns=VALUATION_NS, index_prices={"BTC": btc, "ETH": eth}
    ).for_assets(book.assets, {"USDC": 1.0})
    return book, market


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= TOLERANCE_USD + TOLERANCE_RELATIVE * abs(b)


def test_mpc_three_party_margin_equals_plaintext_engine(tmp_path):
    for seed in (1,):
        book, market = _random_book(seed)
        public = public_data(book, market, price_grid(book, steps=5))
        accounts = [account_secrets(book, row) for row in range(2)]  # two accounts: ~10 s of 3-party work
        result = run_parties(public, accounts, tmp_path / f"run{seed}")
        engine = CrossMargin().evaluate(book, market)
        for row, private in enumerate(result["accounts"]):
            plain = plaintext_margin(public, accounts[row])
            assert _close(private["equity_usd"], float(engine.equity_usd[row]))
            assert _close(private["maintenance_margin_usd"], float(engine.maintenance_margin_usd[row]))
            assert _close(private["grid_requirement_usd"], plain["grid_requirement_usd"])
            assert plain["grid_requirement_usd"] > 0.0
            covers = bool(engine.equity_usd[row] >= engine.maintenance_margin_usd[row])
            assert private["equity_covers_maintenance"] == covers
