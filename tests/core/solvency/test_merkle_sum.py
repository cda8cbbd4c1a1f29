"""Merkle-sum tree: the root fixes every leaf and the total; paths verify with the standalone
verifier and fail when an amount or a sibling sum is tampered with."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossmargin import verifier
from crossmargin.core.solvency.merkle_sum import build_tree, inclusion_proof
from crossmargin.errors import InputError

SECRET = bytes(range(32))


def _tree(amounts, *, ids=None, min_height=0, asset="BTC"):
    ids = ids or [f"user-{i}" for i in range(len(amounts))]
    return build_tree(
        asset=asset,
        account_ids=ids,
        amount_units=np.array(amounts, dtype=np.int64),
        secret=SECRET,
        min_height=min_height,
    )


def test_solvency_root_sum_is_the_exact_total():
    amounts = [2**62, 3, 0, 2**61 + 7, 5]  # large values: a float sum would lose the 3 and the 7
    tree = _tree(amounts)
    assert tree.total_units == sum(amounts)
    assert tree.height == 3  # 5 accounts pad to 8 leaves
    assert int(tree.sums[0].sum()) == sum(amounts)


def test_solvency_every_single_leaf_change_changes_the_root():
    amounts = list(range(1, 12))
    base = _tree(amounts).root_hash
    for row in range(len(amounts)):
        changed = list(amounts)
        changed[row] += 1
        assert _tree(changed).root_hash != base
    renamed = [f"user-{i}" for i in range(len(amounts))]
    renamed[4] = "someone-else"
    assert _tree(amounts, ids=renamed).root_hash != base


def test_solvency_padding_hides_the_count_and_order_is_keyed():
    small, large = _tree([1] * 5, min_height=6), _tree([1] * 60, min_height=6)
    assert small.height == large.height == 6
    # accounts sit at secret-keyed positions, not in input order
    assert not np.array_equal(small.position, np.arange(5))


def test_solvency_inclusion_proof_verifies_standalone():
    tree = _tree([10, 20, 30, 40, 50])
    roots = {"assets": {"BTC": tree.root()}}
    for account in tree.account_ids:
        verdict = verifier.verify_inclusion(inclusion_proof(tree, account_id=account, secret=SECRET), roots)
        assert verdict.valid, verdict.reason
        assert verdict.amount_units == [10, 20, 30, 40, 50][tree.row(account)]


def test_solvency_tampered_amount_fails():
    tree = _tree([10, 20, 30, 40, 50])
    proof = inclusion_proof(tree, account_id="user-2", secret=SECRET)
    proof["amount_units"] = 31
    assert not verifier.verify_inclusion(proof, tree.root()).valid


def test_solvency_dropped_or_shrunk_sibling_sum_fails():
    """Maxwell's tree let a venue show a user a smaller sibling sum; here both sums are hashed."""
    tree = _tree([10, 20, 30, 40, 50, 60])
    proof = inclusion_proof(tree, account_id="user-0", secret=SECRET)
    for level in range(tree.height):
        for change in (0, proof["path"][level]["sum_units"] - 1):
            forged = copy.deepcopy(proof)
            forged["path"][level]["sum_units"] = max(change, 0)
            if forged == proof:
                continue
            assert not verifier.verify_inclusion(forged, tree.root()).valid
    dropped = copy.deepcopy(proof)
    dropped["path"].pop()
    with pytest.raises(verifier.MalformedProofError):
        verifier.verify_inclusion(dropped, tree.root())


def test_solvency_proof_against_another_root_fails():
    tree, other = _tree([1, 2, 3]), _tree([1, 2, 4])
    proof = inclusion_proof(tree, account_id="user-1", secret=SECRET)
    assert not verifier.verify_inclusion(proof, other.root()).valid


def test_solvency_bad_inputs_name_the_field():
    with pytest.raises(InputError, match=r"liabilities\[BTC\]\[user-1\]"):
        _tree([1, -2, 3])
    with pytest.raises(InputError, match="integer minor units"):
        build_tree(asset="BTC", account_ids=["a"], amount_units=np.array([1.5]), secret=SECRET)
    with pytest.raises(InputError, match="64 bits"):
        build_tree(
            asset="BTC",
            account_ids=["a", "b"],
            amount_units=np.array([2**63, 2**63], dtype=np.uint64),
            secret=SECRET,
        )
    with pytest.raises(InputError, match="duplicate"):
        _tree([1, 2], ids=["a", "a"])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2**40), min_size=1, max_size=40), st.integers(0, 7))
def test_solvency_property_every_account_proof_verifies(amounts, min_height):
    tree = _tree(amounts, min_height=min_height)
    assert tree.total_units == sum(amounts)
    roots = {"assets": {"BTC": tree.root()}}
    for account in tree.account_ids:
        assert verifier.verify_inclusion(
            inclusion_proof(tree, account_id=account, secret=SECRET), roots
        ).valid


def test_solvency_verifier_refuses_an_unknown_proof_version():
    tree = _tree([1, 2, 3])
    proof = inclusion_proof(tree, account_id="user-1", secret=SECRET)
    future = proof | {"format": "crossmargin-merkle-sum-v7"}
    with pytest.raises(
        verifier.MalformedProofError, match="unknown proof format 'crossmargin-merkle-sum-v7'"
    ):
        verifier.verify_inclusion(future, {"assets": {"BTC": tree.root()}})
