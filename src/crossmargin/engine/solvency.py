"""Proof of liabilities from the engine's own books and ledgers (orchestration of core.solvency).

liabilities_of_book(book, decimals)      a book's balances -> exact units (liabilities up, debts down)
liabilities_of_ledger(state, config)     a ledger's exact balances, traders only (system accounts
                                         such as @insurance are the venue's own money)
build_trees(liabilities, secret, ...)    one Merkle-sum (or committed) tree per asset
default_decimals(symbol)                 the simulation's rule: stablecoins 6, coins 8
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crossmargin.core.book import Book
from crossmargin.core.ledger.state import LedgerConfig, LedgerState
from crossmargin.core.market import MarketState
from crossmargin.core.solvency.liabilities import (
    Liabilities,
    liabilities_from_balances,
    liabilities_from_units,
)
from crossmargin.core.solvency.merkle_sum import MerkleSumTree, build_tree
from crossmargin.engine.simulation import default_decimals


def liabilities_of_book(book: Book, decimals: Mapping[str, int] | None = None) -> Liabilities:
    symbols = book.assets.symbols
    chosen = {s: default_decimals(s) for s in symbols} | dict(decimals or {})
    return liabilities_from_balances(book.account_ids, symbols, book.balances, chosen)


def liabilities_of_ledger(state: LedgerState, config: LedgerConfig) -> Liabilities:
    symbols = config.assets.symbols
    return liabilities_from_units(state.traders, symbols, state.balances, dict(config.decimals))


def build_trees(
    liabilities: Liabilities, *, secret: bytes, min_height: int = 0, hidden: bool = False
) -> dict[str, Any]:
    """One tree per asset: `MerkleSumTree` (sums in the clear) or, with `hidden`, a
    `CommittedTree` (Pedersen commitments; needs the `proofs` extra)."""
    trees: dict[str, Any] = {}
    for k, asset in enumerate(liabilities.assets):  # K assets
        column = liabilities.units[:, k]
        if hidden:
            from crossmargin.core.solvency.committed import build_committed_tree

            trees[asset] = build_committed_tree(
                asset=asset,
                account_ids=liabilities.account_ids,
                amount_units=column,
                secret=secret,
                min_height=min_height,
            )
        else:
            tree: MerkleSumTree = build_tree(
                asset=asset,
                account_ids=liabilities.account_ids,
                amount_units=column,
                secret=secret,
                min_height=min_height,
            )
            trees[asset] = tree
    return trees


def collateral_and_debt_micro_usd(book: Book, market: MarketState, account_id: str) -> tuple[int, int]:
    """One account's haircut collateral value (holdings through the progressive tiers) and its
    debts at liability weight, integer micro-USD: collateral rounded down, debt up (both against
    the account), the inputs of `committed.debt_cover_proof`."""
    import numpy as np

    from crossmargin.core.collateral import value_collateral
    from crossmargin.core.solvency.units import units_ceil, units_floor

    row = book.account_row(account_id)
    price_usd = market.asset_prices(book.assets)
    value = value_collateral(book.balances[row : row + 1], book.assets, price_usd).value_usd[0]
    held = float(np.maximum(value, 0.0).sum())
    owed = float(-np.minimum(value, 0.0).sum())
    return int(units_floor(np.array([held]), 6)[0]), int(units_ceil(np.array([owed]), 6)[0])
