"""API keys: their format, their hash at rest, and the three roles.

A key as the client holds it: ``cmk_<key_id>_<secret>``. `key_id` (12 hex characters) is public: it
names the key in logs, the audit table and the admin API, and finds its row. `secret` is 32 random
bytes (urlsafe base64, 43 characters) from `secrets.token_urlsafe`, shown once at creation and never
stored: the row keeps only ``scrypt(secret, salt, n=2**14, r=8, p=1, dklen=32)`` and the 16-byte salt
(RFC 7914; OWASP Password Storage Cheat Sheet's scrypt parameters). A leaked table gives nobody a key.

scrypt costs ~30 ms and 16 MB by design, far too slow per request: the verifier keeps, in memory
only, SHA-256 of secrets it has already verified against the stored scrypt hash, so each key pays
scrypt once per process. (A 256-bit random secret cannot be brute-forced through SHA-256 either; the
slow hash at rest is defence in depth for the database.)

Roles (`Role`): a holder sees and acts on its own account only; risk sees everything, posts fills and
prices (the venue's matching engine and oracle hold risk keys) and runs stress; admin can do all of
that and manages keys and risk parameters.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from crossmargin.errors import InputError

KEY_PREFIX = "cmk"
KEY_ID_HEX = 12
SECRET_BYTES = 32
SALT_BYTES = 16
# RFC 7914 §2 / OWASP: N = 2^14 (CPU/memory cost), r = 8 (block size), p = 1; 16 MiB of memory.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_DKLEN = 32

_KEY_PATTERN = re.compile(rf"^{KEY_PREFIX}_([0-9a-f]{{{KEY_ID_HEX}}})_([A-Za-z0-9_-]{{43}})$")


class Role(enum.StrEnum):
    HOLDER = "holder"
    RISK = "risk"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKey:
    """One key's row: everything but the secret. `account` is set exactly when role is holder."""

    key_id: str
    role: Role
    account: str | None
    label: str
    created_ns: int
    revoked_ns: int | None
    salt: bytes
    secret_hash: bytes

    def __post_init__(self) -> None:
        if (self.role == Role.HOLDER) != (self.account is not None):
            raise InputError("account", "a holder key names exactly one account; risk and admin keys none")

    @property
    def revoked(self) -> bool:
        return self.revoked_ns is not None


@dataclass(frozen=True, slots=True)
class PresentedKey:
    """A key as parsed from a request: its public id and the secret to check."""

    key_id: str
    secret: str


def parse_key(text: str) -> PresentedKey | None:
    """The parts of ``cmk_<key_id>_<secret>``, or None when the text is not of that form."""
    match = _KEY_PATTERN.match(text.strip())
    if match is None:
        return None
    return PresentedKey(match.group(1), match.group(2))


def scrypt_hash(secret: str, salt: bytes) -> bytes:
    """scrypt(secret, salt), the parameters above (RFC 7914)."""
    return hashlib.scrypt(
        secret.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=SCRYPT_DKLEN, maxmem=64 * 2**20
    )


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly minted key: the row to store and the full key text, shown once."""

    row: ApiKey
    text: str


def mint_key(*, role: Role, account: str | None, label: str, created_ns: int) -> NewKey:
    """A new random key and its row (scrypt hash and salt; the secret itself is not kept)."""
    key_id = secrets.token_hex(KEY_ID_HEX // 2)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).decode().rstrip("=")
    salt = secrets.token_bytes(SALT_BYTES)
    row = ApiKey(
        key_id=key_id,
        role=role,
        account=account,
        label=label,
        created_ns=created_ns,
        revoked_ns=None,
        salt=salt,
        secret_hash=scrypt_hash(secret, salt),
    )
    return NewKey(row=row, text=f"{KEY_PREFIX}_{key_id}_{secret}")


class Verifier:
    """Checks presented secrets against stored rows, paying scrypt once per key per process.

    `_verified[key_id]` is SHA-256 of the secret that matched the row's scrypt hash (memory only).
    A presented secret whose SHA-256 differs is checked with scrypt again (and fails)."""

    def __init__(self) -> None:
        self._verified: dict[str, bytes] = {}

    def quick(self, row: ApiKey, secret: str) -> bool | None:
        """True or False when this key was verified before in this process; None when it needs
        scrypt (`matches`)."""
        known = self._verified.get(row.key_id)
        if known is None:
            return None
        return hmac.compare_digest(known, hashlib.sha256(secret.encode()).digest())

    def matches(self, row: ApiKey, secret: str) -> bool:
        """Whether `secret` is the key's: the cached check, else scrypt (then cached)."""
        verdict = self.quick(row, secret)
        if verdict is not None:
            return verdict
        if not hmac.compare_digest(scrypt_hash(secret, row.salt), row.secret_hash):
            return False
        self._verified[row.key_id] = hashlib.sha256(secret.encode()).digest()
        return True

    def forget(self, key_id: str) -> None:
        self._verified.pop(key_id, None)
