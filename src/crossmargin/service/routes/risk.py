"""Risk views: margin under any model, what-if, explain, past margin, stress, the insurance fund,
and risk parameters.

    GET  /v1/accounts/{account}/margin?model=&preset=   margin under any model (holder, risk, admin)
    POST /v1/accounts/{account}/what-if                 before/after hypothetical trades
    GET  /v1/accounts/{account}/explain                 contributions per position and asset
    GET  /v1/accounts/{account}/margin-at?sequence=     margin as of a past sequence, with the
                                                        risk parameters in force then
    POST /v1/stress                                     venue-wide stress (501 until the stress
                                                        engine of issue 15 is merged)
    GET  /v1/insurance-fund                             the fund's balance per asset (any key)
    POST /v1/admin/risk-parameters/preview              what a change would do to the whole book
    PUT  /v1/admin/risk-parameters                      change them (refused above the margin-jump
                                                        threshold unless `override`)

Recomputations (margin under another model, what-if, explain) are the `compute` request class:
few in flight (CPU-bound), the rest refused with 503 at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from crossmargin.engine.venue import ParameterPreview, RiskParameters, SetRiskParameters, WhatIfTrade
from crossmargin.service import access, models
from crossmargin.service.context import context_of
from crossmargin.service.limits import RequestClass
from crossmargin.service.problems import PROBLEM_MEDIA_TYPE, Problem
from crossmargin.service.routes.accounts import AccountPath
from crossmargin.service.routes.common import (
    IdempotencyKey,
    amounts,
    finite_or_none,
    key_or_new,
    run_command,
    run_query,
)
from crossmargin.service.security import Caller, admit

router = APIRouter(prefix="/v1", tags=["risk"])

Read = Depends(admit(RequestClass.READ))
Compute = Depends(admit(RequestClass.COMPUTE))
Command = Depends(admit(RequestClass.COMMAND))
PresetQuery = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


def figures(result: Mapping[str, Any], *, model: str, preset: str | None) -> models.MarginFigures:
    """The venue's margin dict as the API's figures (non-finite ratio -> null)."""
    return models.MarginFigures(
        model=str(result.get("model", model)),
        preset=result.get("preset", preset),
        equity_usd=float(result["equity_usd"]),
        initial_margin_usd=float(result["initial_margin_usd"]),
        maintenance_margin_usd=float(result["maintenance_margin_usd"]),
        available_usd=float(result["available_usd"]),
        margin_ratio=finite_or_none(result["margin_ratio"])
        if result.get("margin_ratio") is not None
        else None,
        bankrupt=bool(result["bankrupt"]),
    )


@router.get(
    "/accounts/{account}/margin",
    response_model=models.MarginResponse,
    summary="Margin of an account under any model",
    dependencies=[Compute],
)
async def margin(
    request: Request,
    account: AccountPath,
    caller: Caller,
    model: models.ModelName = "cross",
    preset: PresetQuery = None,
) -> models.MarginResponse:
    access.see_account(caller, account)
    venue = context_of(request.app).venue
    result = await run_query(
        request, RequestClass.COMPUTE, lambda: venue.margin(account, model, preset=preset)
    )
    return models.MarginResponse(
        account=account,
        sequence=int(result["sequence"]),
        **figures(result, model=model, preset=preset).model_dump(),
    )


@router.get(
    "/accounts/{account}/margin-at",
    response_model=models.MarginResponse,
    summary="Margin as of a past sequence, under the risk parameters then in force",
    dependencies=[Compute],
)
async def margin_at(
    request: Request,
    account: AccountPath,
    caller: Caller,
    sequence: Annotated[int, Query(ge=0, le=2**62)],
) -> models.MarginResponse:
    access.see_account(caller, account)
    venue = context_of(request.app).venue
    result = await run_query(request, RequestClass.COMPUTE, lambda: venue.margin_at(account, sequence))
    return models.MarginResponse(
        account=account,
        sequence=int(result["sequence"]),
        **figures(result, model="cross", preset=None).model_dump(),
    )


@router.post(
    "/accounts/{account}/what-if",
    response_model=models.WhatIfResponse,
    summary="Margin before and after hypothetical trades",
    dependencies=[Compute],
)
async def what_if(
    request: Request, account: AccountPath, body: models.WhatIfRequest, caller: Caller
) -> models.WhatIfResponse:
    access.see_account(caller, account)
    venue = context_of(request.app).venue
    trades = [WhatIfTrade(instrument=t.instrument, quantity=t.quantity, price=t.price) for t in body.trades]
    result = await run_query(request, RequestClass.COMPUTE, lambda: venue.what_if(account, trades))
    return models.WhatIfResponse(
        account=account,
        sequence=int(result["sequence"]),
        before=figures(result["before"], model="cross", preset=None),
        after=figures(result["after"], model="cross", preset=None),
    )


@router.get(
    "/accounts/{account}/explain",
    response_model=dict[str, Any],
    summary="What drives the account's requirement: per position and per collateral asset",
    dependencies=[Compute],
)
async def explain(request: Request, account: AccountPath, caller: Caller) -> dict[str, Any]:
    access.see_account(caller, account)
    venue = context_of(request.app).venue
    return dict(await run_query(request, RequestClass.COMPUTE, lambda: venue.explain(account)))


@router.post(
    "/stress",
    summary="Venue-wide stress test (not yet available)",
    status_code=501,
    responses={501: {"description": "no stress engine in this build", "content": {PROBLEM_MEDIA_TYPE: {}}}},
    dependencies=[Compute],
)
async def stress(request: Request, caller: Caller) -> None:
    access.see_venue(caller)
    raise Problem(
        501,
        "not-implemented",
        "venue-wide stress needs the stress engine (issue 15), which this build does not include yet; "
        "per-account what-if and margin under the portfolio or var models work now",
    )


@router.get(
    "/insurance-fund", response_model=models.InsuranceFund, summary="The insurance fund", dependencies=[Read]
)
async def insurance_fund(request: Request, caller: Caller) -> models.InsuranceFund:
    context = context_of(request.app)
    venue = context.venue
    units, sequence = await run_query(
        request, RequestClass.READ, lambda: (venue.insurance_fund(), venue.last_sequence)
    )
    return models.InsuranceFund(sequence=int(sequence), balances=amounts(units, context.decimals()))


def _preview_model(preview: ParameterPreview) -> models.ParameterPreviewModel:
    return models.ParameterPreviewModel(
        initial_margin_before_usd=preview.initial_margin_before_usd,
        initial_margin_after_usd=preview.initial_margin_after_usd,
        maintenance_margin_before_usd=preview.maintenance_margin_before_usd,
        maintenance_margin_after_usd=preview.maintenance_margin_after_usd,
        margin_jump_fraction=preview.margin_jump_fraction,
        pushed_under_maintenance=list(preview.pushed_under_maintenance),
        refused_reason=preview.refused_reason,
    )


def _parameters(body: models.RiskParametersRequest) -> RiskParameters:
    return RiskParameters(
        margin=dict(body.margin), margin_call=dict(body.margin_call), liquidation=dict(body.liquidation)
    )


@router.post(
    "/admin/risk-parameters/preview",
    response_model=models.ParameterChange,
    summary="What a risk-parameter change would do to the whole book",
    dependencies=[Compute],
)
async def preview_parameters(
    request: Request, body: models.RiskParametersRequest, caller: Caller
) -> models.ParameterChange:
    access.administer(caller)
    venue = context_of(request.app).venue
    parameters = _parameters(body)
    preview = await run_query(request, RequestClass.COMPUTE, lambda: venue.preview_parameters(parameters))
    return models.ParameterChange(preview=_preview_model(preview), ack=None)


@router.put(
    "/admin/risk-parameters",
    response_model=models.ParameterChange,
    summary="Change risk parameters (versioned in the log; refused above the jump threshold unless override)",
    dependencies=[Command],
)
async def set_parameters(
    request: Request,
    body: models.RiskParametersRequest,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> models.ParameterChange:
    access.administer(caller)
    venue = context_of(request.app).venue
    parameters = _parameters(body)
    preview = await run_query(request, RequestClass.COMPUTE, lambda: venue.preview_parameters(parameters))
    if preview.refused_reason is not None and not body.override:
        raise Problem(
            409,
            "margin-jump",
            f"{preview.refused_reason}; resend with override=true to apply",
            field="body.override",
        )
    command = SetRiskParameters(
        idempotency_key=key_or_new(idempotency_key), parameters=parameters, override=body.override
    )
    ack = await run_command(request, command)
    return models.ParameterChange(preview=_preview_model(preview), ack=ack)
