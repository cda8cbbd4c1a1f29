"""The book file, as pydantic models: validation at the edge, nothing but plain values inside.

A book file (YAML or JSON) holds assets, instruments, market state, model parameters and
accounts; positions and balances of large books may come from CSV or Parquet files named in
`positions_file` / `balances_file` (paths relative to the book file). `crossmargin schema` prints
the JSON Schema generated from these models; docs/book-format.md documents it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
PositiveFloat = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
Rate = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HaircutTierModel(_Strict):
    above: NonNegativeFloat = Field(description="Balance (asset units) above which this haircut applies")
    haircut: Annotated[float, Field(ge=0.0, lt=1.0, allow_inf_nan=False)] = Field(
        description="Fraction of value removed for the slice of balance in this tier, in [0, 1)"
    )


class AssetModel(_Strict):
    symbol: str = Field(min_length=1)
    price_usd: PositiveFloat | None = Field(
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
    max_leverage: PositiveFloat | None = Field(
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
    contract_size: PositiveFloat = Field(
        default=1.0,
        description="Linear and options: underlying units per contract; inverse futures: USD face",
    )
    expiry: datetime | None = None
    strike: PositiveFloat | None = None
    option_type: Literal["call", "put"] | None = None
    mark_price: NonNegativeFloat | None = Field(
        default=None, description="Futures/perps: USD per unit. Options: settlement units (coin if inverse)"
    )
    implied_vol: PositiveFloat | None = None
    forward_price: PositiveFloat | None = Field(
        default=None, description="Options: the forward F for Black-76"
    )
    funding_rate_8h: FiniteFloat | None = None
    margin: MarginScheduleModel | None = None

    @field_validator("expiry")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must carry a timezone, e.g. 2025-06-27T08:00:00Z")
        return value


class MarketModel(_Strict):
    index_prices: dict[str, PositiveFloat]
    rate: Annotated[float, Field(ge=-1.0, le=1.0, allow_inf_nan=False)] = 0.0
    mark_prices: dict[str, NonNegativeFloat] = Field(default_factory=dict)
    implied_vols: dict[str, PositiveFloat] = Field(default_factory=dict)
    forward_prices: dict[str, PositiveFloat] = Field(default_factory=dict)
    funding_rates_8h: dict[str, FiniteFloat] = Field(default_factory=dict)


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
    quantity: FiniteFloat = Field(description="Signed number of contracts, long > 0")
    entry_price: NonNegativeFloat | None = Field(
        default=None, description="Settlement units like mark_price; defaults to today's mark (no PnL)"
    )
    isolated_collateral: dict[str, NonNegativeFloat] | None = Field(
        default=None, description="Collateral assigned to this position under isolated margin"
    )


class AccountModel(_Strict):
    id: str = Field(min_length=1)
    collateral: dict[str, FiniteFloat] = Field(
        default_factory=dict, description="Asset balances, negative = borrowed"
    )
    positions: list[PositionModel] = Field(default_factory=list)


class BookModel(_Strict):
    """A crossmargin book file."""

    valuation_time: datetime
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

    @field_validator("valuation_time")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must carry a timezone, e.g. 2025-01-15T08:00:00Z")
        return value
