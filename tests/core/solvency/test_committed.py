"""Hidden sums: Pedersen commitments and 64-bit range proofs (ecc, libsecp256k1-zkp format).
A negative "dummy" account cannot obtain a valid range proof, so it cannot shrink the total."""

from __future__ import annotations

import copy

import numpy as np
import pytest

pytest.importorskip("ecc")

from ecc.curves import sum_var
from ecc.ecc import rangeproof
from ecc.exceptions import EccValueError

from crossmargin import verifier
from crossmargin.core.solvency import committed, encoding, merkle_sum
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


def _cover_bundle(amounts_btc=(5, 7, 9), *, collateral=5_000_000, debt=4_999_999):
    """bob's bundle: inclusion proofs in a BTC and a USDC tree, and a debt-cover proof bound to
    both leaves and both published roots; returns (bundle, published roots, trees)."""
    ids = ["alice", "bob", "carol"]
    trees = {
        "BTC": merkle_sum.build_tree(
            asset="BTC", account_ids=ids, amount_units=np.array(amounts_btc), secret=SECRET
        ),
        "USDC": merkle_sum.build_tree(
            asset="USDC", account_ids=ids, amount_units=np.array([0, 0, 3]), secret=SECRET
        ),
    }
    debts = {"BTC": 0, "USDC": 40_000_000_000}
    bound = [
        committed.BoundLeaf(
            asset=a, root_hash=t.root_hash, leaf_hash=t.leaf_hash_of("bob"), debt_units=debts[a]
        )
        for a, t in trees.items()
    ]
    cover = committed.debt_cover_proof(
        SECRET, account_id="bob", collateral_micro_usd=collateral, debt_micro_usd=debt, bound=bound
    )
    proofs = [merkle_sum.inclusion_proof(t, account_id="bob", secret=SECRET) for t in trees.values()]
    bundle = {"format": verifier.BUNDLE, "account": "bob", "proofs": proofs, "debt_cover": cover}
    return bundle, {"assets": {a: t.root() for a, t in trees.items()}}, trees


def _cover_verdict(bundle, roots):
    verdicts = verifier.verify_bundle(bundle, roots)
    return verdicts[-1], verdicts[:-1]


def test_range_proof_debt_cover_bound_to_the_roots_holds():
    bundle, roots, _ = _cover_bundle()
    cover, inclusions = _cover_verdict(bundle, roots)
    assert cover.valid and "bound to the published roots" in cover.reason
    assert all(v.valid for v in inclusions) and [v.amount_units for v in inclusions] == [7, 0]
    with pytest.raises(committed.InputError, match="does not cover"):
        committed.debt_cover_proof(
            SECRET, account_id="bob", collateral_micro_usd=10, debt_micro_usd=11, bound=[]
        )


def test_range_proof_debt_cover_against_a_swapped_root_fails():
    bundle, _, _ = _cover_bundle()
    _, other_roots, _ = _cover_bundle(amounts_btc=(5, 7, 10))  # carol's BTC differs: another root
    cover, inclusions = _cover_verdict(bundle, other_roots)
    assert (
        not cover.valid
        and cover.reason == "the debt-cover proof is bound to a BTC root other than the published one"
    )
    assert not inclusions[0].valid  # the BTC path does not reach the swapped root either
    # a venue re-pointing the cover at the other root breaks its range proofs
    _, _roots, _ = _cover_bundle()
    forged = copy.deepcopy(bundle)
    forged["debt_cover"]["liabilities"][0]["root_hash"] = other_roots["assets"]["BTC"]["root_hash"]
    cover, _ = _cover_verdict(forged, other_roots)
    assert not cover.valid


def test_range_proof_debt_cover_with_an_altered_balance_fails():
    bundle, roots, _ = _cover_bundle()
    forged = copy.deepcopy(bundle)
    forged["proofs"][0]["amount_units"] = 6  # bob's BTC leaf shown smaller
    cover, inclusions = _cover_verdict(forged, roots)
    assert not inclusions[0].valid and inclusions[0].reason == "the path does not hash to the published root"
    assert (
        not cover.valid
        and cover.reason == "the debt-cover proof is bound to a BTC leaf other than the inclusion proof's"
    )
    # and the cover cannot be re-bound to the altered leaf: its range proofs commit to the old one
    forged["debt_cover"]["liabilities"][0]["leaf_hash"] = verifier.leaf_hash(forged["proofs"][0]).hex()
    cover, _ = _cover_verdict(forged, roots)
    assert not cover.valid
    assert cover.reason == "the collateral range proof does not hold for these roots, leaves and debts"


def test_range_proof_debt_cover_with_an_altered_debt_fails():
    bundle, roots, _ = _cover_bundle()
    smaller = copy.deepcopy(bundle)
    smaller["debt_cover"]["debt"]["micro_usd"] = 1
    cover, _ = _cover_verdict(smaller, roots)
    assert not cover.valid and cover.reason == "the debt commitment does not open to the stated value"
    hidden = copy.deepcopy(bundle)
    hidden["debt_cover"]["liabilities"][1]["debt_units"] = 0  # bob's USDC borrowing left out
    cover, _ = _cover_verdict(hidden, roots)
    assert not cover.valid
    assert cover.reason == "the collateral range proof does not hold for these roots, leaves and debts"
    # a venue swapping in another statement's debt commitment and proof: the margin proof was
    # made against the true C_V - C_D and fails for the swapped one
    bigger, _, _ = _cover_bundle(collateral=9_000_000, debt=8_999_999)
    mixed = copy.deepcopy(bundle)
    mixed["debt_cover"]["debt"] = bigger["debt_cover"]["debt"]
    cover, _ = _cover_verdict(mixed, roots)
    assert not cover.valid and cover.reason.startswith("collateral does not cover debt")


def test_range_proof_debt_cover_must_bind_every_published_asset():
    bundle, roots, _ = _cover_bundle()
    forged = copy.deepcopy(bundle)
    forged["debt_cover"]["liabilities"].pop()
    cover, _ = _cover_verdict(forged, roots)
    assert (
        not cover.valid
        and cover.reason == "the debt-cover proof is not bound to every published asset (missing ['USDC'])"
    )
    dropped = copy.deepcopy(bundle)
    dropped["proofs"].pop()
    cover, _ = _cover_verdict(dropped, roots)
    assert (
        cover.reason == "the bundle has no USDC inclusion proof for the leaf the debt-cover proof is bound to"
    )


def test_range_proof_verifier_refuses_unknown_or_unbound_versions():
    bundle, roots, _ = _cover_bundle()
    future = dict(bundle, format="crossmargin-proof-bundle-v3")
    with pytest.raises(
        verifier.MalformedProofError, match="unknown proof bundle format 'crossmargin-proof-bundle-v3'"
    ):
        verifier.verify_bundle(future, roots)
    version_1 = {k: v for k, v in bundle.items() if k != "format"}
    with pytest.raises(
        verifier.MalformedProofError, match="version-1 proof bundle: its debt-cover proof is not bound"
    ):
        verifier.verify_bundle(version_1, roots)
    old_cover = copy.deepcopy(bundle)
    old_cover["debt_cover"]["format"] = "crossmargin-debt-cover-v1"
    with pytest.raises(verifier.MalformedProofError, match="unknown debt-cover format"):
        verifier.verify_bundle(old_cover, roots)
    # a version-1 bundle of inclusion proofs alone: the layout is unchanged, it still verifies
    assert all(v.valid for v in verifier.verify_bundle({"account": "bob", "proofs": bundle["proofs"]}, roots))


def test_range_proof_binding_is_the_verifiers():
    """The builder's binding digest and the standalone verifier's are the same bytes."""
    bound = [("USDC", bytes(32), bytes(range(32)), 5), ("BTC", b"\x01" * 32, b"\x02" * 32, 2**64 - 1)]
    assert encoding.cover_binding("bob", bound) == verifier.cover_binding("bob", bound)
