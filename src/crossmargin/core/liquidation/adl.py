"""Auto-deleveraging policies: who gives up how many contracts to cover a bankrupt deficit.

Every policy sees the same candidates (profitable positions opposite to the bankrupt one, in the
deficit's market) and returns contracts per candidate. The controller closes each slice at the
mark against the liquidator and takes a haircut of x · gap from the winner (gap = the bankrupt
position's loss per contract beyond its equity, i.e. the distance from mark to bankruptcy price),
capped by the winner's profit. Two families:

- whole-position policies (venues): `queue` ranks by profit % × leverage (Binance, BitMEX,
  Hyperliquid) and `random_start` iterates from a random offset (dYdX v4); both deleverage the
  whole remaining bankrupt position, whatever part of the deficit earlier stages covered;
- deficit-sized policies: `pro_rata` over all candidates by size and `risk_aware` by size ×
  leverage (riskier winners give more), deleveraging only the contracts the deficit needs.

Overshoot = Σ haircuts − deficit (credited to the insurance fund): what winners lost beyond
what the venue needed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from crossmargin.errors import InputError

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, kw_only=True)
class AdlCandidates:
    """n candidates (their ids: a tuple, or an array: no Python object per candidate; or any
    integer keys in the ids' order, which is all the policies read of them); quantity
    (n,) absolute contracts; profit_fraction (n,) unrealised PnL over entry notional; leverage
    (n,) position notional over account equity (inf if equity <= 0)."""

    accounts: Sequence[str] | npt.NDArray[np.str_] | npt.NDArray[np.int64]
    quantity: IntArray
    profit_fraction: FloatArray
    leverage: FloatArray


AdlPolicy = Callable[[AdlCandidates, int, int, np.random.Generator], IntArray]


def _id_keys(accounts: Sequence[str] | npt.NDArray[np.str_] | npt.NDArray[np.int64]) -> npt.NDArray[Any]:
    """The ids as one sortable array (a sequence may supply its own through __array__, e.g. the
    cascade's zero-padded global rows as integers: same order, no strings)."""
    return np.asarray(accounts)


def _in_id_order(keys: npt.NDArray[Any]) -> bool:
    """Ids already ascending (one vectorised pass; equal ids keep their order either way)."""
    return bool(np.all(keys[1:] >= keys[:-1]))


def queue_rank(candidates: AdlCandidates) -> IntArray:
    """Candidate order by profit % × leverage, highest first (ties by account id: deterministic).
    One lexsort: a venue-wide cascade ranks hundreds of thousands of winners."""
    score = candidates.profit_fraction * candidates.leverage
    if not len(candidates.accounts):
        return np.zeros(0, dtype=np.int64)
    keys = _id_keys(candidates.accounts)
    if _in_id_order(keys):
        # Already in id order (the cascade's candidates in global row order, the ledger's by
        # account id): a stable sort by score alone keeps ties in id order, the same order as the
        # lexsort, without sorting the ids (strings: most of a venue liquidation's ranking).
        by_score: IntArray = np.argsort(-score, kind="stable").astype(np.int64)
        return by_score
    order: IntArray = np.lexsort((keys, -score)).astype(np.int64)
    return order


def _fill_in_order(order: IntArray, quantity: IntArray, contracts: int) -> IntArray:
    """Take whole quantities in `order` until `contracts` are taken (exact integer prefix sums)."""
    out = np.zeros(quantity.size, dtype=np.int64)
    q = quantity[order].astype(np.int64)
    before = np.cumsum(q) - q
    out[order] = np.clip(contracts - before, 0, q)
    return out


def queue(c: AdlCandidates, needed: int, whole: int, rng: np.random.Generator) -> IntArray:
    return _fill_in_order(queue_rank(c), c.quantity, whole)


def random_start(c: AdlCandidates, needed: int, whole: int, rng: np.random.Generator) -> IntArray:
    n = len(c.accounts)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    keys = _id_keys(c.accounts)
    by_id = (
        np.arange(n, dtype=np.int64)
        if _in_id_order(keys)
        else np.argsort(keys, kind="stable").astype(np.int64)
    )
    start = int(rng.integers(n))
    return _fill_in_order(np.roll(by_id, -start), c.quantity, whole)


def _pro_rata(weight: FloatArray, quantity: IntArray, contracts: int) -> IntArray:
    """Largest-remainder split of `contracts` ∝ weight, capped by quantity (repeated on the rest)."""
    out = np.zeros(quantity.size, dtype=np.int64)
    left = min(contracts, int(quantity.sum()))
    while left > 0:
        room = quantity - out
        w = np.where(room > 0, weight, 0.0)
        if w.sum() <= 0.0:
            w = (room > 0).astype(np.float64)
        exact = left * w / w.sum()
        share = np.minimum(np.floor(exact).astype(np.int64), room)
        rest = left - int(share.sum())
        for j in np.argsort(-(exact - np.floor(exact)), kind="stable").tolist():
            if rest <= 0:
                break
            if share[j] < room[j]:
                share[j] += 1
                rest -= 1
        out += share
        left -= int(share.sum())
    return out


def pro_rata(c: AdlCandidates, needed: int, whole: int, rng: np.random.Generator) -> IntArray:
    return _pro_rata(c.quantity.astype(np.float64), c.quantity, needed)


def risk_aware(c: AdlCandidates, needed: int, whole: int, rng: np.random.Generator) -> IntArray:
    leverage = np.where(
        np.isfinite(c.leverage),
        c.leverage,
        np.nanmax(np.where(np.isfinite(c.leverage), c.leverage, 1.0), initial=1.0),
    )
    return _pro_rata((c.quantity * np.maximum(leverage, 1e-12)).astype(np.float64), c.quantity, needed)


ADL_POLICIES: dict[str, AdlPolicy] = {
    "queue": queue,
    "random_start": random_start,
    "pro_rata": pro_rata,
    "risk_aware": risk_aware,
}


def adl_policy(name: str) -> AdlPolicy:
    try:
        return ADL_POLICIES[name]
    except KeyError:
        raise InputError(
            "adl_policy", f"unknown policy {name!r}; choose one of {', '.join(ADL_POLICIES)}"
        ) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class AdlReport:
    """What one ADL round did: contracts and USD notional deleveraged, each trader's haircut
    (units of `asset`), the deficit it had to cover and the overshoot beyond it."""

    policy: str
    instrument: str
    asset: str
    contracts: int
    notional_usd: float
    haircut_units: dict[str, int]
    deficit_units: int
    covered_units: int
    overshoot_units: int
