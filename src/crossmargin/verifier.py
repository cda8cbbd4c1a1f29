"""Standalone verifier of crossmargin's liability inclusion proofs.

Imports nothing of crossmargin (an import-linter contract holds it to that) and only the Python
standard library, plus the `ecc` library for proofs with hidden sums. A user copies this one file,
takes their proof from the venue and the roots the venue published, and runs

    python verifier.py PROOF.json ROOTS.json       (one proof, or `prove inclusion`'s bundle)

(or `crossmargin verify PROOF.json --roots ROOTS.json`). Exit code 0: the proof holds; 1: it does
not, with the reason; 2: the files cannot be read, or are of a format (version) this verifier
does not know. A bundle's debt-cover proof is checked against the same published roots and the
same leaves as the bundle's inclusion proofs (`verify_debt_cover`, `cover_binding`).

What a valid proof shows (docs/solvency.md): the leaf commits to this account id and this
amount; hashing up the path, with both children's sums (or commitments) inside every parent's
hash, gives exactly the published root hash; the root's sum is the published total. With hidden
sums it also shows every commitment on the path lies in [0, 2**64) (so no negative "dummy"
account shrinks the total) and that the root opens to the published total.

The byte layout (re-implemented here on purpose, independently of the builder):

    leaf  = SHA-256(0x00 ‖ salt ‖ amount u64 BE ‖ account id)                    merkle-sum-v1
    leaf  = SHA-256(0x00 ‖ salt ‖ C (33 B) ‖ account id)                         merkle-sum-zk-v1
    node  = SHA-256(0x01 ‖ h_l ‖ s_l u64 BE ‖ h_r ‖ s_r u64 BE)                  merkle-sum-v1
    node  = SHA-256(0x01 ‖ h_l ‖ C_l ‖ h_r ‖ C_r),  C = C_l + C_r                merkle-sum-zk-v1

The leaf is the left child at a level when bit `level` of its index is 0.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PLAIN = "crossmargin-merkle-sum-v1"
HIDDEN = "crossmargin-merkle-sum-zk-v1"
U64 = 2**64


@dataclass(frozen=True, slots=True)
class Verdict:
    valid: bool
    reason: str
    asset: str = ""
    account: str = ""
    amount_units: int | None = None


class MalformedProofError(ValueError):
    """A document that is not a proof or a root of a known format (a field is missing or wrong)."""


def _field(document: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(document, dict) or name not in document:
        raise MalformedProofError(f"missing field {name!r}")
    value = document[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise MalformedProofError(f"field {name!r} has the wrong type")
    return value


def _hex(document: dict[str, Any], name: str, size: int) -> bytes:
    text = _field(document, name, str)
    try:
        data = bytes.fromhex(text)
    except ValueError:
        raise MalformedProofError(f"field {name!r} is not hex") from None
    if size and len(data) != size:
        raise MalformedProofError(f"field {name!r} must be {size} bytes")
    return data


def _units(document: dict[str, Any], name: str) -> int:
    value = _field(document, name, int)
    if not 0 <= value < U64:
        raise MalformedProofError(f"field {name!r} must lie in [0, 2**64)")
    return int(value)


def published_root(roots: dict[str, Any], asset: str) -> dict[str, Any]:
    """The root of `asset` from a published roots document ({"assets": {asset: root}}) or a
    single root document."""
    if isinstance(roots, dict) and "assets" in roots:
        assets = _field(roots, "assets", dict)
        if asset not in assets:
            raise MalformedProofError(f"the published roots have no asset {asset!r}")
        root = assets[asset]
    else:
        root = roots
    if not isinstance(root, dict):
        raise MalformedProofError("a root must be an object")
    return root


def verify_inclusion(proof: dict[str, Any], roots: dict[str, Any]) -> Verdict:
    """Check `proof` against the published `roots` (never against the proof's own copy)."""
    proof_format = _field(proof, "format", str)
    if proof_format not in (PLAIN, HIDDEN):
        raise MalformedProofError(
            f"unknown proof format {proof_format!r}: this verifier reads {PLAIN} and {HIDDEN}"
        )
    asset = _field(proof, "asset", str)
    root = published_root(roots, asset)
    if _field(root, "format", str) != proof_format:
        return Verdict(False, "the proof and the published root are of different formats", asset)
    if proof_format == PLAIN:
        return _verify_plain(proof, root, asset)
    if proof_format == HIDDEN:
        return _verify_hidden(proof, root, asset)
    raise MalformedProofError(f"unknown format {proof_format!r}")


def _path(proof: dict[str, Any], root: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    path = _field(proof, "path", list)
    height = _field(root, "height", int)
    index = _field(proof, "leaf_index", int)
    if len(path) != height:
        raise MalformedProofError(f"the path has {len(path)} siblings, the published tree height is {height}")
    if not 0 <= index < 2**height:
        raise MalformedProofError("leaf_index outside the tree")
    return path, index


def _verify_plain(proof: dict[str, Any], root: dict[str, Any], asset: str) -> Verdict:
    account = _field(proof, "account", str)
    amount = _units(proof, "amount_units")
    salt = _hex(proof, "salt", 32)
    path, index = _path(proof, root)
    node = hashlib.sha256(b"\x00" + salt + amount.to_bytes(8, "big") + account.encode()).digest()
    total = amount
    for level, step in enumerate(path):
        sibling, sibling_sum = _hex(step, "hash", 32), _units(step, "sum_units")
        if (index >> level) & 1:
            message = sibling + sibling_sum.to_bytes(8, "big") + node + total.to_bytes(8, "big")
        else:
            message = node + total.to_bytes(8, "big") + sibling + sibling_sum.to_bytes(8, "big")
        node = hashlib.sha256(b"\x01" + message).digest()
        total += sibling_sum
        if total >= U64:
            return Verdict(False, f"the sum overflows 64 bits at level {level + 1}", asset, account)
    if node != _hex(root, "root_hash", 32):
        return Verdict(False, "the path does not hash to the published root", asset, account)
    if total != _units(root, "total_units"):
        return Verdict(False, "the path's sum differs from the published total", asset, account)
    return Verdict(True, "included", asset, account, amount)


def _verify_hidden(proof: dict[str, Any], root: dict[str, Any], asset: str) -> Verdict:
    try:
        from ecc.curves import sum_var
        from ecc.ecc import pedersen, rangeproof
    except ImportError:  # pragma: no cover - the optional dependency
        raise MalformedProofError(
            "hidden-sum proofs need the ecc library: pip install ecc[secp256k1]"
        ) from None
    generator = pedersen.second_generator()
    account = _field(proof, "account", str)
    salt = _hex(proof, "salt", 32)
    leaf = _field(proof, "leaf", dict)
    amount = _units(leaf, "amount_units")
    blind = int.from_bytes(_hex(leaf, "blind", 32), "big")
    path, index = _path(proof, root)

    def point(document: dict[str, Any]) -> tuple[bytes, Any]:
        encoded = _hex(document, "commitment", 33)
        try:
            return encoded, pedersen.commitment_from_octets_var(encoded)
        except ValueError:
            raise MalformedProofError("a commitment is not a point of secp256k1") from None

    def in_range(document: dict[str, Any], commitment: Any, where: str) -> str:
        if "range_proof" not in document:
            return f"no range proof for the {where}"
        data = _hex(document, "range_proof", 0)
        try:
            parsed = rangeproof.RangeProof.parse(data)
        except ValueError:
            return f"the {where}'s range proof cannot be parsed"
        low = parsed.min_value or 0
        if low != 0 or parsed.max_value >= U64:
            return f"the {where}'s range proof proves [{low}, {parsed.max_value}], not [0, 2**64)"
        if not rangeproof.verify(commitment, parsed, generator, extra_commit=asset.encode()):
            return f"the {where}'s range proof does not hold (a negative or out-of-range value?)"
        return ""

    encoded, commitment = point(leaf)
    if not pedersen.verify(blind, amount, commitment, generator):
        return Verdict(False, "the leaf commitment does not open to the amount", asset, account)
    problem = in_range(leaf, commitment, "leaf")
    if problem:
        return Verdict(False, problem, asset, account)
    node = hashlib.sha256(b"\x00" + salt + encoded + account.encode()).digest()
    for level, step in enumerate(path):
        sibling_encoded, sibling = point(step)
        problem = in_range(step, sibling, f"level-{level} sibling")
        if problem:
            return Verdict(False, problem, asset, account)
        sibling_hash = _hex(step, "hash", 32)
        if (index >> level) & 1:
            message = sibling_hash + sibling_encoded + node + encoded
        else:
            message = node + encoded + sibling_hash + sibling_encoded
        node = hashlib.sha256(b"\x01" + message).digest()
        commitment = sum_var([commitment, sibling])
        encoded = bytes(pedersen.bytes_from_commitment_var(commitment))
    if node != _hex(root, "root_hash", 32) or encoded != _hex(root, "root_commitment", 33):
        return Verdict(False, "the path does not hash to the published root", asset, account)
    total = _units(root, "total_units")
    total_blind = int.from_bytes(_hex(root, "total_blind", 32), "big")
    if not pedersen.verify(total_blind, total, commitment, generator):
        return Verdict(False, "the published root does not open to the published total", asset, account)
    return Verdict(True, "included; every value on the path lies in [0, 2**64)", asset, account, amount)


DEBT_COVER = "crossmargin-debt-cover-v2"
BUNDLE = "crossmargin-proof-bundle-v2"


def leaf_hash(proof: dict[str, Any]) -> bytes:
    """The leaf an inclusion proof starts from (what a debt-cover proof is bound to)."""
    proof_format = _field(proof, "format", str)
    account, salt = _field(proof, "account", str), _hex(proof, "salt", 32)
    if proof_format == PLAIN:
        field = _units(proof, "amount_units").to_bytes(8, "big")
    elif proof_format == HIDDEN:
        field = _hex(_field(proof, "leaf", dict), "commitment", 33)
    else:
        raise MalformedProofError(f"unknown format {proof_format!r}")
    return hashlib.sha256(b"\x00" + salt + field + account.encode()).digest()


def _framed(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def cover_binding(account: str, bound: list[tuple[str, bytes, bytes, int]]) -> bytes:
    """SHA-256(len ‖ format ‖ len ‖ account ‖ Σ_asset sorted (len ‖ asset ‖ root hash ‖ leaf hash
    ‖ debt units u64 BE)), len a u32 BE byte count: every range proof of a debt-cover proof
    commits to it."""
    message = _framed(DEBT_COVER.encode()) + _framed(account.encode())
    for asset, root_hash, leaf, debt_units in sorted(bound):
        message += _framed(asset.encode()) + root_hash + leaf + debt_units.to_bytes(8, "big")
    return hashlib.sha256(message).digest()


def verify_bundle(bundle: dict[str, Any], roots: dict[str, Any]) -> list[Verdict]:
    """Every inclusion proof of a `crossmargin prove inclusion` bundle against the published
    roots, and its debt-cover proof, if any, against the same roots and the same leaves."""
    bundle_format = bundle.get("format") if isinstance(bundle, dict) else None
    if bundle_format is None:
        if isinstance(bundle, dict) and "debt_cover" in bundle:
            raise MalformedProofError(
                "a version-1 proof bundle: its debt-cover proof is not bound to the published roots;"
                f" ask the venue for a {BUNDLE} bundle"
            )
    elif bundle_format != BUNDLE:
        raise MalformedProofError(
            f"unknown proof bundle format {bundle_format!r}: this verifier reads {BUNDLE}"
        )
    proofs = _field(bundle, "proofs", list)
    verdicts = [verify_inclusion(p, roots) for p in proofs]
    if "debt_cover" in bundle:
        verdicts.append(verify_debt_cover(_field(bundle, "debt_cover", dict), roots, proofs))
    return verdicts


def _bound_leaves(
    document: dict[str, Any], roots: dict[str, Any], proofs: list[dict[str, Any]], account: str
) -> tuple[list[tuple[str, bytes, bytes, int]], str]:
    """The debt-cover proof's bound leaves, checked against the published roots (every asset,
    the same root hashes) and the bundle's inclusion proofs (the same leaves); a reason if not."""
    entries = _field(document, "liabilities", list)
    bound = []
    for entry in entries:
        asset = _field(entry, "asset", str)
        bound.append(
            (asset, _hex(entry, "root_hash", 32), _hex(entry, "leaf_hash", 32), _units(entry, "debt_units"))
        )
    published = _field(roots, "assets", dict) if isinstance(roots, dict) and "assets" in roots else {}
    assets = sorted(a for a, _, _, _ in bound)
    if len(set(assets)) != len(assets):
        return bound, "the debt-cover proof names an asset twice"
    if published and assets != sorted(published):
        missing = sorted(set(published) - set(assets))
        return bound, f"the debt-cover proof is not bound to every published asset (missing {missing})"
    leaves = {}
    for proof in proofs:
        if _field(proof, "account", str) == account:
            leaves[_field(proof, "asset", str)] = leaf_hash(proof)
    for asset, root_hash, leaf, _ in bound:
        if root_hash != _hex(published_root(roots, asset), "root_hash", 32):
            return bound, f"the debt-cover proof is bound to a {asset} root other than the published one"
        if asset not in leaves:
            return (
                bound,
                f"the bundle has no {asset} inclusion proof for the leaf the debt-cover proof is bound to",
            )
        if leaves[asset] != leaf:
            return bound, f"the debt-cover proof is bound to a {asset} leaf other than the inclusion proof's"
    return bound, ""


def verify_debt_cover(
    document: dict[str, Any], roots: dict[str, Any], proofs: list[dict[str, Any]]
) -> Verdict:
    """An account's proof that its haircut collateral covers its debt, bound to the published
    roots and to its leaves in them (the inclusion `proofs` of the same bundle): both
    commitments open to the stated values and are in [0, 2**64), C_V − C_D is in [0, 2**64)
    (so V >= D), and every range proof commits to `cover_binding` of those roots, leaves and
    debts."""
    try:
        from ecc.curves import secp256k1, sum_var
        from ecc.ecc import pedersen, rangeproof
    except ImportError:  # pragma: no cover - the optional dependency
        raise MalformedProofError(
            "debt-cover proofs need the ecc library: pip install ecc[secp256k1]"
        ) from None
    cover_format = _field(document, "format", str)
    if cover_format != DEBT_COVER:
        raise MalformedProofError(
            f"unknown debt-cover format {cover_format!r}: this verifier reads {DEBT_COVER}"
        )
    generator = pedersen.second_generator()
    account = _field(document, "account", str)
    bound, problem = _bound_leaves(document, roots, proofs, account)
    if problem:
        return Verdict(False, problem, account=account)
    tag = cover_binding(account, bound)
    points = {}
    for side in ("collateral", "debt"):
        part = _field(document, side, dict)
        encoded = _hex(part, "commitment", 33)
        try:
            point = pedersen.commitment_from_octets_var(encoded)
        except ValueError:
            raise MalformedProofError(f"the {side} commitment is not a point") from None
        value = _units(part, "micro_usd")
        blind = int.from_bytes(_hex(part, "blind", 32), "big")
        if not pedersen.verify(blind, value, point, generator):
            return Verdict(False, f"the {side} commitment does not open to the stated value", account=account)
        if not rangeproof.verify(point, _hex(part, "range_proof", 0), generator, extra_commit=tag):
            return Verdict(
                False,
                f"the {side} range proof does not hold for these roots, leaves and debts",
                account=account,
            )
        points[side] = point
    margin = sum_var([points["collateral"], secp256k1.negate(points["debt"])])
    proof = _hex(_field(document, "margin", dict), "range_proof", 0)
    parsed = rangeproof.RangeProof.parse(proof)
    if (parsed.min_value or 0) != 0 or parsed.max_value >= U64:
        return Verdict(False, "the margin range proof does not prove [0, 2**64)", account=account)
    if not rangeproof.verify(margin, parsed, generator, extra_commit=tag):
        return Verdict(
            False, "collateral does not cover debt (the margin range proof fails)", account=account
        )
    return Verdict(True, "haircut collateral covers debt, bound to the published roots", account=account)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        sys.stderr.write("usage: python verifier.py PROOF.json ROOTS.json\n")
        return 2
    try:
        proof = json.loads(Path(args[0]).read_text(encoding="utf-8"))
        roots = json.loads(Path(args[1]).read_text(encoding="utf-8"))
        if isinstance(proof, dict) and ("proofs" in proof or "format" not in proof):
            verdicts = verify_bundle(proof, roots)
        else:
            verdicts = [verify_inclusion(proof, roots)]
    except (OSError, ValueError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    for verdict in verdicts:
        sys.stdout.write(
            json.dumps(
                {
                    "valid": verdict.valid,
                    "reason": verdict.reason,
                    "asset": verdict.asset,
                    "account": verdict.account,
                    "amount_units": verdict.amount_units,
                }
            )
            + "\n"
        )
    return 0 if all(v.valid for v in verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
