"""Batch ingestion: many ledger events in one request, one group commit.

POST /v1/events/batch   {"events": [{"kind": "deposit", "idempotency_key": ..., ...}, ...]}
                        (at most `models.BATCH_MAX_EVENTS`)

For the venue's own systems (risk and admin keys: a custody gateway, the matcher); a holder key is
refused as a whole (403). Each event is what its single-event route takes (deposit, withdrawal,
transfer: as POST /v1/accounts/{account}/...; fill: as POST /v1/fills), with its own
`idempotency_key`. Each is validated, authorised (the same rule as its route: money moves need an
admin key, fills a risk or admin key) and decided by the venue on its own, in request
order, on the state the events before it left; a refused one is reported with its problem (the
status and field its route would give, the field under `body.events[i]`) and changes nothing.
The accepted events are written in one transaction (`Venue.submit_batch`: one commit, one fsync, one future)
and every ack is returned only after that commit. The response is 200 with every event's outcome
in request order (`models.BatchResult`); the request as a whole is refused only when its shape is
(not a list, empty, too long) or the service is draining.

Why: over HTTP the per-request cost (parsing, routing, authentication, middleware, the response)
is ~1-2 ms of server CPU on this machine, far above the venue's own per-event cost; one request
per event caps ingestion at a few hundred events/s (docs/service.md, bench/bench_service_http.py).

The rate limit counts requests (one token per batch, as per request elsewhere); the batch size
bounds what one request may carry.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import TypeAdapter, ValidationError

from crossmargin.engine.venue import Ack, Command, Deposit, Fill, Transfer, Withdraw
from crossmargin.errors import IdempotencyConflictError, InputError, StoreError
from crossmargin.service import access, models
from crossmargin.service.context import context_of
from crossmargin.service.logs import service_logger
from crossmargin.service.problems import PROBLEM_BASE, Problem, field_path
from crossmargin.service.routes.common import problem_of, to_units
from crossmargin.service.security import Caller

router = APIRouter(prefix="/v1", tags=["events"])

_EVENT = TypeAdapter[models.BatchMoneyMove | models.BatchTransfer | models.BatchFill](models.BatchEvent)
_TITLES = {
    403: "forbidden",
    404: "not found",
    409: "conflict",
    422: "invalid request",
    500: "internal error",
    503: "overloaded",
}


@router.post(
    "/events/batch",
    response_model=models.BatchResult,
    summary="Many deposits, withdrawals, transfers and fills in one request and one commit",
)
async def batch(request: Request, body: models.BatchRequest, caller: Caller) -> Response:
    access.feed_venue(caller)  # the venue's own systems (gateways, the matcher), not a holder
    context = context_of(request.app)
    if context.draining:
        raise Problem(503, "draining", "the service is shutting down", headers={"Retry-After": "1"})
    decimals = context.decimals()
    outcomes: list[dict[str, Any]] = []
    commands: list[Command] = []
    submitted: list[int] = []  # index into outcomes of each command
    for index, raw in enumerate(body.events):
        prefix = f"body.events[{index}]."
        try:
            command = _command(_EVENT.validate_python(raw), caller, decimals, prefix)
        except ValidationError as error:
            outcomes.append(_problem(index, _invalid(error, prefix)))
            continue
        except Problem as problem:
            outcomes.append(_problem(index, problem))
            continue
        outcomes.append({"index": index})
        commands.append(command)
        submitted.append(index)
    actor = getattr(request.state, "key_id", None)
    # One future for the list (no future per event: ~3 us each), awaited without a thread.
    answers = await asyncio.wrap_future(context.venue.submit_batch(commands, actor=actor)) if commands else []
    for index, refusal in zip(submitted, answers, strict=True):
        if isinstance(refusal, Ack):
            outcomes[index] = {"index": index, "status": 201, "ack": _ack(refusal)}
            continue
        if not isinstance(refusal, InputError | IdempotencyConflictError | StoreError):
            # A bug in a decision: this event's 500, logged; the others' acks still stand.
            service_logger().error("batch event failed", exc_info=refusal, extra={"index": index})
            outcomes[index] = _problem(
                index, Problem(500, "internal-error", "internal error; the request id is in the logs")
            )
            continue
        prefix = f"body.events[{index}]."
        fields = {name: prefix + name for name in ("account", "to_account", "taker", "maker")}
        fields.update(from_account=prefix + "account", amount_units=prefix + "amount")
        outcomes[index] = _problem(index, problem_of(refusal, fields=fields, prefix=prefix))
    accepted = sum(1 for o in outcomes if o["status"] == 201)
    result = {"accepted": accepted, "rejected": len(outcomes) - accepted, "results": outcomes}
    if commands:
        request.state.sequence = max((a.sequence for a in answers if isinstance(a, Ack)), default=None)
    return Response(orjson.dumps(result), media_type="application/json")


def _command(
    event: models.BatchMoneyMove | models.BatchTransfer | models.BatchFill,
    caller: access.Principal,
    decimals: dict[str, int],
    prefix: str,
) -> Command:
    """The venue command of one event, after its route's access rule (Problem 403 otherwise)."""
    if isinstance(event, models.BatchFill):
        access.feed_venue(caller)
        if event.quantity == 0:
            raise Problem(422, "invalid-request", "must not be 0", field=prefix + "quantity")
        if event.taker == event.maker:
            raise Problem(
                422, "invalid-request", "a fill is between two different accounts", field=prefix + "maker"
            )
        return Fill(
            idempotency_key=event.idempotency_key,
            taker=event.taker,
            maker=event.maker,
            instrument=event.instrument,
            quantity=event.quantity,
            price=event.price,
            order_id=event.order_id,
        )
    access.act_on_account(caller, event.account, field=prefix + "account")
    units = _units(event.amount, event.asset, decimals, prefix)
    if isinstance(event, models.BatchTransfer):
        return Transfer(
            idempotency_key=event.idempotency_key,
            from_account=event.account,
            to_account=event.to_account,
            asset=event.asset,
            amount_units=units,
        )
    move = Deposit if event.kind == "deposit" else Withdraw
    return move(
        idempotency_key=event.idempotency_key, account=event.account, asset=event.asset, amount_units=units
    )


def _invalid(error: ValidationError, prefix: str) -> Problem:
    """The first validation error of one event as its problem, the field under `prefix`."""
    first = error.errors()[0]
    path = field_path(first.get("loc", ()))
    if first.get("type", "").startswith("union_tag"):  # no or unknown `kind`
        path = "kind"
    field = prefix + path if path else prefix.rstrip(".")
    return Problem(422, "invalid-request", str(first.get("msg")), field=field)


def _units(amount: str, asset: str, decimals: dict[str, int], prefix: str) -> int:
    try:
        return to_units(amount, asset=asset, decimals=decimals, field=prefix + "amount")
    except Problem as problem:
        if problem.field == "body.asset":
            problem.field = prefix + "asset"
        raise


def _ack(ack: Ack) -> dict[str, Any]:
    return {
        "sequence": ack.sequence,
        "idempotency_key": ack.idempotency_key,
        "kind": ack.kind,
        "as_of_ns": ack.as_of_ns,
        "record_hash": ack.record_hash,
        "duplicate": ack.duplicate,
    }


def _problem(index: int, problem: Problem) -> dict[str, Any]:
    return {
        "index": index,
        "status": problem.status,
        "problem": {
            "type": PROBLEM_BASE + problem.slug,
            "title": _TITLES.get(problem.status, "error"),
            "status": problem.status,
            "detail": problem.detail,
            "field": problem.field,
        },
    }
