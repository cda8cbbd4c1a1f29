"""Ledger events: the only inputs that change a LedgerState. Frozen, validated by `apply`, and
serialisable to plain dicts (`event_to_dict` / `event_from_dict`) for the event log.

Times are integer nanoseconds since the Unix epoch, UTC, carried by each event (no clock).
Quantities are integer contracts; prices are risk inputs (float64); money amounts are integer
minor units of the named asset.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from crossmargin.errors import InputError


@dataclass(frozen=True, slots=True, kw_only=True)
class Deposit:
    account: str
    asset: str
    amount_units: int
    as_of_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Withdrawal:
    """Refused unless the account stays at or above IM, is not under a margin call, and the venue
    has no unresolved bad debt."""

    account: str
    asset: str
    amount_units: int
    as_of_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeFill:
    """`taker` trades `quantity` contracts (signed: > 0 buys) with `maker` at `price` (settlement
    units: USD for linear, USD for inverse delta-one, coin premium for inverse options)."""

    taker: str
    maker: str
    instrument: str
    quantity: int
    price: float
    as_of_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionTransfer:
    """An existing position brought onto the ledger at its entry price (a book import): opened
    against the liquidator account, no cash moves, no fee, no margin check."""

    account: str
    instrument: str
    quantity: int
    entry_price: float
    as_of_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FundingPayment:
    """Perpetual funding over one period at `rate` (per period): longs pay shorts when > 0."""

    instrument: str
    rate: float
    as_of_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BorrowInterest:
    """Interest on every negative (borrowed) balance for `elapsed_ns`, at the asset's APR."""

    elapsed_ns: int
    as_of_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceUpdate:
    """New index prices (underlyings and collateral assets) and delta-one marks."""

    index_prices: Mapping[str, float]
    as_of_ns: int
    mark_prices: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Expiry:
    """Option expiry or dated-future settlement at `settlement_price` (USD per underlying unit)."""

    instrument: str
    settlement_price: float
    as_of_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Liquidate:
    """Run the liquidation engine on one account (partial close, collateral sale, waterfall
    with ADL when it is bankrupt). Refused for an account that is not in liquidation."""

    account: str
    as_of_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MarginCheck:
    """Re-evaluate every account's margin-call status at `as_of_ns` (deadlines expire here)."""

    as_of_ns: int


Event = (
    Deposit
    | Withdrawal
    | TradeFill
    | PositionTransfer
    | FundingPayment
    | BorrowInterest
    | PriceUpdate
    | Expiry
    | Liquidate
    | MarginCheck
)
EVENT_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        Deposit,
        Withdrawal,
        TradeFill,
        PositionTransfer,
        FundingPayment,
        BorrowInterest,
        PriceUpdate,
        Expiry,
        Liquidate,
        MarginCheck,
    )
}


def event_to_dict(event: Event) -> dict[str, Any]:
    """{"type": class name, ...fields}; mappings become plain dicts. Floats stay floats (JSON
    round-trips float64 exactly via repr)."""
    out: dict[str, Any] = {"type": type(event).__name__}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        out[f.name] = dict(value) if isinstance(value, Mapping) else value
    return out


def event_from_dict(data: Mapping[str, Any]) -> Event:
    """Inverse of `event_to_dict`; an unknown type or field is an InputError naming it."""
    kind = data.get("type")
    cls = EVENT_TYPES.get(str(kind))
    if cls is None:
        raise InputError("event.type", f"unknown event type {kind!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    extra = sorted(set(data) - names - {"type"})
    if extra:
        raise InputError(f"event.{extra[0]}", f"not a field of {cls.__name__}")
    try:
        event: Event = cls(**{k: v for k, v in data.items() if k != "type"})
    except TypeError as error:
        raise InputError(f"event[{cls.__name__}]", str(error)) from None
    return event
