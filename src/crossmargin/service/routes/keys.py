"""API keys, managed by admin keys.

POST   /v1/admin/keys            mint a key (the full key is in this response only)
GET    /v1/admin/keys            every key, revoked ones included (no secrets, no hashes)
DELETE /v1/admin/keys/{key_id}   revoke: the key is refused from the next request on
GET    /v1/admin/audit           the latest audited mutating requests
"""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Path, Query, Request

from crossmargin.errors import InputError
from crossmargin.service import access
from crossmargin.service.context import context_of
from crossmargin.service.keys import ApiKey, Role, mint_key
from crossmargin.service.keystore import AuditRecord
from crossmargin.service.models import AuditEntry, AuditList, KeyCreate, KeyCreated, KeyInfo, KeyList
from crossmargin.service.problems import Problem
from crossmargin.service.security import Caller

router = APIRouter(prefix="/v1/admin", tags=["admin"])

KeyIdPath = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$", description="the key's public id")]


def key_info(key: ApiKey) -> KeyInfo:
    return KeyInfo(
        key_id=key.key_id,
        role=key.role,
        account=key.account,
        label=key.label,
        created_ns=key.created_ns,
        revoked_ns=key.revoked_ns,
    )


@router.post("/keys", response_model=KeyCreated, status_code=201, summary="Mint an API key")
async def create_key(request: Request, body: KeyCreate, caller: Caller) -> KeyCreated:
    access.administer(caller)
    context = context_of(request.app)
    if body.role == Role.HOLDER:
        if body.account is None:
            raise Problem(422, "invalid-request", "a holder key needs its account", field="body.account")
        if not context.has_account(body.account):
            raise Problem(422, "unknown-account", f"no account {body.account!r}", field="body.account")
    elif body.account is not None:
        raise Problem(422, "invalid-request", "risk and admin keys have no account", field="body.account")
    # scrypt (~0.1 s of CPU) off the event loop
    new = await anyio.to_thread.run_sync(
        lambda: mint_key(
            role=body.role, account=body.account, label=body.label, created_ns=context.clock_ns()
        )
    )
    await anyio.to_thread.run_sync(context.keys.add, new.row)
    return KeyCreated(**key_info(new.row).model_dump(), key=new.text)


@router.get("/keys", response_model=KeyList, summary="List API keys")
async def list_keys(request: Request, caller: Caller) -> KeyList:
    access.administer(caller)
    return KeyList(keys=[key_info(k) for k in context_of(request.app).keys.all()])


@router.delete("/keys/{key_id}", response_model=KeyInfo, summary="Revoke an API key")
async def revoke_key(request: Request, key_id: KeyIdPath, caller: Caller) -> KeyInfo:
    access.administer(caller)
    context = context_of(request.app)
    try:
        revoked = context.keys.revoke(key_id, revoked_ns=context.clock_ns())
    except InputError as error:
        raise Problem(404, "not-found", error.problem, field="path.key_id") from None
    context.verifier.forget(key_id)
    return key_info(revoked)


@router.get("/audit", response_model=AuditList, summary="Audited mutating requests, newest last")
async def audit(
    request: Request, caller: Caller, limit: Annotated[int, Query(ge=1, le=10_000)] = 100
) -> AuditList:
    access.administer(caller)
    keys = context_of(request.app).keys

    def latest() -> list[AuditRecord]:
        keys.flush()
        return list(keys.audit_rows(limit=limit))

    rows = await anyio.to_thread.run_sync(latest)
    return AuditList(entries=[AuditEntry.model_validate(r, from_attributes=True) for r in rows])
