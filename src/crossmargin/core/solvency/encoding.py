"""The byte layout of the Merkle-sum tree: one place, so builder and prover agree.

The standalone verifier (`crossmargin.verifier`) re-implements the same layout with the standard
library alone, on purpose: a user checks their path with code that shares nothing with the
venue's builder, and the tests hold the two to each other.

    salt      = BLAKE2b-256(key = venue secret, "salt" ‖ asset ‖ 0x00 ‖ account id)   (private)
    leaf      = SHA-256(0x00 ‖ salt ‖ amount u64 BE ‖ account id UTF-8)
    padding   = SHA-256(0x00 ‖ BLAKE2b-256(key = secret, "pad" ‖ asset ‖ 0x00 ‖ index u64 BE)
                        ‖ 0 u64 BE)                     (a leaf of amount 0 no one can open)
    node      = SHA-256(0x01 ‖ left hash ‖ left sum u64 BE ‖ right hash ‖ right sum u64 BE)
    node sum  = left sum + right sum

Hashing both children's sums into the parent is the fix Hu, Zhang and Guo (2018, "Maxwell's
proof of solvency is broken", https://eprint.iacr.org/2018/1139) gave for Maxwell's tree, where a
parent hashed only the total of its children and a venue could show each child a smaller
sibling; PSE's Summa hashes both sums the same way (summa-dev/summa-solvency, backend
`merkle_sum_tree/utils/create_middle_node.rs`).
"""

from __future__ import annotations

import hashlib

FORMAT = "crossmargin-merkle-sum-v1"
FORMAT_ZK = "crossmargin-merkle-sum-zk-v1"
LEAF_TAG = b"\x00"
NODE_TAG = b"\x01"
HASH_BYTES = 32
SUM_BYTES = 8
MAX_TOTAL_UNITS = 2**64 - 1  # node sums are u64: a total must fit (range proofs are 64-bit too)
NODE_MESSAGE_BYTES = 1 + 2 * (HASH_BYTES + SUM_BYTES)


def keyed(secret: bytes, *parts: bytes) -> bytes:
    """BLAKE2b-256 keyed by the venue's secret (a MAC, unlike a prefix-keyed SHA-256, which
    length extension would let a user extend from their own salt)."""
    return hashlib.blake2b(b"".join(parts), key=secret, digest_size=HASH_BYTES).digest()


def salt_of(secret: bytes, asset: str, account_id: str) -> bytes:
    return keyed(secret, b"salt", asset.encode(), b"\x00", account_id.encode())


def leaf_hash(salt: bytes, amount_units: int, account_id: str) -> bytes:
    return hashlib.sha256(
        LEAF_TAG + salt + amount_units.to_bytes(SUM_BYTES, "big") + account_id.encode()
    ).digest()


def padding_hash(secret: bytes, asset: str, index: int) -> bytes:
    filler = keyed(secret, b"pad", asset.encode(), b"\x00", index.to_bytes(8, "big"))
    return hashlib.sha256(LEAF_TAG + filler + bytes(SUM_BYTES)).digest()


def node_hash(left_hash: bytes, left_sum: int, right_hash: bytes, right_sum: int) -> bytes:
    return hashlib.sha256(
        NODE_TAG
        + left_hash
        + left_sum.to_bytes(SUM_BYTES, "big")
        + right_hash
        + right_sum.to_bytes(SUM_BYTES, "big")
    ).digest()
