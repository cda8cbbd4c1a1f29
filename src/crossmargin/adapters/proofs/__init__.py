"""Proof-of-liabilities files: published roots, the venue's private trees, custody files.

DIR/roots.json                     public: format, per asset root hash, total units, decimals, height
DIR/private/secret.hex             the venue's secret (salts, blinds, leaf order); never publish
DIR/private/tree-<ASSET>.npz       one tree's levels, so an inclusion proof needs no rebuild
custody file (YAML/JSON)           locations, asset volatilities, collateral held away per account,
                                   the venue's reserves per asset and location (docs/solvency.md)

Everything is written to a temporary name and renamed, so a failed run leaves nothing that looks
complete.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crossmargin.adapters.files.staging import cannot_write, staging_beside
from crossmargin.core.solvency.merkle_sum import MerkleSumTree
from crossmargin.errors import BookFileError, InputError

if TYPE_CHECKING:  # the committed tree needs the `proofs` extra (ecc): imported where used
    from crossmargin.core.solvency.committed import CommittedTree

ROOTS = "roots.json"
PRIVATE = "private"
SECRET = "secret.hex"


def read_secret(path: Path) -> bytes:
    try:
        return bytes.fromhex(path.read_text(encoding="utf-8").strip())
    except (OSError, ValueError) as error:
        raise BookFileError(str(path), "secret", f"cannot read a hex secret: {error}") from None


def new_secret() -> bytes:
    return secrets.token_bytes(32)


def _tree_arrays(tree: MerkleSumTree | CommittedTree) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {
        "account_ids": np.array(tree.account_ids, dtype=str),
        "position": tree.position,
    }
    if isinstance(tree, MerkleSumTree):
        for level, (h, s) in enumerate(zip(tree.hashes, tree.sums, strict=True)):
            arrays[f"hashes_{level}"] = h
            arrays[f"sums_{level}"] = s
        return arrays
    for level in range(tree.height + 1):
        arrays[f"hashes_{level}"] = np.frombuffer(b"".join(tree.hashes[level]), np.uint8).reshape(-1, 32)
        arrays[f"commitments_{level}"] = np.frombuffer(b"".join(tree.commitments[level]), np.uint8).reshape(
            -1, 33
        )
        arrays[f"sums_{level}"] = tree.values[level]
        blinds = b"".join(b.to_bytes(32, "big") for b in tree.blinds[level])
        arrays[f"blinds_{level}"] = np.frombuffer(blinds, np.uint8).reshape(-1, 32)
    return arrays


def write_proof_dir(
    out: Path,
    *,
    trees: Mapping[str, MerkleSumTree | CommittedTree],
    decimals: Mapping[str, int],
    secret: bytes,
    statement: Mapping[str, Any],
) -> dict[str, Any]:
    """Write roots.json and private/ into `out` atomically (a sibling temp dir, then renamed
    over any previous content); returns the published roots document."""
    if out.exists() and any(out.iterdir()) and not (out / ROOTS).is_file():
        # never delete a directory this command did not write (an --out . would take the cwd)
        raise InputError("--out", f"{out} exists and is not a proof directory (no {ROOTS}); choose a new one")
    roots = {
        **statement,
        "assets": {a: {**t.root(), "decimals": decimals[a]} for a, t in trees.items()},
    }
    staging = staging_beside(out)
    try:
        private = staging / PRIVATE
        private.mkdir(mode=0o700)
        (private / SECRET).write_text(secret.hex() + "\n", encoding="utf-8")
        os.chmod(private / SECRET, 0o600)
        for asset, tree in trees.items():
            np.savez(private / f"tree-{asset}.npz", **_tree_arrays(tree))  # type: ignore[arg-type]
        (staging / ROOTS).write_text(json.dumps(roots, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except OSError as error:  # no permission, a full disk: refused naming --out, nothing left
        shutil.rmtree(staging, ignore_errors=True)
        raise cannot_write(out, error) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return roots


def read_roots(path: Path) -> dict[str, Any]:
    try:
        roots: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BookFileError(str(path), "roots", f"cannot read: {error}") from None
    return roots


def read_tree(directory: Path, asset: str) -> MerkleSumTree | CommittedTree:
    """A tree written by `write_proof_dir`."""
    path = directory / PRIVATE / f"tree-{asset}.npz"
    if not path.exists():
        raise InputError("asset", f"no tree for asset {asset!r} in {directory}")
    with np.load(path, allow_pickle=False) as data:
        ids = tuple(str(a) for a in data["account_ids"].tolist())
        levels = sum(1 for k in data.files if k.startswith("hashes_"))
        position = data["position"]
        if "commitments_0" not in data.files:
            return MerkleSumTree(
                asset=asset,
                account_ids=ids,
                hashes=tuple(data[f"hashes_{level}"] for level in range(levels)),
                sums=tuple(data[f"sums_{level}"] for level in range(levels)),
                position=position,
                index={a: i for i, a in enumerate(ids)},
            )
        from crossmargin.core.solvency.committed import CommittedTree

        return CommittedTree(
            asset=asset,
            account_ids=ids,
            hashes=tuple([r.tobytes() for r in data[f"hashes_{level}"]] for level in range(levels)),
            commitments=tuple([r.tobytes() for r in data[f"commitments_{level}"]] for level in range(levels)),
            values=tuple(data[f"sums_{level}"] for level in range(levels)),
            blinds=tuple(
                [int.from_bytes(r.tobytes(), "big") for r in data[f"blinds_{level}"]]
                for level in range(levels)
            ),
            position=position,
            index={a: i for i, a in enumerate(ids)},
        )
