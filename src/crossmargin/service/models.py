"""Request and response bodies (pydantic, the API's edge; the engine never sees these).

Money crosses the API as exact decimal strings in asset units ("0.25" BTC) and as integer minor
units (`*_units`): an amount with more decimals than the asset's minor unit is refused, never
rounded. Risk figures (equity, IM, MM, available, withdrawable) are USD floats, as the engine
computes them. Unknown fields in a request are refused (`extra="forbid"`), so a typo is an error
naming the field rather than a silently ignored option.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from crossmargin.service.keys import Role

AccountId = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@-]+$")]
Symbol = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:/-]+$")]
# A decimal amount in asset units: digits, an optional fraction, no sign, no exponent.
DecimalAmount = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,30}(\.[0-9]{1,30})?$", max_length=61)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready"]
    sequence: int = Field(description="last committed log sequence number")


# -- keys (admin) ---------------------------------------------------------------------------------


class KeyCreate(Request):
    role: Role
    account: AccountId | None = Field(None, description="required for holder keys; absent for risk and admin")
    label: Annotated[str, StringConstraints(max_length=200)] = ""


class KeyInfo(BaseModel):
    key_id: str
    role: Role
    account: str | None
    label: str
    created_ns: int
    revoked_ns: int | None


class KeyCreated(KeyInfo):
    key: str = Field(description="the full key, shown this once; only its scrypt hash is stored")


class KeyList(BaseModel):
    keys: list[KeyInfo]


class AuditEntry(BaseModel):
    time_ns: int
    key_id: str | None
    role: str | None
    method: str
    path: str
    account: str | None
    status: int
    sequence: int | None
    idempotency_key: str | None
    body_sha256: str | None


class AuditList(BaseModel):
    entries: list[AuditEntry]


JsonObject = dict[str, Any]


# -- commands ---------------------------------------------------------------------------------------

PositiveFloat = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
Contracts = Annotated[int, Field(ge=-(10**12), le=10**12)]
ModelName = Literal["cross", "isolated", "portfolio", "sensitivity", "var"]


class MoneyMove(Request):
    """`amount` of `asset` in asset units, as a decimal string ("0.25"); at most the asset's
    minor-unit decimals (BTC 8, USDC 6), never rounded."""

    asset: Symbol
    amount: DecimalAmount


class TransferRequest(MoneyMove):
    to_account: AccountId


class OrderRequest(Request):
    order_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    instrument: Symbol
    quantity: Contracts = Field(description="signed contracts, > 0 buys; not 0")
    price: PositiveFloat = Field(description="limit price, settlement units (USD; coin for inverse options)")


class FillRequest(Request):
    taker: AccountId
    maker: AccountId
    instrument: Symbol
    quantity: Contracts = Field(description="contracts the taker buys (> 0) or sells (< 0); not 0")
    price: PositiveFloat
    order_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = Field(
        None, description="the maker's resting order this fills (its reservation is released)"
    )


class PricesRequest(Request):
    index_prices: dict[Symbol, PositiveFloat] = Field(description="USD per unit of each underlying / asset")
    mark_prices: dict[Symbol, PositiveFloat] = Field(
        default_factory=dict, description="delta-one marks by instrument"
    )


class Ack(BaseModel):
    """A committed command: its gap-free log sequence number and chain hash."""

    sequence: int
    idempotency_key: str
    kind: str
    as_of_ns: int
    record_hash: str
    duplicate: bool = Field(description="true when this key was seen before: the original ack, no new effect")


# -- account views ----------------------------------------------------------------------------------


class Amount(BaseModel):
    asset: str
    units: int = Field(description="integer minor units of the asset")
    amount: str = Field(description="the same in asset units, exact decimal")


class PositionView(BaseModel):
    instrument: str
    quantity: int
    entry_price: float


class AccountSummary(BaseModel):
    """Equity, margins and what may leave the account, side by side (USD, float64 risk maths;
    withdrawable exact in asset units)."""

    account: str
    sequence: int = Field(description="log sequence this view is as of")
    status: str = Field(description="healthy | warning | margin_call | liquidation | bankrupt")
    equity_usd: float
    initial_margin_usd: float
    maintenance_margin_usd: float
    reserved_usd: float = Field(description="initial margin reserved by open orders")
    available_usd: float = Field(description="equity - IM - reserved")
    withdrawable: list[Amount] = Field(
        description="per asset, the most a withdrawal of it alone would accept now"
    )
    margin_call_deadline_ns: int | None


class AccountDetail(AccountSummary):
    balances: list[Amount]
    positions: list[PositionView]
    open_orders: list[dict[str, Any]]


class AccountList(BaseModel):
    accounts: list[AccountSummary]


class MarginFigures(BaseModel):
    """One account's margin under one model, USD. `margin_ratio` = MM / equity; null when bankrupt."""

    model: str
    preset: str | None
    equity_usd: float
    initial_margin_usd: float
    maintenance_margin_usd: float
    available_usd: float
    margin_ratio: float | None
    bankrupt: bool


class MarginResponse(MarginFigures):
    account: str
    sequence: int


class WhatIfTradeModel(Request):
    instrument: Symbol
    quantity: Contracts
    price: PositiveFloat | None = Field(None, description="settlement units; absent: today's mark")


class WhatIfRequest(Request):
    trades: list[WhatIfTradeModel] = Field(min_length=1, max_length=100)


class WhatIfResponse(BaseModel):
    account: str
    sequence: int
    before: MarginFigures
    after: MarginFigures


class PositionContribution(BaseModel):
    instrument: str
    quantity: float
    entry_price: float
    value_usd: float
    unrealised_pnl_usd: float
    initial_margin_usd: float
    maintenance_margin_usd: float


class CollateralContribution(BaseModel):
    asset: str
    balance: float = Field(description="asset units (negative: borrowed)")
    collateral_value_usd: float = Field(description="after haircut")
    haircut: float


class Explanation(BaseModel):
    """Per-position requirements and per-asset collateral values that make up the account's
    cross margin (they add up to its IM and MM)."""

    account: str
    sequence: int
    positions: list[PositionContribution]
    collateral: list[CollateralContribution]


class InsuranceFund(BaseModel):
    sequence: int
    balances: list[Amount]


class LogEntryModel(BaseModel):
    sequence: int
    kind: str
    idempotency_key: str | None
    as_of_ns: int
    record_hash: str
    payload: dict[str, Any]


class EventPage(BaseModel):
    entries: list[LogEntryModel]
    next_after: int = Field(description="pass as `after` to read the next page")
    last_sequence: int


class RiskParametersRequest(Request):
    margin: dict[str, Any] = Field(default_factory=dict)
    margin_call: dict[str, Any] = Field(default_factory=dict)
    liquidation: dict[str, Any] = Field(default_factory=dict)
    override: bool = Field(False, description="apply even above the margin-jump threshold")


class ParameterPreviewModel(BaseModel):
    initial_margin_before_usd: float
    initial_margin_after_usd: float
    maintenance_margin_before_usd: float
    maintenance_margin_after_usd: float
    margin_jump_fraction: float
    pushed_under_maintenance: list[str]
    refused_reason: str | None


class ParameterChange(BaseModel):
    preview: ParameterPreviewModel
    ack: Ack | None = Field(description="absent when the change was only previewed")


class ProblemField(BaseModel):
    field: str
    problem: str


class ProblemDetails(BaseModel):
    """RFC 9457 problem details, with the request field at fault."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    field: str | None = None
    errors: list[ProblemField] | None = None
