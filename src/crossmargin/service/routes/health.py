"""Liveness, readiness and metrics: unauthenticated, never rate-limited (probes and scrapers).

GET /healthz   200 while the process can do its job (liveness: restart it if this fails); 503
               once the venue has stopped after a failed commit, which only a restart (recovery
               from the log) undoes: a supervisor or a Kubernetes liveness probe then restarts it
               instead of leaving a process up that can never accept a command again
GET /readyz    200 when the venue has recovered its log and accepts commands; 503 while it
               starts, after a failed commit, and while draining at shutdown (take it out of
               the load balancer)
GET /metrics   Prometheus text exposition
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from crossmargin.service.context import context_of
from crossmargin.service.models import Health, Readiness
from crossmargin.service.problems import PROBLEM_MEDIA_TYPE, Problem

router = APIRouter(tags=["operations"])


@router.get(
    "/healthz",
    response_model=Health,
    summary="Liveness",
    responses={503: {"description": "the venue stopped: restart", "content": {PROBLEM_MEDIA_TYPE: {}}}},
)
async def healthz(request: Request) -> Health:
    reason = context_of(request.app).liveness()
    if reason is not None:
        raise Problem(503, "venue-stopped", reason)
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness",
    responses={503: {"description": "not ready", "content": {PROBLEM_MEDIA_TYPE: {}}}},
)
async def readyz(request: Request) -> Readiness:
    context = context_of(request.app)
    reason = context.readiness()
    if reason is not None:
        raise Problem(503, "not-ready", reason, headers={"Retry-After": "1"})
    audit = context.venue.log_audit()
    return Readiness(
        status="ready",
        sequence=context.venue_sequence(),
        log_audit=audit.status,
        log_audit_problem=audit.problem,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    body = context_of(request.app).metrics.render()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
