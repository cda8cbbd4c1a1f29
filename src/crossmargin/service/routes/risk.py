"""Risk views: margin under any model, what-if, explain, past margin, stress, the insurance fund,
and risk parameters.

    GET  /v1/accounts/{account}/margin?model=&preset=   margin under any model (holder, risk, admin)
    POST /v1/accounts/{account}/what-if                 before/after hypothetical trades
    GET  /v1/accounts/{account}/explain                 contributions per position and asset
    GET  /v1/accounts/{account}/margin-at?sequence=     margin as of a past sequence, with the
                                                        risk parameters in force then
    POST /v1/stress                                     venue-wide stress on the committed book:
                                                        shocks, historical windows, cascades (risk,
                                                        admin; service/stress.py)
    GET  /v1/insurance-fund                             the fund's balance per asset (any key)
    POST /v1/admin/risk-parameters/preview              what a change would do to the whole book
    PUT  /v1/admin/risk-parameters                      change them (refused above the margin-jump
                                                        threshold unless `override`)

Recomputations (margin under another model, what-if, explain, stress) are the `compute` request class:
few in flight (CPU-bound), the rest refused with 503 at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request

from crossmargin.engine.venue import ParameterPreview, RiskParameters, SetRiskParameters, Venue, WhatIfTrade
from crossmargin.service import access, models
from crossmargin.service import stress as stress_run
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
from crossmargin.service.security import Caller
from crossmargin.service.wiring import margin_model

T = TypeVar("T")

router = APIRouter(prefix="/v1", tags=["risk"])

PresetQuery = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


def figures(result: Mapping[str, Any], *, model: str, preset: str | None) -> models.MarginFigures:
    """A venue margin row (USD) as the API's figures. margin_ratio = MM / equity, null when the
    account is bankrupt (equity <= 0), as `core.margin.MarginResult` states it."""
    equity = float(result["equity_usd"])
    maintenance = float(result["maintenance_margin_usd"])
    bankrupt = bool(result.get("bankrupt", equity <= 0.0))
    return models.MarginFigures(
        model=model,
        preset=preset,
        equity_usd=equity,
        initial_margin_usd=float(result["initial_margin_usd"]),
        maintenance_margin_usd=maintenance,
        available_usd=float(result["available_usd"]),
        margin_ratio=None if bankrupt else finite_or_none(maintenance / equity),
        bankrupt=bankrupt,
    )


def _as_of(venue: Venue, query: Callable[[], T]) -> tuple[T, int]:
    """The query's result and the last committed sequence read just before it (the result is as
    of that sequence or a later one: a query never sees an uncommitted record)."""
    sequence = venue.last_sequence
    return query(), sequence


@router.get(
    "/accounts/{account}/margin",
    response_model=models.MarginResponse,
    summary="Margin of an account under any model",
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

    def run() -> tuple[tuple[dict[str, float], str | None], int]:
        chosen, preset_name = margin_model(venue, model, preset)
        return _as_of(venue, lambda: (venue.margin(account, chosen), preset_name))

    (result, preset_name), sequence = await run_query(
        request, RequestClass.COMPUTE, run, fields={"model": "query.model", "preset": "query.preset"}
    )
    return models.MarginResponse(
        account=account, sequence=sequence, **figures(result, model=model, preset=preset_name).model_dump()
    )


@router.get(
    "/accounts/{account}/margin-at",
    response_model=models.MarginResponse,
    summary="Cross margin right after a past sequence, under the prices and parameters then in force",
)
async def margin_at(
    request: Request,
    account: AccountPath,
    caller: Caller,
    sequence: Annotated[int, Query(ge=1, le=2**62)],
) -> models.MarginResponse:
    access.see_account(caller, account)
    venue = context_of(request.app).venue
    result = await run_query(
        request,
        RequestClass.COMPUTE,
        lambda: venue.margin_at(account, sequence),
        fields={"sequence": "query.sequence"},
    )
    return models.MarginResponse(
        account=account, sequence=sequence, **figures(result, model="cross", preset=None).model_dump()
    )


@router.post(
    "/accounts/{account}/what-if",
    response_model=models.WhatIfResponse,
    summary="Cross margin before and after hypothetical trades",
)
async def what_if(
    request: Request, account: AccountPath, body: models.WhatIfRequest, caller: Caller
) -> models.WhatIfResponse:
    access.see_account(caller, account)
    venue = context_of(request.app).venue
    trades = [WhatIfTrade(instrument=t.instrument, quantity=t.quantity, price=t.price) for t in body.trades]
    result, sequence = await run_query(
        request,
        RequestClass.COMPUTE,
        lambda: _as_of(venue, lambda: venue.what_if(account, trades)),
        prefix="body.",
    )
    return models.WhatIfResponse(
        account=account,
        sequence=sequence,
        before=figures(result["before"], model="cross", preset=None),
        after=figures(result["after"], model="cross", preset=None),
    )


@router.get(
    "/accounts/{account}/explain",
    response_model=models.Explanation,
    summary="What drives the account's cross margin: per position and per collateral asset",
)
async def explain(request: Request, account: AccountPath, caller: Caller) -> models.Explanation:
    access.see_account(caller, account)
    venue = context_of(request.app).venue
    breakdown, sequence = await run_query(
        request, RequestClass.COMPUTE, lambda: _as_of(venue, lambda: venue.explain(account))
    )
    config = venue.config
    return models.Explanation(
        account=account,
        sequence=sequence,
        positions=[
            models.PositionContribution(
                instrument=config.instruments.ids[int(breakdown.position_instrument[p])],
                quantity=float(breakdown.quantity[p]),
                entry_price=float(breakdown.entry_price[p]),
                value_usd=float(breakdown.value_usd[p]),
                unrealised_pnl_usd=float(breakdown.unrealised_pnl_usd[p]),
                initial_margin_usd=float(breakdown.initial_margin_usd[p]),
                maintenance_margin_usd=float(breakdown.maintenance_margin_usd[p]),
            )
            for p in range(breakdown.position_instrument.size)
        ],
        collateral=[
            models.CollateralContribution(
                asset=asset,
                balance=float(breakdown.balance[0, k]),
                collateral_value_usd=float(breakdown.collateral_value_usd[0, k]),
                haircut=float(breakdown.haircut[0, k]),
            )
            for k, asset in enumerate(config.assets.symbols)
            if breakdown.balance[0, k] != 0.0
        ],
    )


@router.post(
    "/stress",
    response_model=models.StressResponse,
    summary="Venue-wide stress: hypothetical shocks, historical windows, cascading liquidations",
    responses={
        409: {
            "description": "historical windows asked, no price history configured",
            "content": {PROBLEM_MEDIA_TYPE: {}},
        }
    },
)
async def stress(request: Request, body: models.StressRequest, caller: Caller) -> models.StressResponse:
    access.see_venue(caller)
    context = context_of(request.app)
    venue, history = context.venue, context.price_history
    policy = stress_run.check(body, history)

    def run() -> models.StressResponse:
        return stress_run.run(body, stress_run.inputs_of(venue), policy, history)

    return await run_query(request, RequestClass.COMPUTE, run, prefix="body.")


@router.get("/insurance-fund", response_model=models.InsuranceFund, summary="The insurance fund")
async def insurance_fund(request: Request, caller: Caller) -> models.InsuranceFund:
    context = context_of(request.app)
    venue = context.venue
    units, sequence = await run_query(request, RequestClass.READ, lambda: _as_of(venue, venue.insurance_fund))
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
)
async def preview_parameters(
    request: Request, body: models.RiskParametersRequest, caller: Caller
) -> models.ParameterChange:
    access.administer(caller)
    venue = context_of(request.app).venue
    parameters = _parameters(body)
    preview = await run_query(
        request, RequestClass.COMPUTE, lambda: venue.preview_parameters(parameters), prefix="body."
    )
    return models.ParameterChange(preview=_preview_model(preview), ack=None)


@router.put(
    "/admin/risk-parameters",
    response_model=models.ParameterChange,
    summary="Change risk parameters (versioned in the log; refused above the jump threshold unless override)",
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
    preview = await run_query(
        request, RequestClass.COMPUTE, lambda: venue.preview_parameters(parameters), prefix="body."
    )
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
