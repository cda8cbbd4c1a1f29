"""Liabilities in exact units (from books and from a ledger) and the reserves report."""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossmargin import verifier
from crossmargin.core.assets import Asset, AssetTable, HaircutTier
from crossmargin.core.solvency import merkle_sum
from crossmargin.core.solvency.liabilities import liabilities_from_balances
from crossmargin.core.solvency.merkle_sum import build_tree
from crossmargin.core.solvency.reserves import solvency_report
from crossmargin.core.solvency.units import units_ceil, units_floor
from crossmargin.engine.simulation import run_price_path, simulation_from_book
from crossmargin.engine.solvency import build_trees, liabilities_of_book, liabilities_of_ledger
from tests.builders import random_books

SECRET = b"k" * 32
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=50), st.sampled_from([0, 2, 6, 8])
)
def test_solvency_units_equal_decimal_rounding_of_the_book_text(values, decimals):
    x = np.array(values)
    ceil = [int(Decimal(repr(v)).scaleb(decimals).to_integral_value(rounding=ROUND_CEILING)) for v in values]
    assert units_ceil(x, decimals).tolist() == ceil
    assert units_floor(x, decimals).tolist() == [-c for c in (units_ceil(-x, decimals).tolist())]
    assert units_ceil(np.array([9.8]), 8).tolist() == [980_000_000]  # the book's 9.8 BTC, not 980,000,001


def test_solvency_book_liabilities_exclude_debts_and_sum_exactly():
    owed = liabilities_from_balances(
        ["a", "b", "c"],
        ["USDC", "BTC"],
        np.array([[100.25, -0.5], [-40.0, 1.2345678], [0.0, 2.0]]),
        {"USDC": 6, "BTC": 8},
    )
    assert owed.units.tolist() == [[100_250_000, 0], [0, 123_456_780], [0, 200_000_000]]
    assert owed.debt_units.tolist() == [[0, 50_000_000], [40_000_000, 0], [0, 0]]
    trees = build_trees(owed, secret=SECRET)
    assert trees["BTC"].total_units == 323_456_780 == owed.total_units()["BTC"]


def test_solvency_ledger_tree_total_equals_the_ledger_exactly():
    """A ledger after a price shock (liquidations move money between accounts): every asset's
    tree total equals the ledger's own positive trader balances, unit for unit."""
    from crossmargin.adapters.files import load_book

    sim = simulation_from_book(load_book(EXAMPLES / "desk.yaml"))
    start = sim.state.time_ns
    run_price_path(sim, [(start + 3600 * 10**9, {"BTC": 70_000.0, "ETH": 2_000.0})])
    owed = liabilities_of_ledger(sim.state, sim.config)
    for k, asset in enumerate(owed.assets):
        ledger_total = sum(
            u
            for (account, a), u in sim.state.balances.items()
            if a == asset and account in sim.state.traders and u > 0
        )
        tree = build_tree(
            asset=asset, account_ids=owed.account_ids, amount_units=owed.units[:, k], secret=SECRET
        )
        assert tree.total_units == ledger_total
        assert int(tree.sums[0].sum()) == ledger_total


def test_solvency_report_in_kind_and_haircut_surplus():
    assets = AssetTable.from_assets(
        [
            Asset(symbol="USDC"),
            Asset(symbol="BTC", haircut_tiers=(HaircutTier(above=0, haircut=0.1),)),
        ]
    )
    report = solvency_report(
        liabilities_units={"USDC": 1_000_000_000, "BTC": 100_000_000},  # 1,000 USDC and 1 BTC owed
        reserves_units={
            ("USDC", "venue"): 900_000_000,
            ("BTC", "venue"): 150_000_000,
            ("BTC", "bridge"): 50_000_000,
        },
        decimals={"USDC": 6, "BTC": 8},
        assets=assets,
        asset_price_usd=np.array([1.0, 50_000.0]),
        location_factor={("BTC", "bridge"): 0.5},
    )
    usdc, btc = report.assets
    assert usdc.coverage == 0.9 and btc.coverage == 2.0
    assert report.shortfall_assets == ("USDC",)
    # surplus 1 BTC at 90 % after haircut, times the reserves' mobilisation (3/4 at 1, 1/4 at 0.5)
    assert btc.surplus_value_usd == 50_000.0 * 0.9 * (0.75 + 0.25 * 0.5)
    assert report.ratio == (900.0 + 50_000.0 + btc.surplus_value_usd) / 51_000.0


@settings(max_examples=20, deadline=None)
@given(random_books())
def test_solvency_property_random_books_every_account_proof_verifies(random):
    """Any book: each asset's root total is the exact sum of the positive balances (rounded up
    to minor units, as the book's text), and every account's path verifies standalone."""
    book = random.book
    owed = liabilities_of_book(book)
    trees = build_trees(owed, secret=SECRET)
    roots = {"assets": {a: t.root() for a, t in trees.items()}}
    for k, asset in enumerate(owed.assets):
        digits = owed.decimals[k]
        expected = sum(
            int(Decimal(repr(float(b))).scaleb(digits).to_integral_value(rounding=ROUND_CEILING))
            for b in book.balances[:, k]
            if b > 0
        )
        assert trees[asset].total_units == expected
        for account in book.account_ids:
            proof = merkle_sum.inclusion_proof(trees[asset], account_id=account, secret=SECRET)
            assert verifier.verify_inclusion(proof, roots).valid


@settings(max_examples=4, deadline=None)
@given(random_books(max_accounts=4, max_instruments=2))
def test_range_proof_property_random_books_every_account_proof_verifies(random):
    """Any book, sums hidden: each asset's committed root opens to the exact total owed, and every
    account's path (its leaf and every sibling with a 64-bit range proof) verifies standalone
    (~25 ms per range proof: kept to a few small books)."""
    pytest.importorskip("ecc")
    from crossmargin.core.solvency import committed

    book = random.book
    owed = liabilities_of_book(book)
    trees = build_trees(owed, secret=SECRET, hidden=True)
    roots = {"assets": {a: t.root() for a, t in trees.items()}}
    for k, asset in enumerate(owed.assets):
        assert roots["assets"][asset]["total_units"] == int(owed.units[:, k].sum())
        for account in book.account_ids:
            proof = committed.inclusion_proof(trees[asset], account_id=account, secret=SECRET)
            verdict = verifier.verify_inclusion(proof, roots)
            assert verdict.valid, verdict
