"""The event log, read page by page (risk, admin).

GET /v1/events?after=N&limit=L   records N+1 .. N+L in sequence order, each with its chain hash
                                 and decoded payload (the command and what it did); resume
                                 with `after=next_after`
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from crossmargin.service import access, models
from crossmargin.service.context import context_of
from crossmargin.service.limits import RequestClass
from crossmargin.service.routes.common import run_query
from crossmargin.service.security import Caller

router = APIRouter(prefix="/v1", tags=["events"])


@router.get(
    "/events",
    response_model=models.EventPage,
    summary="The event log",
)
async def events(
    request: Request,
    caller: Caller,
    after: Annotated[int, Query(ge=0, le=2**62, description="the last sequence already read")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> models.EventPage:
    access.see_venue(caller)
    venue = context_of(request.app).venue
    entries, last = await run_query(
        request, RequestClass.READ, lambda: (venue.log(after + 1, limit), venue.last_sequence)
    )
    page = [
        models.LogEntryModel(
            sequence=e.sequence,
            kind=e.kind,
            idempotency_key=e.idempotency_key,
            as_of_ns=e.as_of_ns,
            record_hash=e.record_hash,
            actor=e.actor,
            payload=dict(e.payload),
        )
        for e in entries
    ]
    return models.EventPage(
        entries=page, next_after=page[-1].sequence if page else after, last_sequence=int(last)
    )
