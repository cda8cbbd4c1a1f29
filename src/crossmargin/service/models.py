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
    log_audit: Literal["not_needed", "running", "stopped", "verified", "failed"] = Field(
        description="the background audit of the log before the snapshot the venue started from "
        "(serve --verify-on-start since_snapshot); not_needed: the whole chain was verified at start-up"
    )
    log_audit_problem: str | None = Field(None, description="where and why the audit failed")


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
NonNegativeFloat = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
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
    index_prices: dict[Symbol, PositiveFloat] = Field(
        default_factory=dict, description="USD per unit of each underlying / asset"
    )
    mark_prices: dict[Symbol, PositiveFloat] = Field(
        default_factory=dict, description="delta-one marks by instrument"
    )
    oracle_status: dict[Symbol, Literal["ok", "held", "stale", "no_price"]] = Field(
        default_factory=dict,
        description="the oracle's word per symbol, with or without a new price (held: its circuit "
        "breaker holds a move; the venue keeps its last price and says so)",
    )
    oracle_band_fraction: dict[Symbol, NonNegativeFloat] = Field(
        default_factory=dict, description="the oracle's accepted sources' band / price, per symbol"
    )


class FundingRequest(Request):
    instrument: Symbol = Field(description="a perpetual")
    funding_rate: float = Field(
        gt=-1.0,
        lt=1.0,
        allow_inf_nan=False,
        description="fraction of notional for the period settled (0.0001 = 1 bp per 8 h); > 0: longs pay",
    )


class InterestRequest(Request):
    elapsed_ns: int = Field(
        gt=0, le=10 * 365 * 24 * 3600 * 10**9, description="the accrual period, ns (3600e9: one hour)"
    )


class ExpiryRequest(Request):
    instrument: Symbol = Field(description="a dated future or an option, at or after its expiry time")
    settlement_price: PositiveFloat = Field(description="the delivery price, USD per underlying unit")


class Ack(BaseModel):
    """A committed command: its gap-free log sequence number and chain hash."""

    sequence: int
    idempotency_key: str
    kind: str
    as_of_ns: int
    record_hash: str
    duplicate: bool = Field(description="true when this key was seen before: the original ack, no new effect")


# -- batch ingestion (POST /v1/events/batch) --------------------------------------------------------

IdempotencyKeyField = Annotated[str, StringConstraints(min_length=1, max_length=128)]
BATCH_MAX_EVENTS = 1000


class BatchMoneyMove(Request):
    """A deposit into or a withdrawal from `account` (as POST /v1/accounts/{account}/deposits)."""

    kind: Literal["deposit", "withdrawal"]
    idempotency_key: IdempotencyKeyField
    account: AccountId
    asset: Symbol
    amount: DecimalAmount


class BatchTransfer(Request):
    """`amount` of `asset` from `account` to `to_account` (as POST /v1/accounts/{account}/transfers)."""

    kind: Literal["transfer"]
    idempotency_key: IdempotencyKeyField
    account: AccountId
    to_account: AccountId
    asset: Symbol
    amount: DecimalAmount


class BatchFill(FillRequest):
    """A trade between two accounts (as POST /v1/fills)."""

    kind: Literal["fill"]
    idempotency_key: IdempotencyKeyField


BatchEvent = Annotated[BatchMoneyMove | BatchTransfer | BatchFill, Field(discriminator="kind")]


class BatchRequest(Request):
    events: list[JsonObject] = Field(
        min_length=1,
        max_length=BATCH_MAX_EVENTS,
        description=(
            "each one event: {kind: deposit|withdrawal, idempotency_key, account, asset, amount} | "
            "{kind: transfer, idempotency_key, account, to_account, asset, amount} | "
            "{kind: fill, idempotency_key, taker, maker, instrument, quantity, price, order_id?}; "
            "each is validated, authorised and decided on its own (schema BatchEvent)"
        ),
    )


class BatchProblem(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    field: str | None = None


class BatchItem(BaseModel):
    """One event's outcome: `status` is what its single-event route would answer (201 with its
    ack, or the problem's status with the problem)."""

    index: int
    status: int
    ack: Ack | None = None
    problem: BatchProblem | None = None


class BatchResult(BaseModel):
    """Every event's outcome, in request order; the accepted ones were committed together."""

    accepted: int = Field(description="events acknowledged (new or duplicate), all after one commit")
    rejected: int
    results: list[BatchItem]


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
    actor: str | None = Field(
        None, description="the API key id that submitted the command; null for records the venue derived"
    )
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


# -- venue-wide stress ------------------------------------------------------------------------------

MAX_STRESS_SCENARIOS = 16  # shocks + historical windows per request: each is a venue-wide cascade
MAX_CASCADE_STEPS = 20
# A price move as a fraction (-0.2 = -20 %): above -100 % (a price stays > 0), at most +1000 %.
Move = Annotated[float, Field(gt=-1.0, le=10.0, allow_inf_nan=False)]
VolShift = Annotated[float, Field(ge=-5.0, le=5.0, allow_inf_nan=False)]
WindowName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


class ShockSpec(Request):
    """A hypothetical shock: price moves per underlying or collateral asset, vol shifts."""

    label: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = Field(
        None, description="a name for the report; absent: the moves, e.g. 'BTC -20%, USDC -8%'"
    )
    moves: dict[Symbol, Move] = Field(
        default_factory=dict,
        description="fraction per underlying or collateral asset (-0.2 = -20 %; > -1); a "
        "stablecoin's move is its depeg; an underlying's index, marks and option forwards move together",
    )
    vol_shift: dict[Symbol, VolShift] = Field(
        default_factory=dict,
        description="additive implied-vol shift of every option on an underlying (0.2 = +20 vol points)",
    )


class CascadeSpec(Request):
    """Liquidate what the shock puts under maintenance, round by round, through the insurance fund,
    ADL and bad debt (no price impact of the liquidations)."""

    policy: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        "full/queue",
        description="full|partial / queue|random_start|pro_rata|risk_aware|no-adl (docs/stress.md)",
    )
    insurance_fund_usd: float | None = Field(
        None, ge=0.0, le=1e15, allow_inf_nan=False, description="absent: the venue's own fund balance"
    )
    steps: int = Field(1, ge=1, le=MAX_CASCADE_STEPS, description="reach each shock in this many price steps")


class StressRequest(Request):
    shocks: list[ShockSpec] = Field(default_factory=list, max_length=MAX_STRESS_SCENARIOS)
    windows: list[WindowName] = Field(
        default_factory=list,
        max_length=MAX_STRESS_SCENARIOS,
        description="historical windows by name: covid-2020-03, may-2021, luna-2022-05, ftx-2022-11, "
        "usdc-2023-03; their joint close-to-close moves from the service's daily price history "
        "(409 when the service has none)",
    )
    cascade: CascadeSpec | None = Field(
        None, description="absent: the figures at the shock only, before any liquidation"
    )


class CascadeRoundModel(BaseModel):
    step: int = Field(description="price step, from 1")
    round: int = Field(description="round within the step, from 1")
    liquidated_accounts: int
    liquidated_notional_usd: float
    fees_usd: float
    deficit_usd: float
    fund_paid_usd: float
    fund_usd: float = Field(description="the insurance fund after the round")
    adl_notional_usd: float
    adl_haircut_usd: float
    bad_debt_usd: float


class CascadeOutcome(BaseModel):
    policy: str
    steps: int
    rounds: int = Field(description="rounds that liquidated, deleveraged or found a deficit")
    converged: bool = Field(description="every step reached a round that liquidated nothing")
    liquidated_notional_usd: float
    collateral_sold_usd: float
    deficit_usd: float
    fees_usd: float
    fund_used_usd: float = Field(description="paid out by the fund (it collects the fees first)")
    fund_left_usd: float
    adl_notional_usd: float
    adl_haircut_usd: float
    bad_debt_usd: float
    path: list[CascadeRoundModel]


class StressResult(BaseModel):
    label: str
    kind: Literal["hypothetical", "historical"]
    price_moves: dict[str, float] = Field(description="the move applied per risk factor (fraction)")
    under_maintenance: int = Field(description="accounts with equity < maintenance margin at the shock")
    under_zero: int = Field(description="accounts with equity < 0 at the shock")
    shortfall_usd: float = Field(description="sum of negative equity at the shock")
    loss_usd: float = Field(description="sum of the accounts' equity losses at the shock")
    insurance_fund_usd: float = Field(description="the fund the stress started with")
    insurance_fund_left_usd: float = Field(
        description="with a cascade: the fund at its end; without: max(fund - shortfall, 0)"
    )
    cascade: CascadeOutcome | None
    notes: list[str] = Field(default_factory=list)


class StressResponse(BaseModel):
    sequence: int = Field(description="the committed log sequence the stress ran on")
    model: Literal["cross"] = Field(description="the venue's margin model, with its parameters in force")
    accounts: int
    results: list[StressResult]


# -- prices ---------------------------------------------------------------------------------------


class PriceQuote(BaseModel):
    name: str = Field(description="symbol (index, collateral) or instrument (mark)")
    price_usd: float
    set_ns: int | None = Field(description="time of the record that set it; null: not known (older log)")
    age_s: float | None = Field(description="seconds since set_ns, by the service's clock")
    stale: bool = Field(description="older than max_age_s, of unknown age, or stale by the oracle's own word")
    oracle: str | None = Field(
        default=None,
        description='the oracle\'s last word on it ("ok", "held": its circuit breaker holds a move and '
        'the venue keeps this price, "stale", "no_price"); null: never said (marks, or no oracle feed)',
    )
    band_fraction: float | None = Field(
        default=None,
        description="the oracle's accepted sources' band / price (their disagreement); null: not told",
    )


class PriceBoardModel(BaseModel):
    sequence: int
    as_of_ns: int = Field(description="the service's clock when read (ages are relative to it)")
    max_age_s: float = Field(description="a price older than this is stale (oracle policy, margin rule)")
    oracle: Literal["external"] = Field(
        description="the venue runs no oracle of its own: prices arrive by POST /v1/prices from the "
        "venue's oracle, so per-source status is not known here; staleness is judged by age alone"
    )
    index: list[PriceQuote] = Field(description="index price per underlying")
    collateral: list[PriceQuote] = Field(description="price per collateral asset")
    marks: list[PriceQuote] = Field(description="delta-one marks where the venue has them")
    stale: list[str] = Field(description="names of every stale price above")


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
