"""API keys: format, scrypt hash at rest, verification, revocation persisted, audit rows written."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import sqlalchemy as sa

from crossmargin.errors import InputError
from crossmargin.service.keys import SCRYPT_N, Role, Verifier, mint_key, parse_key, scrypt_hash
from crossmargin.service.keystore import AuditRecord, KeyStore


def test_minted_key_parses_and_verifies_and_a_wrong_secret_does_not() -> None:
    new = mint_key(role=Role.HOLDER, account="alice", label="", created_ns=1)
    presented = parse_key(new.text)
    assert presented is not None and presented.key_id == new.row.key_id
    verifier = Verifier()
    assert verifier.matches(new.row, presented.secret)
    assert verifier.matches(new.row, presented.secret)  # the cached path
    wrong = presented.secret[:-1] + ("A" if presented.secret[-1] != "A" else "B")
    assert not verifier.matches(new.row, wrong)
    assert not Verifier().matches(new.row, wrong)  # the scrypt path


def test_the_row_stores_an_scrypt_hash_never_the_secret() -> None:
    new = mint_key(role=Role.ADMIN, account=None, label="ops", created_ns=1)
    secret = new.text.rsplit("_", 1)[1]
    assert new.row.secret_hash == hashlib.scrypt(
        secret.encode(), salt=new.row.salt, n=SCRYPT_N, r=8, p=1, dklen=32
    )
    assert new.row.secret_hash == scrypt_hash(secret, new.row.salt)
    assert secret.encode() not in repr(new.row).encode() + new.row.secret_hash + new.row.salt


@pytest.mark.parametrize(
    "text", ["", "cmk_", "Bearer x", "cmk_0123456789ab_short", "cmk_XYZ456789abc_" + "a" * 43]
)
def test_malformed_keys_do_not_parse(text: str) -> None:
    assert parse_key(text) is None


def test_holder_keys_name_exactly_one_account() -> None:
    with pytest.raises(InputError, match="account"):
        mint_key(role=Role.HOLDER, account=None, label="", created_ns=1)
    with pytest.raises(InputError, match="account"):
        mint_key(role=Role.RISK, account="alice", label="", created_ns=1)


def test_keys_and_revocations_survive_a_restart_and_audit_rows_are_written(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    store = KeyStore(sa.create_engine(url))
    holder = mint_key(role=Role.HOLDER, account="alice", label="alice's bot", created_ns=5)
    risk = mint_key(role=Role.RISK, account=None, label="", created_ns=6)
    store.add(holder.row)
    store.add(risk.row)
    store.revoke(holder.row.key_id, revoked_ns=9)
    with pytest.raises(InputError, match="key_id"):
        store.revoke("000000000000", revoked_ns=9)
    for status in (201, 403):
        store.audit(
            AuditRecord(
                time_ns=10,
                key_id=risk.row.key_id,
                role="risk",
                method="POST",
                path="/v1/fills",
                account=None,
                status=status,
                sequence=None,
                idempotency_key="k",
                body_sha256="0" * 64,
            )
        )
    store.close()

    reopened = KeyStore(sa.create_engine(url))
    try:
        rows = {k.key_id: k for k in reopened.all()}
        assert rows[holder.row.key_id].revoked_ns == 9
        assert rows[risk.row.key_id].revoked_ns is None
        assert rows[holder.row.key_id].secret_hash == holder.row.secret_hash
        assert [r.status for r in reopened.audit_rows()] == [201, 403]
    finally:
        reopened.close()
