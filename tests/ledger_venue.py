"""A small venue for ledger and liquidation tests: USDC, BTC and ETH collateral; a linear BTC perp
(USDC-settled), an inverse BTC perp (BTC-settled, 10 USD contracts), a linear ETH perp, a dated
BTC future and a linear BTC call. Flat margin rates so hand computations stay short."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from crossmargin.core.assets import Asset, AssetTable, HaircutTier
from crossmargin.core.instruments import (
    Instrument,
    InstrumentKind,
    InstrumentTable,
    MarginSchedule,
    OptionType,
    Settlement,
)
from crossmargin.core.ledger.apply import apply
from crossmargin.core.ledger.events import Deposit
from crossmargin.core.ledger.state import (
    LedgerConfig,
    LedgerState,
    LiquidationParams,
    MarginCallParams,
    WaterfallParams,
)

VALUATION_NS = 1_704_067_200 * 10**9  # 2024-01-01T00:00:00Z
DAY_NS = 86_400 * 10**9
PRICES = {"USDC": 1.0, "BTC": 40_000.0, "ETH": 2_000.0}
DECIMALS = {"USDC": 6, "BTC": 8, "ETH": 8}
USDC = 10**6
BTC = 10**8


def venue_instruments(*, initial_rate: float = 0.10, maintenance_rate: float = 0.05) -> InstrumentTable:
    flat = MarginSchedule.flat(initial_rate=initial_rate, maintenance_rate=maintenance_rate)
    return InstrumentTable.from_instruments(
        [
            Instrument(id="BTC-PERP", kind=InstrumentKind.PERPETUAL, underlying="BTC", margin=flat),
            Instrument(
                id="BTC-INV",
                kind=InstrumentKind.PERPETUAL,
                underlying="BTC",
                settlement=Settlement.INVERSE,
                contract_size=10.0,
                margin=flat,
            ),
            Instrument(id="ETH-PERP", kind=InstrumentKind.PERPETUAL, underlying="ETH", margin=flat),
            Instrument(
                id="BTC-FUT",
                kind=InstrumentKind.FUTURE,
                underlying="BTC",
                expiry_ns=VALUATION_NS + 30 * DAY_NS,
                margin=flat,
            ),
            Instrument(
                id="BTC-C45",
                kind=InstrumentKind.OPTION,
                underlying="BTC",
                expiry_ns=VALUATION_NS + 30 * DAY_NS,
                strike=45_000.0,
                option_type=OptionType.CALL,
                contract_size=0.1,
            ),
        ]
    )


def venue_assets() -> AssetTable:
    return AssetTable.from_assets(
        [
            Asset(symbol="USDC", liability_weight=1.0, borrow_rate_apr=0.10),
            Asset(
                symbol="BTC",
                haircut_tiers=(HaircutTier(above=0.0, haircut=0.05),),
                liability_weight=1.05,
                borrow_rate_apr=0.05,
            ),
            Asset(
                symbol="ETH",
                haircut_tiers=(HaircutTier(above=0.0, haircut=0.10),),
                liability_weight=1.05,
                borrow_rate_apr=0.05,
            ),
        ]
    )


def venue_config(
    *,
    waterfall: WaterfallParams | None = None,
    liquidation: LiquidationParams | None = None,
    margin_call: MarginCallParams | None = None,
    taker_fee_rate: float = 0.0005,
    maker_fee_rate: float = 0.0002,
    initial_rate: float = 0.10,
    maintenance_rate: float = 0.05,
) -> LedgerConfig:
    return LedgerConfig(
        instruments=venue_instruments(initial_rate=initial_rate, maintenance_rate=maintenance_rate),
        assets=venue_assets(),
        decimals=DECIMALS,
        quote_asset="USDC",
        valuation_ns=VALUATION_NS,
        implied_vols={"BTC-C45": 0.6},
        taker_fee_rate=taker_fee_rate,
        maker_fee_rate=maker_fee_rate,
        waterfall=waterfall or WaterfallParams(),
        liquidation=liquidation or LiquidationParams(),
        margin_call=margin_call or MarginCallParams(),
    )


def open_venue(
    config: LedgerConfig,
    traders: Sequence[str],
    deposits: Mapping[str, Mapping[str, int]] | None = None,
    prices: Mapping[str, float] | None = None,
) -> LedgerState:
    """A ledger with these traders and deposits {account: {asset: units}} (system accounts too)."""
    state = LedgerState.open(config, tuple(traders), dict(prices or PRICES))
    for account, amounts in (deposits or {}).items():
        for asset, units in amounts.items():
            state = apply(
                state,
                Deposit(account=account, asset=asset, amount_units=units, as_of_ns=VALUATION_NS),
                config,
            ).state
    return state
