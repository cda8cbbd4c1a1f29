"""The byte layout of the Merkle-sum trees: one place, so builder and prover agree, for the tree
with sums in the clear (`merkle_sum`) and the one with hidden sums (`committed`) alike.

The standalone verifier (`crossmargin.verifier`) re-implements the same layout with the standard
library alone, on purpose: a user checks their path with code that shares nothing with the
venue's builder, and the tests hold the two to each other.

    salt      = HMAC-SHA256(key = venue secret, "salt" ‖ asset ‖ 0x00 ‖ account id)   (private)
    filler    = HMAC-SHA256(key = venue secret, "pad" ‖ asset ‖ 0x00 ‖ index u64 BE)   (private)
    leaf      = SHA-256(0x00 ‖ salt ‖ field ‖ account id)       a padding leaf: salt = filler,
                                                                 field = the field of 0, id = ""
    node      = SHA-256(0x01 ‖ left hash ‖ left field ‖ right hash ‖ right field)
    field     = sum u64 BE (merkle-sum-v1) or its Pedersen commitment, 33 bytes (merkle-sum-zk-v1)
    node sum  = left sum + right sum

Salts are a MAC of the id under the venue's secret (HMAC, unlike a prefix-keyed SHA-256, which
length extension would let a user extend from their own salt). Hashing both children's sums into
the parent is the fix Hu, Zhang and Guo (2018, "Maxwell's proof of solvency is broken",
https://eprint.iacr.org/2018/1139) gave for Maxwell's tree, where a parent hashed only the total
of its children and a venue could show each child a smaller sibling; PSE's Summa hashes both sums
the same way (summa-dev/summa-solvency, backend `merkle_sum_tree/utils/create_middle_node.rs`).

Each function has a scalar form (one proof, bytes) and a batched form (a whole level, numpy
byte matrices, hashed in one call by `hashing`); the tests hold them to each other.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from crossmargin.core.solvency.hashing import ByteArray, OffsetArray, digests, sha256_rows

FORMAT = "crossmargin-merkle-sum-v1"
FORMAT_ZK = "crossmargin-merkle-sum-zk-v1"
LEAF_TAG = b"\x00"
NODE_TAG = b"\x01"
HASH_BYTES = 32
SUM_BYTES = 8
MAX_TOTAL_UNITS = 2**64 - 1  # node sums are u64: a total must fit (range proofs are 64-bit too)


def keyed(secret: bytes, *parts: bytes) -> bytes:
    """BLAKE2b-256 keyed by the venue's secret: blinds, nonces and the leaf order (one per
    curve operation or per tree; the per-leaf salts use `salt_of`)."""
    return hashlib.blake2b(b"".join(parts), key=secret, digest_size=HASH_BYTES).digest()


def _salt_prefix(asset: str) -> bytes:
    return b"salt" + asset.encode() + b"\x00"


def _pad_prefix(asset: str) -> bytes:
    return b"pad" + asset.encode() + b"\x00"


def salt_of(secret: bytes, asset: str, account_id: str) -> bytes:
    return hmac.new(secret, _salt_prefix(asset) + account_id.encode(), hashlib.sha256).digest()


def filler_of(secret: bytes, asset: str, index: int) -> bytes:
    return hmac.new(secret, _pad_prefix(asset) + index.to_bytes(8, "big"), hashlib.sha256).digest()


def sum_field(units: int) -> bytes:
    return units.to_bytes(SUM_BYTES, "big")


def leaf_hash(salt: bytes, field: bytes, account_id: str) -> bytes:
    return hashlib.sha256(LEAF_TAG + salt + field + account_id.encode()).digest()


def node_hash(left_hash: bytes, left_field: bytes, right_hash: bytes, right_field: bytes) -> bytes:
    return hashlib.sha256(NODE_TAG + left_hash + left_field + right_hash + right_field).digest()


DEBT_COVER_FORMAT = "crossmargin-debt-cover-v2"
BUNDLE_FORMAT = "crossmargin-proof-bundle-v2"


def _framed(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def cover_binding(account_id: str, bound: Sequence[tuple[str, bytes, bytes, int]]) -> bytes:
    """What a debt-cover proof is bound to, hashed into every one of its range proofs (their
    `extra_commit`): the account, and per asset (sorted) the published root hash, the
    account's leaf hash in that tree and its debt in that asset (units):

        SHA-256(len ‖ "crossmargin-debt-cover-v2" ‖ len ‖ account ‖ Σ_asset (len ‖ asset ‖
                root hash ‖ leaf hash ‖ debt units u64 BE))          (len: u32 BE byte count)
    """
    message = _framed(DEBT_COVER_FORMAT.encode()) + _framed(account_id.encode())
    for asset, root_hash, leaf, debt_units in sorted(bound):
        message += _framed(asset.encode()) + root_hash + leaf + sum_field(debt_units)
    return hashlib.sha256(message).digest()


# ---- batched: a whole level per call -------------------------------------------------------


def encoded_ids(account_ids: Sequence[str]) -> tuple[ByteArray, OffsetArray]:
    """The ids' UTF-8 bytes packed in one buffer, and their offsets (n + 1,)."""
    offsets = np.zeros(len(account_ids) + 1, dtype=np.int64)
    joined = "".join(account_ids)
    packed = joined.encode()
    if len(packed) == len(joined):  # ASCII: one byte per character, lengths from the strings
        lengths = np.fromiter(map(len, account_ids), dtype=np.int64, count=len(account_ids))
    else:
        encoded = list(map(str.encode, account_ids))
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    np.cumsum(lengths, out=offsets[1:])
    return np.frombuffer(packed, dtype=np.uint8), offsets


def sum_fields(units: npt.NDArray[np.uint64]) -> ByteArray:
    """u64 big-endian per value, shape (n, 8)."""
    fields: ByteArray = units.astype(">u8").view(np.uint8).reshape(-1, SUM_BYTES)
    return fields


def salts(secret: bytes, asset: str, ids: tuple[ByteArray, OffsetArray]) -> ByteArray:
    """`salt_of` for every account, shape (n, 32)."""
    return digests(_salt_prefix(asset), tail=ids, key=secret)


def fillers(secret: bytes, asset: str, indices: npt.NDArray[np.int64]) -> ByteArray:
    """`filler_of` for every padding index, shape (m, 32)."""
    index_bytes = indices.astype(">u8").view(np.uint8).reshape(-1, 8)
    return digests(_pad_prefix(asset), index_bytes, key=secret)


def leaf_hashes(salt: ByteArray, fields: ByteArray, ids: tuple[ByteArray, OffsetArray] | None) -> ByteArray:
    """`leaf_hash` per row, shape (n, 32); ids None: padding leaves (empty id)."""
    return digests(LEAF_TAG, salt, fields, tail=ids)


def node_hashes(hashes: ByteArray, fields: ByteArray) -> ByteArray:
    """One level up: `node_hash` of each pair (2i, 2i + 1). Shapes (2m, 32), (2m, w) -> (m, 32);
    the messages are assembled for the whole level in numpy and hashed in one call."""
    m, width = hashes.shape[0] // 2, fields.shape[1]
    step = HASH_BYTES + width
    message = np.empty((m, 1 + 2 * step), dtype=np.uint8)
    message[:, 0] = NODE_TAG[0]
    message[:, 1 : 1 + HASH_BYTES] = hashes[0::2]
    message[:, 1 + HASH_BYTES : 1 + step] = fields[0::2]
    message[:, 1 + step : 1 + step + HASH_BYTES] = hashes[1::2]
    message[:, 1 + step + HASH_BYTES :] = fields[1::2]
    return sha256_rows(message)
