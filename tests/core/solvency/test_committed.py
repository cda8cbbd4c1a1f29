"""Hidden sums: Pedersen commitments and 64-bit range proofs (ecc, libsecp256k1-zkp format).
A negative "dummy" account cannot obtain a valid range proof, so it cannot shrink the total."""

from __future__ import annotations

import copy
import hashlib

import numpy as np
import pytest

pytest.importorskip("ecc")

from ecc.curves import sum_var
from ecc.ecc import rangeproof
from ecc.exceptions import EccValueError

from crossmargin import verifier
from crossmargin.core.solvency import committed
from crossmargin.core.solvency.encoding import leaf_hash, node_hash, salt_of

SECRET = bytes(range(32, 64))
AMOUNTS = [5, 0, 123_456_789, 2**40, 7]


@pytest.fixture(scope="module")
def tree() -> committed.CommittedTree:
    return committed.build_committed_tree(
        asset="ETH", account_ids=[f"u{i}" for i in range(5)], amount_units=np.array(AMOUNTS), secret=SECRET
    )


def test_range_proof_root_opens_to_the_exact_total(tree):
    root = tree.root()
    assert root["total_units"] == sum(AMOUNTS)
    blind = int(root["total_blind"], 16)
    assert committed.encode(committed.commit(blind, sum(AMOUNTS))) == bytes.fromhex(root["root_commitment"])


def test_range_proof_every_account_verifies_standalone(tree):
    for i, account in enumerate(tree.account_ids):
        proof = committed.inclusion_proof(tree, account_id=account, secret=SECRET)
        verdict = verifier.verify_inclusion(proof, {"assets": {"ETH": tree.root()}})
        assert verdict.valid, verdict.reason
        assert verdict.amount_units == AMOUNTS[i]
        assert "range_proof" in proof["leaf"] and all("range_proof" in s for s in proof["path"])
        assert "sum_units" not in str(proof["path"])  # sibling sums stay hidden


def test_range_proof_tampered_amount_or_commitment_fails(tree):
    proof = committed.inclusion_proof(tree, account_id="u2", secret=SECRET)
    forged = copy.deepcopy(proof)
    forged["leaf"]["amount_units"] += 1
    assert not verifier.verify_inclusion(forged, tree.root()).valid
    swapped = copy.deepcopy(proof)  # a sibling's commitment replaced by another valid one
    swapped["path"][0]["commitment"] = proof["path"][1]["commitment"]
    swapped["path"][0]["range_proof"] = proof["path"][1]["range_proof"]
    assert not verifier.verify_inclusion(swapped, tree.root()).valid
    missing = copy.deepcopy(proof)
    del missing["path"][1]["range_proof"]
    verdict = verifier.verify_inclusion(missing, tree.root())
    assert not verdict.valid and "no range proof" in verdict.reason


def test_range_proof_negative_leaf_cannot_be_proven():
    generator = committed.value_generator()
    negative = committed.GROUP_ORDER - 5  # -5 mod n: what a dummy account of liability -5 commits to
    with pytest.raises(EccValueError):
        rangeproof.sign(7, negative, bytes(32), generator, min_bits=64)
    # a proof made for another value does not hold for the negative commitment
    other = rangeproof.sign(7, 5, bytes(32), generator, min_bits=64)
    assert not rangeproof.verify(committed.commit(7, negative), other, generator)


def test_range_proof_dummy_account_attack_is_caught():
    """A venue adds a dummy leaf committing to -1,000 beside a real one of 1,000, so the root opens
    to 0. The honest user's path shows the dummy as its sibling; no range proof the venue can
    make holds for that commitment, so the verifier rejects the path."""
    asset, n = "BTC", committed.GROUP_ORDER
    real_blind, dummy_blind = 11, 13
    real = committed.commit(real_blind, 1000)
    dummy = committed.commit(dummy_blind, n - 1000)
    salt = salt_of(SECRET, asset, "alice")
    real_hash = leaf_hash(salt, committed.encode(real), "alice")
    dummy_hash = leaf_hash(bytes(32), committed.encode(dummy), "")
    root_point = sum_var([real, dummy])
    root = {
        "format": "crossmargin-merkle-sum-zk-v1",
        "asset": asset,
        "root_hash": node_hash(real_hash, committed.encode(real), dummy_hash, committed.encode(dummy)).hex(),
        "root_commitment": committed.encode(root_point).hex(),
        "total_units": 0,
        "total_blind": format((real_blind + dummy_blind) % n, "064x"),
        "height": 1,
    }
    best_forgery = committed.range_proof(SECRET, asset, blind=dummy_blind, value=0, label=b"x")
    proof = {
        "format": root["format"],
        "asset": asset,
        "account": "alice",
        "salt": salt.hex(),
        "leaf_index": 0,
        "leaf": {
            "amount_units": 1000,
            "blind": format(real_blind, "064x"),
            "commitment": committed.encode(real).hex(),
            "range_proof": committed.range_proof(
                SECRET, asset, blind=real_blind, value=1000, label=b"a"
            ).hex(),
        },
        "path": [
            {
                "hash": dummy_hash.hex(),
                "commitment": committed.encode(dummy).hex(),
                "range_proof": best_forgery.hex(),
            }
        ],
    }
    verdict = verifier.verify_inclusion(proof, root)
    assert not verdict.valid
    assert "sibling's range proof does not hold" in verdict.reason


def test_range_proof_proves_exactly_zero_to_two_to_the_64():
    data = committed.range_proof(SECRET, "BTC", blind=3, value=2**64 - 1, label=b"top")
    parsed = rangeproof.RangeProof.parse(data)
    assert (parsed.min_value or 0, parsed.max_value) == (0, 2**64 - 1)
    assert rangeproof.verify(
        committed.commit(3, 2**64 - 1), data, committed.value_generator(), extra_commit=b"BTC"
    )


def test_range_proof_debt_cover_holds_and_a_shortfall_cannot_be_proven():
    proof = committed.debt_cover_proof(
        SECRET, account_id="bob", collateral_micro_usd=5_000_000, debt_micro_usd=4_999_999
    )
    assert verifier.verify_debt_cover(proof).valid
    forged = copy.deepcopy(proof)
    forged["debt"]["micro_usd"] = 1
    assert not verifier.verify_debt_cover(forged).valid
    with pytest.raises(committed.InputError, match="does not cover"):
        committed.debt_cover_proof(SECRET, account_id="bob", collateral_micro_usd=10, debt_micro_usd=11)
    # a venue swapping in a larger collateral commitment with a proof made for it: the margin
    # proof was made against the true C_V - C_D and fails for the swapped one
    bigger = committed.debt_cover_proof(
        SECRET, account_id="bob", collateral_micro_usd=9_000_000, debt_micro_usd=8_999_999
    )
    mixed = copy.deepcopy(proof)
    mixed["debt"] = bigger["debt"]
    assert not verifier.verify_debt_cover(mixed).valid
