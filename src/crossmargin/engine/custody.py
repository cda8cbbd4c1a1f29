"""Collateral across chains and custodians: mobilisation haircuts, location failures, reserves.

custody_book(book, plan)              the book with every balance replaced by its mobilisable
                                      equivalent (held away: × (1 − h_delay)(1 − cost)(1 − p_fail))
location_failure_book(book, plan, l)  the stress scenario: balances at location l frozen or lost
location_report(book, plan, model)    per account: collateral USD by location, equity and MM as
                                      booked, after mobilisation, and under each location's failure
solvency_of(roots, plan, book, market)  reserves (plan) against published liability roots
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from crossmargin.core.book import Book
from crossmargin.core.locations import (
    LocatedBalances,
    LocationTable,
    MobilisationParams,
    collateral_by_location,
    failed_balances,
    mobilised_balances,
    split_by_location,
)
from crossmargin.core.margin.result import MarginResult
from crossmargin.core.market import MarketState
from crossmargin.core.solvency.reserves import SolvencyReport, solvency_report

FloatArray = npt.NDArray[np.float64]


class MarginModel(Protocol):
    def evaluate(self, book: Book, market: MarketState) -> MarginResult: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class CustodyPlan:
    locations: LocationTable
    params: MobilisationParams
    volatility_annual: FloatArray  # (K,) per book asset
    located: LocatedBalances
    reserves_units: Mapping[tuple[str, str], int]

    def factors(self) -> FloatArray:
        """(K, L) mobilisation factors."""
        return self.locations.factors(self.volatility_annual, self.params)


def balance_cube(book: Book, plan: CustodyPlan) -> FloatArray:
    """(A, K, L) balances by location (the remainder at the venue)."""
    return split_by_location(book.balances, plan.located, len(plan.locations.names))


def custody_book(book: Book, plan: CustodyPlan) -> Book:
    return book.with_balances(mobilised_balances(balance_cube(book, plan), plan.factors()))


def location_failure_book(book: Book, plan: CustodyPlan, location: str, *, mobilise: bool = True) -> Book:
    """Balances at `location` removed (frozen: they cannot back margin within the horizon; lost:
    gone; the margin is the same), the rest mobilised as in `custody_book` when `mobilise`."""
    cube = failed_balances(balance_cube(book, plan), [plan.locations.position(location)])
    factors = plan.factors() if mobilise else np.ones((book.assets.n_assets, len(plan.locations.names)))
    return book.with_balances(mobilised_balances(cube, factors))


def location_report(book: Book, market: MarketState, plan: CustodyPlan, model: MarginModel) -> dict[str, Any]:
    """Per account: USD by location; equity and MM as booked, mobilised, and per failure."""
    cube = balance_cube(book, plan)
    by_location = collateral_by_location(cube, market.asset_prices(book.assets))
    booked = model.evaluate(book, market)
    mobilised = model.evaluate(custody_book(book, plan), market)
    failures = {
        name: model.evaluate(location_failure_book(book, plan, name), market)
        for name in plan.locations.names[1:]  # L locations: one scenario each
    }
    accounts = []
    for row, account in enumerate(book.account_ids):  # report rendering, not a hot path
        accounts.append(
            {
                "account": account,
                "collateral_usd_by_location": {
                    name: float(by_location[row, loc])
                    for loc, name in enumerate(plan.locations.names)
                    if by_location[row, loc] > 0
                },
                "equity_usd": float(booked.equity_usd[row]),
                "maintenance_margin_usd": float(booked.maintenance_margin_usd[row]),
                "mobilised_equity_usd": float(mobilised.equity_usd[row]),
                "failure_equity_usd": {n: float(r.equity_usd[row]) for n, r in failures.items()},
                "failure_below_maintenance": [
                    n for n, r in failures.items() if r.equity_usd[row] < r.maintenance_margin_usd[row]
                ],
            }
        )
    return {"locations": list(plan.locations.names), "accounts": accounts}


def solvency_of(
    roots: Mapping[str, Any], plan: CustodyPlan, book: Book, market: MarketState
) -> SolvencyReport:
    """Reserves in `plan` against the totals of the published `roots` (roots.json)."""
    assets = roots["assets"]
    factors = plan.factors()
    names = plan.locations.names
    location_factor = {
        (asset, location): float(factors[book.assets.index[asset], names.index(location)])
        for asset, location in plan.reserves_units
    }
    return solvency_report(
        liabilities_units={a: int(r["total_units"]) for a, r in assets.items()},
        reserves_units=plan.reserves_units,
        decimals={a: int(r["decimals"]) for a, r in assets.items()},
        assets=book.assets,
        asset_price_usd=market.asset_prices(book.assets),
        location_factor=location_factor,
    )
