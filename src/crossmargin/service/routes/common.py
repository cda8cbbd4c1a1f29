"""What the venue routes share: running a command to its acknowledgement, running a query off the
event loop, exact decimal amounts, the Idempotency-Key header, and mapping engine errors to
problems.

Commands are awaited on the venue's own future (`Venue.submit` returns a
`concurrent.futures.Future`): no thread is held while a group commit is in flight. Queries are
synchronous (they may wait for an in-flight commit), so they run in worker threads; each request
class has its own thread limiter sized to its admission limit, so an admitted request never waits
for a thread and nothing queues out of sight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, TypeVar

import anyio.to_thread
from fastapi import Header, Request

from crossmargin.engine.venue import Ack, Command
from crossmargin.engine.venue.commands import COMMAND_KINDS
from crossmargin.errors import IdempotencyConflictError, InputError, StoreError
from crossmargin.service import models
from crossmargin.service.context import context_of
from crossmargin.service.limits import RequestClass
from crossmargin.service.problems import Problem
from crossmargin.service.unique_ids import UniqueIds

T = TypeVar("T")

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=128,
        description="a retry with the same key and body has one effect; absent: a fresh key (no dedupe)",
    ),
]


# Keys for commands sent without one (service.unique_ids: never issued twice, no syscall each).
_AUTO_KEYS = UniqueIds("auto-", 16)


def key_or_new(key: str | None) -> str:
    if key is None:
        return _AUTO_KEYS.new()
    if not key:
        raise Problem(422, "invalid-request", "must not be empty", field="header.idempotency-key")
    return key


# Engine field names of account commands -> the request's fields.
ACCOUNT_FIELDS = {
    "account": "path.account",
    "from_account": "path.account",
    "amount_units": "body.amount",
    "order_id": "body.order_id",
}


def api_field(engine_field: str, fields: Mapping[str, str] | None, prefix: str) -> str:
    """The request field an engine field names. The venue qualifies a command's fields by its
    kind (`withdraw.amount_units`); `fields` maps known names (amount_units -> body.amount),
    `prefix` qualifies the rest (trades[0].price -> body.trades[0].price)."""
    head, _, tail = engine_field.partition(".")
    name = tail if tail and head in COMMAND_KINDS else engine_field
    if fields and name in fields:
        return fields[name]
    return prefix + name


def problem_of(error: Exception, *, fields: Mapping[str, str] | None = None, prefix: str = "") -> Problem:
    """The problem a venue error becomes: 404 an unknown account named by the path, 409 an
    idempotency conflict, 422 a refused field, 503 the venue stopped."""
    if isinstance(error, IdempotencyConflictError):
        return Problem(409, "idempotency-conflict", str(error), field="header.idempotency-key")
    if isinstance(error, StoreError):
        return Problem(503, "unavailable", str(error), headers={"Retry-After": "1"})
    if isinstance(error, InputError):
        field = api_field(error.field, {"account": "path.account", **(fields or {})}, prefix)
        if field == "path.account" and error.problem.startswith("unknown account"):
            return Problem(404, "unknown-account", error.problem, field=field)
        return Problem(422, "rejected", error.problem, field=field)
    raise error


async def run_command(
    request: Request, command: Command, *, fields: Mapping[str, str] | None = None
) -> models.Ack:
    """Submit, await the commit, return the ack (or raise the problem the refusal is). The
    caller's key id goes into the command's log record as its actor."""
    context = context_of(request.app)
    if context.draining:
        raise Problem(503, "draining", "the service is shutting down", headers={"Retry-After": "1"})
    actor = getattr(request.state, "key_id", None)
    try:
        ack: Ack = await asyncio.wrap_future(context.venue.submit(command, actor=actor))
    except (InputError, IdempotencyConflictError, StoreError) as error:
        raise problem_of(error, fields=fields, prefix="body.") from None
    request.state.sequence = ack.sequence
    return models.Ack(
        sequence=ack.sequence,
        idempotency_key=ack.idempotency_key,
        kind=ack.kind,
        as_of_ns=ack.as_of_ns,
        record_hash=ack.record_hash,
        duplicate=ack.duplicate,
    )


async def run_query(
    request: Request,
    request_class: RequestClass,
    call: Callable[[], T],
    *,
    fields: Mapping[str, str] | None = None,
    prefix: str = "",
) -> T:
    """`call()` in a worker thread of the request's class; venue errors as problems."""
    context = context_of(request.app)
    try:
        return await anyio.to_thread.run_sync(call, limiter=context.thread_limiter(request_class))
    except (InputError, StoreError) as error:
        raise problem_of(error, fields=fields, prefix=prefix) from None


def to_units(amount: str, *, asset: str, decimals: Mapping[str, int], field: str) -> int:
    """A decimal string in asset units -> integer minor units, exactly; more decimals than the
    asset's minor unit is refused (never rounded)."""
    places = decimals.get(asset)
    if places is None:
        raise Problem(
            422,
            "unknown-asset",
            f"no asset {asset!r}; the venue has {', '.join(sorted(decimals))}",
            field="body.asset",
        )
    try:
        value = Decimal(amount)
    except InvalidOperation:
        raise Problem(422, "invalid-request", f"not a decimal amount: {amount!r}", field=field) from None
    units = value.scaleb(places)
    if units != units.to_integral_value():
        raise Problem(
            422, "invalid-request", f"{asset} has {places} decimals; {amount} has more", field=field
        )
    if units <= 0:
        raise Problem(422, "invalid-request", "must be > 0", field=field)
    return int(units)


def amount_of(asset: str, units: int, decimals: Mapping[str, int]) -> models.Amount:
    places = decimals.get(asset, 0)
    text = format(Decimal(units).scaleb(-places).normalize(), "f")  # exact, no trailing zeros
    return models.Amount(asset=asset, units=int(units), amount=text)


def amounts(units_by_asset: Mapping[str, int], decimals: Mapping[str, int]) -> list[models.Amount]:
    return [amount_of(a, int(u), decimals) for a, u in sorted(units_by_asset.items())]


def finite_or_none(value: Any) -> float | None:
    number = float(value)
    return number if number == number and abs(number) != float("inf") else None
