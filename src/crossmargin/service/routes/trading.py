"""Orders, fills and prices.

POST   /v1/accounts/{account}/orders              place a resting order: it reserves the IM it
                                                  would need if filled (its holder, admin)
DELETE /v1/accounts/{account}/orders/{order_id}   cancel it, freeing the reservation
POST   /v1/fills                                  a trade between two accounts (risk, admin: the
                                                  venue's matching engine)
POST   /v1/prices                                 index prices and marks (risk, admin: the
                                                  oracle); re-margins the holders of what moved,
                                                  runs calls and liquidations before the ack
GET    /v1/prices                                 the prices in force, each with the time it was
                                                  set, its age and whether it is stale (any key)

Staleness: the venue runs no oracle itself (its prices arrive by POST /v1/prices), so what it can
say of a price is its age. A price older than the venue's `max_price_age_s` (by default the oracle
policy's margin rule, core.oracle.policy: 120 s, the loosest rule; opening trades wants 5 s) is
reported stale, and so is one of unknown age. The dashboard's warnings use the same limit.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from crossmargin.engine.venue import CancelOrder, Fill, PlaceOrder, PriceBoard, PriceState, UpdatePrices
from crossmargin.service import access, models
from crossmargin.service.context import context_of
from crossmargin.service.limits import RequestClass
from crossmargin.service.problems import Problem
from crossmargin.service.routes.accounts import AccountPath
from crossmargin.service.routes.common import (
    ACCOUNT_FIELDS,
    IdempotencyKey,
    key_or_new,
    run_command,
    run_query,
)
from crossmargin.service.security import Caller

router = APIRouter(prefix="/v1", tags=["trading"])

OrderIdPath = Annotated[str, Path(min_length=1, max_length=128)]


def _nonzero(quantity: int) -> None:
    if quantity == 0:
        raise Problem(422, "invalid-request", "must not be 0", field="body.quantity")


@router.post(
    "/accounts/{account}/orders",
    response_model=models.Ack,
    status_code=201,
    summary="Place a resting order (reserves initial margin)",
)
async def place_order(
    request: Request,
    account: AccountPath,
    body: models.OrderRequest,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> models.Ack:
    access.act_on_account(caller, account)
    _nonzero(body.quantity)
    command = PlaceOrder(
        idempotency_key=key_or_new(idempotency_key),
        account=account,
        order_id=body.order_id,
        instrument=body.instrument,
        quantity=body.quantity,
        price=body.price,
    )
    return await run_command(request, command, fields=ACCOUNT_FIELDS)


@router.delete(
    "/accounts/{account}/orders/{order_id}",
    response_model=models.Ack,
    summary="Cancel an order (frees its reservation)",
)
async def cancel_order(
    request: Request,
    account: AccountPath,
    order_id: OrderIdPath,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> models.Ack:
    access.act_on_account(caller, account)
    command = CancelOrder(idempotency_key=key_or_new(idempotency_key), account=account, order_id=order_id)
    return await run_command(request, command, fields={**ACCOUNT_FIELDS, "order_id": "path.order_id"})


@router.post(
    "/fills",
    response_model=models.Ack,
    status_code=201,
    summary="A trade between two accounts",
)
async def fill(
    request: Request, body: models.FillRequest, caller: Caller, idempotency_key: IdempotencyKey = None
) -> models.Ack:
    access.feed_venue(caller)
    _nonzero(body.quantity)
    if body.taker == body.maker:
        raise Problem(422, "invalid-request", "a fill is between two different accounts", field="body.maker")
    command = Fill(
        idempotency_key=key_or_new(idempotency_key),
        taker=body.taker,
        maker=body.maker,
        instrument=body.instrument,
        quantity=body.quantity,
        price=body.price,
        order_id=body.order_id,
    )
    return await run_command(request, command)


@router.post(
    "/prices",
    response_model=models.Ack,
    status_code=201,
    summary="New index prices and marks (re-margins the holders of what moved)",
)
async def prices(
    request: Request, body: models.PricesRequest, caller: Caller, idempotency_key: IdempotencyKey = None
) -> models.Ack:
    access.feed_venue(caller)
    if not body.index_prices and not body.mark_prices and not body.oracle_status:
        raise Problem(
            422, "invalid-request", "name at least one price or oracle status", field="body.index_prices"
        )
    command = UpdatePrices(
        idempotency_key=key_or_new(idempotency_key),
        index_prices=dict(body.index_prices),
        mark_prices=dict(body.mark_prices),
        oracle_status=dict(body.oracle_status),
        oracle_band_fraction=dict(body.oracle_band_fraction),
    )
    return await run_command(request, command)


# A price older than the margin rule's max age is stale (module docstring).


@router.get("/prices", response_model=models.PriceBoardModel, summary="The prices in force, with their age")
async def price_board(request: Request, caller: Caller) -> models.PriceBoardModel:
    context = context_of(request.app)
    venue = context.venue
    board = await run_query(request, RequestClass.READ, venue.price_board)
    now_ns = context.clock_ns()
    max_age_ns = round(venue.settings.max_price_age_s * 1e9)
    config = venue.config
    index = [
        _quote(s, board.prices[s], board, now_ns, max_age_ns)
        for s in config.instruments.underlyings
        if s in board.prices
    ]
    collateral = [
        _quote(s, board.prices[s], board, now_ns, max_age_ns)
        for s in config.assets.symbols
        if s in board.prices
    ]
    marks = [_quote(i, price, board, now_ns, max_age_ns) for i, price in sorted(board.marks.items())]
    stale = sorted({q.name for q in (*index, *collateral, *marks) if q.stale})
    return models.PriceBoardModel(
        sequence=board.sequence,
        as_of_ns=now_ns,
        max_age_s=max_age_ns / 1e9,
        oracle="external",
        index=index,
        collateral=collateral,
        marks=marks,
        stale=stale,
    )


def _quote(name: str, price: float, board: PriceBoard, now_ns: int, max_age_ns: int) -> models.PriceQuote:
    """One price with its age: now − the time of the record that set it (None: not known)."""
    set_ns = board.set_ns.get(name)
    oracle = board.oracle_status.get(name)
    # The venue's one rule (PriceState.at): age past the limit, or stale by the oracle's word.
    state = PriceState.at(
        name,
        price,
        quoted_ns=now_ns if set_ns is None else set_ns,
        exact=set_ns is not None,
        now_ns=now_ns,
        max_age_s=max_age_ns / 1e9,
        oracle=oracle or "",
    )
    return models.PriceQuote(
        name=name,
        price_usd=float(price),
        set_ns=set_ns,
        age_s=state.age_s if set_ns is not None else None,
        stale=set_ns is None or state.status == "stale",  # of unknown age: stale
        oracle=oracle,
        band_fraction=board.oracle_band_fraction.get(name),
    )
