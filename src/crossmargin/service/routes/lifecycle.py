"""The contract lifecycle: funding, borrow interest, expiry settlement (risk and admin keys: the
venue's schedulers, as fills and prices come from its matcher and oracle).

POST /v1/funding    settle one funding period of a perpetual at `funding_rate` (a fraction of
                    notional per period; > 0 longs pay shorts): zero-sum between the holders,
                    the rounding residue (payers round up, receivers down) to @fees
POST /v1/interest   charge interest on every borrowed (negative) balance for `elapsed_ns` at
                    each asset's APR (ACT/365), to @fees; send one per accrual period with an
                    Idempotency-Key naming the period, so a retry accrues once
POST /v1/expiries   settle a dated future or option at `settlement_price` (USD per underlying
                    unit), at or after its expiry: every position closed at that price, its
                    open orders cancelled; later fills, orders and marks on it are refused

Each is decided by the ledger core's own event (`core.ledger.apply`: FundingPayment,
BorrowInterest, Expiry), logged with its postings, and followed by the liquidations it causes
before the ack.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from crossmargin.engine.venue import AccrueInterest, SettleExpiry, SettleFunding
from crossmargin.service import access, models
from crossmargin.service.routes.common import IdempotencyKey, key_or_new, run_command
from crossmargin.service.security import Caller

router = APIRouter(prefix="/v1", tags=["lifecycle"])


@router.post(
    "/funding",
    response_model=models.Ack,
    status_code=201,
    summary="Settle a perpetual's funding period (longs pay shorts when the rate is > 0)",
)
async def funding(
    request: Request, body: models.FundingRequest, caller: Caller, idempotency_key: IdempotencyKey = None
) -> models.Ack:
    access.feed_venue(caller)
    command = SettleFunding(
        idempotency_key=key_or_new(idempotency_key),
        instrument=body.instrument,
        funding_rate=body.funding_rate,
    )
    return await run_command(request, command)


@router.post(
    "/interest",
    response_model=models.Ack,
    status_code=201,
    summary="Accrue borrow interest on every negative balance",
)
async def interest(
    request: Request, body: models.InterestRequest, caller: Caller, idempotency_key: IdempotencyKey = None
) -> models.Ack:
    access.feed_venue(caller)
    command = AccrueInterest(idempotency_key=key_or_new(idempotency_key), elapsed_ns=body.elapsed_ns)
    return await run_command(request, command)


@router.post(
    "/expiries",
    response_model=models.Ack,
    status_code=201,
    summary="Settle an expired future or option at its settlement price",
)
async def expiry(
    request: Request, body: models.ExpiryRequest, caller: Caller, idempotency_key: IdempotencyKey = None
) -> models.Ack:
    access.feed_venue(caller)
    command = SettleExpiry(
        idempotency_key=key_or_new(idempotency_key),
        instrument=body.instrument,
        settlement_price=body.settlement_price,
    )
    return await run_command(request, command)
