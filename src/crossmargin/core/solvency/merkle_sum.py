"""Merkle-sum tree of one asset's liabilities over accounts: exact integer units, salted leaves.

Every account is a leaf committing to what the venue owes it in one asset, in the asset's ledger
minor units (integers, never float); each parent hashes both children's hashes and both
children's sums (`encoding`), so the root fixes every leaf and the total. The tree is padded to
2**height leaves with zero-amount padding leaves nobody can open, and every leaf, real or
padding, sits at a position drawn by a permutation keyed by the venue's secret: a path shows
the height (the account count to within a factor of two; `min_height` widens it) and nothing
of where the other accounts are. Designs followed: PSE's Summa v1 Merkle-sum tree
(https://github.com/summa-dev/summa-solvency, `backend/src/merkle_sum_tree`, sums of every
currency in each node's hash) and DAPOL+ (Ji & Chalkias 2021, https://eprint.iacr.org/2021/1350,
padding nodes derived from a secret so the tree hides the number of users).

Cost: per account one HMAC-SHA256 (its salt) and one SHA-256 (its leaf), per parent one
SHA-256; each level is one batched call (`hashing`: OpenSSL's SHA-256 in a numba loop, no Python
call per hash), its messages assembled for the whole level in numpy (`encoding`). Measured
against the per-hash `hashlib` build it replaced in `bench/bench_solvency.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from crossmargin.core.solvency.encoding import (
    FORMAT,
    HASH_BYTES,
    MAX_TOTAL_UNITS,
    encoded_ids,
    fillers,
    keyed,
    leaf_hashes,
    node_hashes,
    salt_of,
    salts,
    sum_fields,
)
from crossmargin.errors import InputError

ByteArray = npt.NDArray[np.uint8]
UnitArray = npt.NDArray[np.uint64]
IntArray = npt.NDArray[np.int64]

MIN_SECRET_BYTES = 16
MAX_HEIGHT = 40


def check_secret(secret: bytes) -> None:
    if not isinstance(secret, bytes) or not MIN_SECRET_BYTES <= len(secret) <= 64:
        raise InputError("secret", f"must be {MIN_SECRET_BYTES} to 64 bytes (BLAKE2b key)")


def check_amounts(asset: str, account_ids: Sequence[str], amount_units: npt.ArrayLike) -> UnitArray:
    """Liabilities must be exact non-negative integers, one per account, their total a u64."""
    amounts = np.asarray(amount_units)
    if amounts.ndim != 1 or amounts.shape[0] != len(account_ids):
        raise InputError(f"liabilities[{asset}]", f"shape {amounts.shape} is not ({len(account_ids)},)")
    if not np.issubdtype(amounts.dtype, np.integer):
        raise InputError(f"liabilities[{asset}]", f"must be integer minor units, got {amounts.dtype}")
    if amounts.size and int(amounts.min()) < 0:
        row = int(np.argmin(amounts))
        raise InputError(
            f"liabilities[{asset}][{account_ids[row]}]", f"negative liability {int(amounts[row])}"
        )
    total = exact_total(amounts)
    if total > MAX_TOTAL_UNITS:
        raise InputError(f"liabilities[{asset}]", f"total {total} units does not fit 64 bits")
    return amounts.astype(np.uint64)


def exact_total(amounts: npt.NDArray[np.integer[Any]]) -> int:
    """The exact sum of non-negative integers (a u64 sum in numpy would wrap silently): the high
    and low 32-bit halves summed apart (each sum < 2**64 while n < 2**32), joined in Python."""
    units = amounts.astype(np.uint64)
    if units.size >= 1 << 32:  # pragma: no cover - beyond any tree here (MAX_HEIGHT aside)
        return sum(units.tolist())
    high = int((units >> np.uint64(32)).sum(dtype=np.uint64))
    low = int((units & np.uint64(0xFFFFFFFF)).sum(dtype=np.uint64))
    return (high << 32) + low


def check_unique(account_ids: Sequence[str], salt: ByteArray) -> None:
    """Refuse a repeated id. Equal ids have equal salts (a MAC of the id), so duplicates are
    found by sorting the salts' first 8 bytes (no dict of a million strings); the few equal
    prefixes are confirmed on the ids themselves."""
    prefix = np.ascontiguousarray(salt[:, :8]).view(np.uint64).ravel()
    order = np.argsort(prefix, kind="stable")
    same = np.flatnonzero(prefix[order[1:]] == prefix[order[:-1]])
    for k in same.tolist():
        first, second = account_ids[int(order[k])], account_ids[int(order[k + 1])]
        if first == second:
            raise InputError("accounts", f"duplicate account id {first!r}")


def tree_height(n_accounts: int, min_height: int) -> int:
    if not 0 <= min_height <= MAX_HEIGHT:
        raise InputError("min_height", f"must lie in [0, {MAX_HEIGHT}], got {min_height}")
    height = max(min_height, int(np.ceil(np.log2(max(n_accounts, 1)))), 1)
    if height > MAX_HEIGHT:
        raise InputError("accounts", f"{n_accounts} accounts need a tree taller than {MAX_HEIGHT}")
    return height


def leaf_positions(secret: bytes, asset: str, *, height: int) -> IntArray:
    """Position of every leaf, accounts first then padding, shape (2**height,): a permutation
    seeded by the venue's secret (deterministic, so a proof can be regenerated on demand)."""
    seed = int.from_bytes(keyed(secret, b"order", asset.encode()), "big")
    order: IntArray = np.random.default_rng(seed).permutation(1 << height).astype(np.int64)
    return order


def parent_level(hashes: ByteArray, sums: UnitArray) -> tuple[ByteArray, UnitArray]:
    """One level up: node hashes over (h_l, s_l, h_r, s_r) and node sums, for the whole level.
    Shapes (2m, 32), (2m,) -> (m, 32), (m,)."""
    parent_sums: UnitArray = sums[0::2] + sums[1::2]  # no wrap: every sum <= the checked total
    return node_hashes(hashes, sum_fields(sums)), parent_sums


@dataclass(frozen=True, slots=True, kw_only=True)
class MerkleSumTree:
    """One asset's tree. `hashes[l]` (2**(height-l), 32) bytes and `sums[l]` (2**(height-l),) u64
    minor units for level l (0 = leaves, height = root); `position[row]` the leaf of account row."""

    asset: str
    account_ids: tuple[str, ...]
    hashes: tuple[ByteArray, ...]
    sums: tuple[UnitArray, ...]
    position: IntArray
    index: dict[str, int] = field(compare=False, repr=False)

    @property
    def height(self) -> int:
        return len(self.hashes) - 1

    @property
    def root_hash(self) -> bytes:
        root: bytes = self.hashes[-1][0].tobytes()
        return root

    @property
    def total_units(self) -> int:
        return int(self.sums[-1][0])

    def root(self) -> dict[str, Any]:
        """What the venue publishes for this asset."""
        return {
            "format": FORMAT,
            "asset": self.asset,
            "root_hash": self.root_hash.hex(),
            "total_units": self.total_units,
            "height": self.height,
        }

    def leaf_hash_of(self, account_id: str) -> bytes:
        leaf: bytes = self.hashes[0][self.position[self.row(account_id)]].tobytes()
        return leaf

    def row(self, account_id: str) -> int:
        if not self.index and self.account_ids:  # built on the first lookup, not at build time
            self.index.update(zip(self.account_ids, range(len(self.account_ids)), strict=True))
        try:
            return self.index[account_id]
        except KeyError:
            raise InputError("account", f"no account {account_id!r} in the {self.asset} tree") from None


def build_tree(
    *,
    asset: str,
    account_ids: Sequence[str],
    amount_units: npt.ArrayLike,
    secret: bytes,
    min_height: int = 0,
) -> MerkleSumTree:
    """Build one asset's Merkle-sum tree over `amount_units` (n,), exact minor units >= 0."""
    check_secret(secret)
    ids = tuple(account_ids)
    amounts = check_amounts(asset, ids, amount_units)
    height = tree_height(len(ids), min_height)
    order = leaf_positions(secret, asset, height=height)
    capacity = 1 << height
    leaves = np.empty((capacity, HASH_BYTES), dtype=np.uint8)
    leaf_sums = np.zeros(capacity, dtype=np.uint64)
    position = order[: len(ids)]
    ids_packed = encoded_ids(ids)
    account_salts = salts(secret, asset, ids_packed)
    check_unique(ids, account_salts)
    leaves[position] = leaf_hashes(account_salts, sum_fields(amounts), ids_packed)
    leaf_sums[position] = amounts
    padding = order[len(ids) :]
    if padding.size:
        zeros = sum_fields(np.zeros(padding.size, dtype=np.uint64))
        leaves[padding] = leaf_hashes(fillers(secret, asset, padding), zeros, None)
    hashes, sums = [leaves], [leaf_sums]
    for _ in range(height):
        parent_hashes, parent_sums = parent_level(hashes[-1], sums[-1])
        hashes.append(parent_hashes)
        sums.append(parent_sums)
    return MerkleSumTree(
        asset=asset,
        account_ids=ids,
        hashes=tuple(hashes),
        sums=tuple(sums),
        position=position,
        index={},
    )


def inclusion_proof(tree: MerkleSumTree, *, account_id: str, secret: bytes) -> dict[str, Any]:
    """The account's path as the JSON document `crossmargin.verifier` checks: its salt, amount,
    leaf index and, bottom-up, each sibling's hash and sum. Sibling sums are shown in the clear
    (Summa v1 hides them in a zk-SNARK; the committed tree, `committed`, hides them here)."""
    row = tree.row(account_id)
    index = int(tree.position[row])
    path = []
    for level in range(tree.height):
        sibling = (index >> level) ^ 1
        path.append(
            {
                "hash": tree.hashes[level][sibling].tobytes().hex(),
                "sum_units": int(tree.sums[level][sibling]),
            }
        )
    salt = salt_of(secret, tree.asset, account_id)
    return {
        "format": FORMAT,
        "asset": tree.asset,
        "account": account_id,
        "salt": salt.hex(),
        "amount_units": int(tree.sums[0][index]),
        "leaf_index": index,
        "path": path,
        "root": tree.root(),
    }
