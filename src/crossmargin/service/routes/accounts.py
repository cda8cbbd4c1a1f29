"""Accounts and their money.

    GET  /v1/accounts                          every account's summary (risk, admin), paged by id
    POST /v1/accounts                          open an empty account (admin)
    GET  /v1/accounts/{account}                one account: balances, positions, orders, margin,
                                               withdrawable per asset (its holder, risk, admin)
    POST /v1/accounts/{account}/deposits       money in (its holder, admin)
    POST /v1/accounts/{account}/withdrawals    money out, refused below IM or under a call
    POST /v1/accounts/{account}/transfers      to another account, under the withdrawal rules

Amounts are decimal strings in asset units, converted exactly to minor units (`common.to_units`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from crossmargin.engine.venue import AccountView, Deposit, OpenAccount, Transfer, Withdraw
from crossmargin.service import access, models
from crossmargin.service.context import context_of
from crossmargin.service.limits import RequestClass
from crossmargin.service.routes.common import (
    ACCOUNT_FIELDS,
    IdempotencyKey,
    amounts,
    key_or_new,
    run_command,
    run_query,
    to_units,
)
from crossmargin.service.security import Caller

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])

AccountPath = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@-]+$")]
PAGE_MAX = 500


def summary(view: AccountView, decimals: dict[str, int]) -> models.AccountSummary:
    return models.AccountSummary(
        account=view.account,
        sequence=view.sequence,
        status=view.status,
        equity_usd=view.equity_usd,
        initial_margin_usd=view.initial_margin_usd,
        maintenance_margin_usd=view.maintenance_margin_usd,
        reserved_usd=view.reserved_usd,
        available_usd=view.available_usd,
        withdrawable=amounts(view.withdrawable_units, decimals),
        margin_call_deadline_ns=view.margin_call_deadline_ns,
    )


def detail(view: AccountView, decimals: dict[str, int]) -> models.AccountDetail:
    return models.AccountDetail(
        **summary(view, decimals).model_dump(),
        balances=amounts(view.balances_units, decimals),
        positions=[
            models.PositionView(instrument=i, quantity=int(q), entry_price=float(e))
            for i, (q, e) in sorted(view.positions.items())
        ],
        open_orders=[dict(o) for o in view.open_orders],
    )


class OpenAccountRequest(models.Request):
    account: models.AccountId


@router.get("", response_model=models.AccountList, summary="Every account's margin summary")
async def list_accounts(
    request: Request,
    caller: Caller,
    after: Annotated[
        str | None, Query(max_length=200, description="the last account id of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 100,
) -> models.AccountList:
    access.see_venue(caller)
    context = context_of(request.app)
    venue = context.venue

    def page() -> list[AccountView]:
        ids = sorted(venue.accounts())
        chosen = [a for a in ids if after is None or a > after][:limit]
        return [context.account_view(a) for a in chosen]

    views = await run_query(request, RequestClass.READ, page)
    decimals = context.decimals()
    return models.AccountList(accounts=[summary(v, decimals) for v in views])


@router.post("", response_model=models.Ack, status_code=201, summary="Open an empty account")
async def open_account(
    request: Request, body: OpenAccountRequest, caller: Caller, idempotency_key: IdempotencyKey = None
) -> models.Ack:
    access.administer(caller)
    request.state.account = body.account
    command = OpenAccount(idempotency_key=key_or_new(idempotency_key), account=body.account)
    return await run_command(request, command)


@router.get("/{account}", response_model=models.AccountDetail, summary="One account")
async def get_account(request: Request, account: AccountPath, caller: Caller) -> models.AccountDetail:
    access.see_account(caller, account)
    context = context_of(request.app)
    view = await run_query(request, RequestClass.READ, lambda: context.account_view(account))
    return detail(view, context.decimals())


@router.post(
    "/{account}/deposits",
    response_model=models.Ack,
    status_code=201,
    summary="Deposit",
)
async def deposit(
    request: Request,
    account: AccountPath,
    body: models.MoneyMove,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> models.Ack:
    return await _move_money(request, account, body, caller, Deposit, idempotency_key)


@router.post(
    "/{account}/withdrawals",
    response_model=models.Ack,
    status_code=201,
    summary="Withdraw (refused below initial margin or under a margin call)",
)
async def withdraw(
    request: Request,
    account: AccountPath,
    body: models.MoneyMove,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> models.Ack:
    return await _move_money(request, account, body, caller, Withdraw, idempotency_key)


@router.post(
    "/{account}/transfers",
    response_model=models.Ack,
    status_code=201,
    summary="Transfer to another account (withdrawal rules for the sender)",
)
async def transfer(
    request: Request,
    account: AccountPath,
    body: models.TransferRequest,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> models.Ack:
    access.act_on_account(caller, account)
    units = _amount_units(request, body)
    command = Transfer(
        idempotency_key=key_or_new(idempotency_key),
        from_account=account,
        to_account=body.to_account,
        asset=body.asset,
        amount_units=units,
    )
    return await run_command(request, command, fields=ACCOUNT_FIELDS)


def _amount_units(request: Request, body: models.MoneyMove | models.TransferRequest) -> int:
    """`body.amount` (a decimal string) in the asset's exact minor units."""
    decimals = context_of(request.app).decimals()
    return to_units(body.amount, asset=body.asset, decimals=decimals, field="body.amount")


async def _move_money(
    request: Request,
    account: str,
    body: models.MoneyMove,
    caller: access.Principal,
    command: type[Deposit] | type[Withdraw],
    idempotency_key: str | None,
) -> models.Ack:
    """A deposit or a withdrawal: the caller may act on `account`, the amount in exact units."""
    access.act_on_account(caller, account)
    move = command(
        idempotency_key=key_or_new(idempotency_key),
        account=account,
        asset=body.asset,
        amount_units=_amount_units(request, body),
    )
    return await run_command(request, move, fields=ACCOUNT_FIELDS)
