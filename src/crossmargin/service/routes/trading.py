"""Orders, fills and prices.

POST   /v1/accounts/{account}/orders              place a resting order: it reserves the IM it
                                                  would need if filled (its holder, admin)
DELETE /v1/accounts/{account}/orders/{order_id}   cancel it, freeing the reservation
POST   /v1/fills                                  a trade between two accounts (risk, admin: the
                                                  venue's matching engine)
POST   /v1/prices                                 index prices and marks (risk, admin: the
                                                  oracle); re-margins the holders of what moved,
                                                  runs calls and liquidations before the ack
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from crossmargin.engine.venue import CancelOrder, Fill, PlaceOrder, UpdatePrices
from crossmargin.service import access, models
from crossmargin.service.problems import Problem
from crossmargin.service.routes.accounts import AccountPath
from crossmargin.service.routes.common import ACCOUNT_FIELDS, IdempotencyKey, key_or_new, run_command
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
    if not body.index_prices and not body.mark_prices:
        raise Problem(422, "invalid-request", "name at least one price", field="body.index_prices")
    command = UpdatePrices(
        idempotency_key=key_or_new(idempotency_key),
        index_prices=dict(body.index_prices),
        mark_prices=dict(body.mark_prices),
    )
    return await run_command(request, command)
