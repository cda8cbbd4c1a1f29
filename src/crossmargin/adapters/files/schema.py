"""The book file, as pydantic models: validation at the edge, nothing but plain values inside.

A book file (YAML or JSON) holds assets, instruments, market state, model parameters and
accounts; positions and balances of large books may come from CSV or Parquet files named in
`positions_file` / `balances_file` (paths relative to the book file). `crossmargin schema` prints
the JSON Schema generated from these models; docs/book-format.md documents it.

Strict at the edge: pydantic strict mode, so a number is a number (`true` is not 1 contract,
`'-10'` is not -10), a string is a string, a flag is `true`/`false`, and a time is an ISO 8601
string or a YAML timestamp (`12345` is not 1970-01-01T03:25:45Z). What the JSON Schema rejects,
the loader rejects. Unknown keys are errors everywhere.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from crossmargin.core.pricing import IMPLIED_VOL_HIGH

# ---------------------------------------------------------------------------------- bounds
# Every number is finite, and magnitudes are bounded so that every product the engine forms from
# them (quantity × contract size × price, an inverse contract's face / price, sums over a book,
# squares in VaR) stays far inside float64's range (about 1.8e308,
# https://en.wikipedia.org/wiki/Double-precision_floating-point_format): a book with
# `index_prices.BTC: 1e308` is refused naming that field, instead of overflowing to inf deep in
# the engine. The bounds are orders of magnitude beyond any real market, so no real book meets them.

MAX_PRICE_USD = 1e12
"""Largest price (USD per unit; also option marks in coin): 10^7 times the highest price any
crypto asset has traded at (BTC, about 1e5 USD)."""
MIN_PRICE_USD = 1e-12
"""Smallest non-zero price of a delta-one instrument or an index, USD per unit: inverse PnL
divides by it (1/entry − 1/mark). 10^-6 of the smallest traded token prices (about 1e-6 USD)."""
MAX_AMOUNT = 1e15
"""Largest |quantity| (contracts) and |balance| (asset units): above the total supply of any
traded token (PEPE: 4.2e14, https://www.coingecko.com/en/coins/pepe)."""
MAX_CONTRACT_SIZE = 1e12
MIN_CONTRACT_SIZE = 1e-12
"""Contract size bounds (underlying units, or USD face for inverse delta-one contracts)."""
MAX_IMPLIED_VOL = IMPLIED_VOL_HIGH
"""Largest implied vol, annualised fraction (20.0 = 2,000 %): the top of the bracket the core's
Black-76 implied-vol solver searches (core.pricing.IMPLIED_VOL_HIGH). A larger vol could not be
recovered from its own price, so marks and vols would no longer describe the same option."""
MAX_FUNDING_RATE_8H = 0.5
"""Largest |funding rate| per 8 h interval (50 %): venues cap funding at a small fraction of the
margin rates (BitMEX: 75 % of initial minus maintenance margin,
https://www.bitmex.com/app/perpetualContractsGuide), a few percent at most; the funding add-on
multiplies it by up to 100 periods and the notional."""
EARLIEST_TIME = datetime(2009, 1, 3, 18, 15, 5, tzinfo=UTC)
"""No time before the Bitcoin genesis block (2009-01-03T18:15:05Z,
https://en.bitcoin.it/wiki/Genesis_block): no crypto asset or derivative existed, so an earlier
valuation time or expiry is a typo (1900-01-01, or a number read as seconds since 1970)."""
LATEST_TIME = datetime(2200, 1, 1, tzinfo=UTC)
"""No time after 2200-01-01T00:00:00Z: times become int64 nanoseconds, which end at
2262-04-11T23:47:16Z (https://numpy.org/doc/stable/reference/arrays.datetime.html#datetime-units);
the margin leaves room for horizons added to a time."""

MAGNITUDE_REASON = (
    "bounded so that every product of quantities, sizes and prices stays finite in float64 "
    "(docs/book-format.md#bounds)"
)
VOL_REASON = (
    "the top of the implied-vol solver's bracket (2,000 % a year); a larger vol cannot be "
    "recovered from its own price"
)
BOUND_REASONS: dict[float, str] = {
    MAX_PRICE_USD: MAGNITUDE_REASON,
    MIN_PRICE_USD: MAGNITUDE_REASON,
    MAX_AMOUNT: MAGNITUDE_REASON,
    -MAX_AMOUNT: MAGNITUDE_REASON,
    MAX_IMPLIED_VOL: VOL_REASON,
    MAX_FUNDING_RATE_8H: "50 % per 8 h is far above any venue's funding cap (a few percent)",
    -MAX_FUNDING_RATE_8H: "50 % per 8 h is far above any venue's funding cap (a few percent)",
}
"""Why a bound exists, by its value: added to pydantic's 'should be less than' messages."""

PositiveFloat = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
Rate = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
PriceUsd = Annotated[float, Field(ge=MIN_PRICE_USD, le=MAX_PRICE_USD, allow_inf_nan=False)]
"""An index, asset, strike or forward price, USD per unit."""
MarkPrice = Annotated[float, Field(ge=0.0, le=MAX_PRICE_USD, allow_inf_nan=False)]
"""A mark or entry price in settlement units (coin for inverse options); 0 only for options."""
Amount = Annotated[float, Field(ge=-MAX_AMOUNT, le=MAX_AMOUNT, allow_inf_nan=False)]
"""Signed contracts or asset units."""
NonNegativeAmount = Annotated[float, Field(ge=0.0, le=MAX_AMOUNT, allow_inf_nan=False)]
ContractSize = Annotated[float, Field(ge=MIN_CONTRACT_SIZE, le=MAX_CONTRACT_SIZE, allow_inf_nan=False)]
FundingRate = Annotated[float, Field(ge=-MAX_FUNDING_RATE_8H, le=MAX_FUNDING_RATE_8H, allow_inf_nan=False)]
MaxLeverage = Annotated[float, Field(ge=1.0, allow_inf_nan=False)]
"""Leverage below 1 would ask an initial margin above the notional (a rate above 1)."""
ImpliedVol = Annotated[float, Field(gt=0.0, le=MAX_IMPLIED_VOL, allow_inf_nan=False)]


def _iso_time(value: object) -> object:
    """A time is an ISO 8601 string or a YAML timestamp; never a number (seconds since 1970?
    milliseconds?) nor a bare date (which hour?)."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        raise ValueError(
            f"a date without a time ({value.isoformat()}); give a time and a time zone, "
            f"e.g. {value.isoformat()}T08:00:00Z"
        )
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"not an ISO 8601 date-time: {value!r} (e.g. 2025-06-27T08:00:00Z)") from None
    raise ValueError(
        f"must be an ISO 8601 date-time string such as 2025-06-27T08:00:00Z, not {type(value).__name__} "
        f"{value!r}"
    )


def _aware_in_range(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must carry a timezone, e.g. 2025-06-27T08:00:00Z")
    if value < EARLIEST_TIME:
        raise ValueError(
            f"{value.isoformat()} is before {EARLIEST_TIME.isoformat()}, the Bitcoin genesis block: "
            "no crypto market existed"
        )
    if value > LATEST_TIME:
        raise ValueError(
            f"{value.isoformat()} is after {LATEST_TIME.isoformat()}: times are int64 nanoseconds, "
            "which end in 2262"
        )
    return value


Timestamp = Annotated[datetime, BeforeValidator(_iso_time), AfterValidator(_aware_in_range)]
"""An aware date-time between EARLIEST_TIME and LATEST_TIME."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class HaircutTierModel(_Strict):
    above: NonNegativeAmount = Field(description="Balance (asset units) above which this haircut applies")
    haircut: Annotated[float, Field(ge=0.0, lt=1.0, allow_inf_nan=False)] = Field(
        description="Fraction of value removed for the slice of balance in this tier, in [0, 1)"
    )


class AssetModel(_Strict):
    symbol: str = Field(min_length=1)
    price_usd: PriceUsd | None = Field(
        default=None, description="USD price; defaults to market.index_prices[symbol]"
    )
    haircut_tiers: list[HaircutTierModel] = Field(
        default_factory=lambda: [HaircutTierModel(above=0.0, haircut=0.0)],
        description="Progressive haircut schedule by balance size; the first tier starts at 0",
    )
    liability_weight: Annotated[float, Field(ge=1.0, allow_inf_nan=False)] = 1.0
    borrow_rate_apr: NonNegativeFloat = 0.0


class RateTierModel(_Strict):
    above_notional_usd: NonNegativeFloat = 0.0
    initial_rate: Rate | None = None
    max_leverage: MaxLeverage | None = Field(
        default=None, description="Alternative to initial_rate: 1/max_leverage"
    )
    maintenance_rate: Rate

    @model_validator(mode="after")
    def _one_initial(self) -> RateTierModel:
        if (self.initial_rate is None) == (self.max_leverage is None):
            raise ValueError("give exactly one of initial_rate or max_leverage")
        return self

    @property
    def resolved_initial_rate(self) -> float:
        if self.initial_rate is not None:
            return self.initial_rate
        assert self.max_leverage is not None  # checked by _one_initial
        return 1.0 / self.max_leverage


class MarginScheduleModel(_Strict):
    """Either Deribit-style linear growth (initial_rate, maintenance_rate, rate_per_unit) or
    notional tiers (tiers: [...]) with an optional rate_per_unit."""

    initial_rate: Rate | None = None
    maintenance_rate: Rate | None = None
    rate_per_unit: Rate = 0.0
    tiers: list[RateTierModel] | None = None

    @model_validator(mode="after")
    def _one_style(self) -> MarginScheduleModel:
        flat = self.initial_rate is not None or self.maintenance_rate is not None
        if flat and self.tiers is not None:
            raise ValueError("give either initial_rate/maintenance_rate or tiers, not both")
        if self.tiers is None and (self.initial_rate is None or self.maintenance_rate is None):
            raise ValueError("give initial_rate and maintenance_rate, or tiers")
        return self


class InstrumentModel(_Strict):
    id: str = Field(min_length=1)
    kind: Literal["spot", "perpetual", "future", "option"]
    underlying: str = Field(min_length=1)
    settlement: Literal["linear", "inverse"] = "linear"
    contract_size: ContractSize = Field(
        default=1.0,
        description="Linear and options: underlying units per contract; inverse futures: USD face",
    )
    expiry: Timestamp | None = Field(
        default=None, description="Futures and options only: ISO 8601 with a time zone, after valuation_time"
    )
    strike: PriceUsd | None = None
    option_type: Literal["call", "put"] | None = None
    mark_price: MarkPrice | None = Field(
        default=None, description="Futures/perps: USD per unit. Options: settlement units (coin if inverse)"
    )
    implied_vol: ImpliedVol | None = Field(
        default=None, description="Annualised fraction, in (0, 20]: 20 tops the implied-vol solver's bracket"
    )
    forward_price: PriceUsd | None = Field(default=None, description="Options: the forward F for Black-76")
    funding_rate_8h: FundingRate | None = None
    margin: MarginScheduleModel | None = None

    @field_validator("expiry")
    @classmethod
    def _only_dated_instruments_expire(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        kind = info.data.get("kind")
        if value is not None and kind in ("spot", "perpetual"):
            # Refused, not ignored: an expiry on a spot or perpetual line is a mistake in the
            # kind or in the line, and the engine would silently never expire it.
            raise ValueError(f"a {kind} instrument has no expiry (remove it, or make the kind future)")
        return value


class MarketModel(_Strict):
    index_prices: dict[str, PriceUsd]
    rate: Annotated[float, Field(ge=-1.0, le=1.0, allow_inf_nan=False)] = 0.0
    mark_prices: dict[str, MarkPrice] = Field(default_factory=dict)
    implied_vols: dict[str, ImpliedVol] = Field(default_factory=dict)
    forward_prices: dict[str, PriceUsd] = Field(default_factory=dict)
    funding_rates_8h: dict[str, FundingRate] = Field(default_factory=dict)


class OptionMarginModel(_Strict):
    initial_rate: Rate = 0.15
    initial_floor_rate: Rate = 0.10
    maintenance_rate: Rate = 0.075
    long_premium_as_margin: bool = True


class AddOnsModel(_Strict):
    """Overrides of a portfolio preset's floor and add-ons (core.margin.portfolio.AddOns)."""

    min_delta_unhedged: Rate | None = None
    min_delta_hedged: Rate | None = None
    annualised_move_risk: Rate | None = None
    min_annualised_move: Rate | None = None
    delta_contingency_rate: Rate | None = None
    short_option_rate: Rate | None = None
    concentration_coefficient: Rate | None = None
    concentration_power: Annotated[float, Field(ge=0.0, le=4.0)] | None = None
    liquidity_usd: dict[str, PositiveFloat] | None = Field(
        default=None, description="Liquidity per underlying (e.g. open interest), USD, for concentration"
    )
    delta_half_spread_bps: NonNegativeFloat | None = None
    vega_half_spread: Rate | None = None
    funding_periods: NonNegativeFloat | None = None
    fee_rate: Rate | None = None
    stablecoins: list[str] | None = None
    depeg_move: Rate | None = None


class PortfolioConfigModel(_Strict):
    preset: str = Field(
        default="deribit-pm", description="deribit-pm | paradex-pm | span | crossmargin-multi"
    )
    maintenance_fraction: Rate | None = None
    numeraire: str | None = Field(default=None, description="Measure losses in this coin (Deribit S:PM)")
    addons: AddOnsModel | None = None


class ModelParamsModel(_Strict):
    default: Literal["cross", "isolated", "portfolio", "sensitivity"] = "cross"
    tier_preset: Literal["binance", "hyperliquid"] | None = Field(
        default=None, description="Put linear perpetuals on a venue's tier table under cross/isolated"
    )
    option_margin: OptionMarginModel = Field(default_factory=OptionMarginModel)
    portfolio: PortfolioConfigModel = Field(default_factory=PortfolioConfigModel)


class PositionModel(_Strict):
    instrument: str = Field(min_length=1)
    quantity: Amount = Field(description="Signed number of contracts, long > 0; |quantity| <= 1e15")
    entry_price: MarkPrice | None = Field(
        default=None, description="Settlement units like mark_price; defaults to today's mark (no PnL)"
    )
    isolated_collateral: dict[str, NonNegativeAmount] | None = Field(
        default=None, description="Collateral assigned to this position under isolated margin"
    )


class AccountModel(_Strict):
    id: str = Field(min_length=1)
    collateral: dict[str, Amount] = Field(
        default_factory=dict, description="Asset balances, negative = borrowed"
    )
    positions: list[PositionModel] = Field(default_factory=list)


class BookModel(_Strict):
    """A crossmargin book file."""

    valuation_time: Timestamp = Field(
        description="ISO 8601 with a time zone, between 2009-01-03 (Bitcoin genesis) and 2200"
    )
    assets: list[AssetModel] = Field(min_length=1)
    instruments: list[InstrumentModel] = Field(default_factory=list)
    market: MarketModel
    model: ModelParamsModel = Field(default_factory=ModelParamsModel)
    accounts: list[AccountModel] = Field(default_factory=list)
    positions_file: str | None = Field(
        default=None, description="CSV/Parquet with columns account, instrument, quantity[, entry_price]"
    )
    balances_file: str | None = Field(
        default=None, description="CSV/Parquet with columns account, asset, balance"
    )
    source: str | None = Field(default=None, description="Free text: where the market data came from")
