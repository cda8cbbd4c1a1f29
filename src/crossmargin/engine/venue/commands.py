"""What a client asks the venue to do: commands, each with an idempotency key.

A command is a frozen value validated by the venue (`engine.venue.Venue.submit`), never by its
constructor alone, so a bad field comes back as `InputError(field, problem)` naming it. Money
amounts are integer minor units of the named asset (the ledger's, `core.ledger.money`);
quantities integer contracts; prices float64 risk inputs (settlement units, as `TradeFill`).
The venue stamps each accepted command with its own clock (`as_of_ns`), so a retry of the same
command carries the same body.

Idempotency: `body(command)` is the command without its key; `body_sha256` its canonical hash.
The same key with the same body returns the original acknowledgement; the same key with another
body is refused (`IdempotencyConflictError`). Keys are any non-empty string up to 128 characters
(a client UUID, say); the venue keeps them forever in the log.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from crossmargin.engine.journal import canonical_json
from crossmargin.errors import InputError

MAX_KEY_LENGTH = 128


@dataclass(frozen=True, slots=True, kw_only=True)
class Deposit:
    """`amount_units` (> 0) of `asset` enter `account` from outside the venue."""

    idempotency_key: str
    account: str
    asset: str
    amount_units: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Withdraw:
    """`amount_units` (> 0) of `asset` leave `account`: refused unless the account stays at or
    above IM (open-order reservations included), is HEALTHY or WARNING, holds that much, and the
    venue has no unresolved bad debt."""

    idempotency_key: str
    account: str
    asset: str
    amount_units: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Transfer:
    """`amount_units` of `asset` from `from_account` to `to_account` (both traders), under the
    withdrawal rules for the sender."""

    idempotency_key: str
    from_account: str
    to_account: str
    asset: str
    amount_units: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Fill:
    """A trade between two traders (`core.ledger.events.TradeFill`): `taker` buys `quantity`
    (signed, > 0 buys) from `maker` at `price`. `order_id` (optional) names the maker's resting
    order it fills: its quantity is reduced (and its reservation released) by the fill."""

    idempotency_key: str
    taker: str
    maker: str
    instrument: str
    quantity: int
    price: float
    order_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaceOrder:
    """A resting limit order of `account`: `quantity` contracts (signed) at `price`. One that would
    increase risk reserves the IM it would need if filled; refused when available margin cannot
    cover it. `order_id` is the client's, unique per venue."""

    idempotency_key: str
    account: str
    order_id: str
    instrument: str
    quantity: int
    price: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelOrder:
    """Cancel `order_id` of `account`: its reservation is freed."""

    idempotency_key: str
    account: str
    order_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdatePrices:
    """New index prices (underlyings and collateral assets, USD) and delta-one marks: the oracle's
    output. Re-margins only the accounts holding what moved, then runs the margin-call state
    machine and liquidations on them.

    `oracle_status` / `oracle_band_fraction`: what the oracle says of a symbol's price (its word,
    "ok", "held", "stale" or "no_price", and the band of its accepted sources relative to the price),
    with or without a new price: a held or doubted price keeps the venue's last one, and the venue
    still says why (engine.oracle_replay.price_message's "status" and band)."""

    idempotency_key: str
    index_prices: Mapping[str, float]
    mark_prices: Mapping[str, float] = field(default_factory=dict)
    oracle_status: Mapping[str, str] = field(default_factory=dict)
    oracle_band_fraction: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskParameters:
    """The risk parameters a venue may change at run time, versioned in the log. `margin`:
    `core.margin.CrossParams` fields as a mapping (today: option_margin rates); `margin_call`,
    `liquidation`: fields of `core.liquidation.params.MarginCallParams` / `LiquidationParams`.
    Fields not named keep their current value."""

    margin: Mapping[str, Any] = field(default_factory=dict)
    margin_call: Mapping[str, Any] = field(default_factory=dict)
    liquidation: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class SetRiskParameters:
    """Change risk parameters. First a what-if over the whole book (`Venue.preview_parameters`):
    refused when total IM would rise by more than the venue's `max_margin_jump_fraction`, or any
    account would be pushed under maintenance, unless `override`."""

    idempotency_key: str
    parameters: RiskParameters
    override: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenAccount:
    """Open a trader account (empty)."""

    idempotency_key: str
    account: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SettleFunding:
    """Settle one funding period of the perpetual `instrument` at `funding_rate` (a fraction of
    notional per period, e.g. 0.0001 = 1 bp per 8 h as Binance publishes it): each position pays
    quantity × contract size × mark × rate (inverse: × 1/mark, in coin); > 0 longs pay shorts.
    The ledger's `FundingPayment` (`core.ledger.apply`): payers round up, receivers down, the
    residue goes to @fees, so longs + shorts + residue = 0 exactly.
    https://www.binance.com/en/support/faq/360033525031"""

    idempotency_key: str
    instrument: str
    funding_rate: float


@dataclass(frozen=True, slots=True, kw_only=True)
class AccrueInterest:
    """Charge interest on every negative (borrowed) balance for `elapsed_ns` nanoseconds at each
    asset's APR (`units × APR × elapsed / year`, rounded up), paid to @fees: the ledger's
    `BorrowInterest`. A scheduler sends one per accrual period, keyed by the period (a retry of
    the same key accrues once)."""

    idempotency_key: str
    elapsed_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SettleExpiry:
    """Settle the dated future or option `instrument` at `settlement_price` (USD per underlying
    unit, the exchange's delivery price), at or after its expiry time: every position is closed
    at it (future: quantity × size × (settle − entry), inverse in coin; option: intrinsic value),
    and the instrument takes no further fills, orders or marks. The ledger's `Expiry`."""

    idempotency_key: str
    instrument: str
    settlement_price: float


Command = (
    Deposit
    | Withdraw
    | Transfer
    | Fill
    | PlaceOrder
    | CancelOrder
    | UpdatePrices
    | SetRiskParameters
    | OpenAccount
    | SettleFunding
    | AccrueInterest
    | SettleExpiry
)

COMMAND_KINDS: dict[str, type[Any]] = {
    "deposit": Deposit,
    "withdraw": Withdraw,
    "transfer": Transfer,
    "fill": Fill,
    "place_order": PlaceOrder,
    "cancel_order": CancelOrder,
    "update_prices": UpdatePrices,
    "set_risk_parameters": SetRiskParameters,
    "open_account": OpenAccount,
    "settle_funding": SettleFunding,
    "accrue_interest": AccrueInterest,
    "settle_expiry": SettleExpiry,
}
KIND_OF: dict[type[Any], str] = {cls: kind for kind, cls in COMMAND_KINDS.items()}
_FIELDS: dict[type[Any], tuple[str, ...]] = {
    cls: tuple(f.name for f in dataclasses.fields(cls) if f.name != "idempotency_key")
    for cls in COMMAND_KINDS.values()
}


def kind_of(command: Command) -> str:
    return KIND_OF[type(command)]


def body(command: Command) -> dict[str, Any]:
    """The command as a plain JSON-ready dict without its idempotency key (what a retry repeats)."""
    out: dict[str, Any] = {}
    for name in _FIELDS[type(command)]:
        value = getattr(command, name)
        # Scalars as they are (the hot path: deposits); containers and nested values made plain.
        out[name] = value if value is None or type(value) in (int, float, str, bool) else _plain(value)
    return out


def body_sha256(command: Command) -> str:
    """SHA-256 of the kind and canonical body: equal hashes = the same request."""
    return body_digest(kind_of(command), canonical_json(body(command)))


def body_digest(kind: str, body_json: bytes) -> str:
    """SHA-256 of `kind` ‖ newline ‖ canonical body bytes (`body_sha256` from the parts); one
    buffer, one call (a body is ~0.1 KB: the copy costs less than two more update() calls)."""
    return hashlib.sha256(b"%s\n%s" % (kind.encode(), body_json)).hexdigest()


def command_from_body(kind: str, data: Mapping[str, Any], *, idempotency_key: str) -> Command:
    """Inverse of `body` (the log's replay, a runner's input); unknown kind or field: InputError."""
    cls = COMMAND_KINDS.get(kind)
    if cls is None:
        raise InputError("kind", f"unknown command kind {kind!r}")
    names = {f.name for f in dataclasses.fields(cls)} - {"idempotency_key"}
    extra = sorted(set(data) - names)
    if extra:
        raise InputError(f"{kind}.{extra[0]}", f"not a field of {kind}")
    values = dict(data)
    if cls is SetRiskParameters and isinstance(values.get("parameters"), Mapping):
        values["parameters"] = RiskParameters(**values["parameters"])
    try:
        command: Command = cls(idempotency_key=idempotency_key, **values)
    except TypeError as error:
        raise InputError(kind, str(error)) from None
    return command


def non_finite_field(command: Command) -> InputError | None:
    """The error naming the first non-finite number of the command's body (NaN and ±inf have no
    JSON form, so no log record could hold them), or None."""
    kind = kind_of(command)

    def walk(value: Any, path: str) -> InputError | None:
        if isinstance(value, float) and not math.isfinite(value):
            return InputError(path, f"must be a finite number, got {value!r}")
        if isinstance(value, Mapping):
            for k, v in value.items():
                found = walk(v, f"{path}[{k}]")
                if found is not None:
                    return found
        return None

    for name, value in body(command).items():
        found = walk(value, f"{kind}.{name}")
        if found is not None:
            return found
    return None


def check_key(key: Any) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise InputError("idempotency_key", f"must be a non-empty string of at most {MAX_KEY_LENGTH} chars")
    return key


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
