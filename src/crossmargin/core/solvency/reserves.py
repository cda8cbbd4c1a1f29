"""Reserves against liabilities: coverage per asset and overall, with the engine's haircuts.

Per asset k, with reserves R_k (exact units, summed over locations) and liabilities L_k (the
Merkle-sum root's total):

    coverage_k   = R_k / L_k                                   (in kind: BTC owed, BTC held)
    overall      = Σ_k [min(R_k, L_k)·P_k + surplus value_k] / Σ_k L_k·P_k
    surplus value_k = haircut_value(max(R_k − L_k, 0)) · Σ_l w_kl · factor_kl

A liability paid back in kind needs no haircut, so the part of each asset's reserves that
matches its own liabilities counts at price; only a surplus that must be sold to cover another
asset's shortfall takes the asset's haircut schedule (`core.collateral`, the same progressive
tiers as account collateral) and each location's mobilisation factor (`core.locations`, weights
w_kl = that location's share of the asset's reserves). A venue is solvent in asset k when
coverage_k >= 1, and overall when the ratio is >= 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from crossmargin.core.assets import AssetTable
from crossmargin.core.collateral import value_collateral
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, kw_only=True)
class AssetSolvency:
    asset: str
    decimals: int
    liabilities_units: int
    reserves_units: int
    reserves_by_location_units: dict[str, int]
    coverage: float  # reserves / liabilities (inf when nothing is owed)
    liabilities_usd: float
    in_kind_usd: float  # min(reserves, liabilities) at price
    surplus_value_usd: float  # haircut and mobilisation-adjusted value of the surplus


@dataclass(frozen=True, slots=True, kw_only=True)
class SolvencyReport:
    assets: tuple[AssetSolvency, ...]
    covered_usd: float
    liabilities_usd: float

    @property
    def ratio(self) -> float:
        return self.covered_usd / self.liabilities_usd if self.liabilities_usd > 0 else float("inf")

    @property
    def shortfall_assets(self) -> tuple[str, ...]:
        return tuple(a.asset for a in self.assets if a.coverage < 1.0)


def solvency_report(
    *,
    liabilities_units: Mapping[str, int],
    reserves_units: Mapping[tuple[str, str], int],
    decimals: Mapping[str, int],
    assets: AssetTable,
    asset_price_usd: FloatArray,
    location_factor: Mapping[tuple[str, str], float] | None = None,
) -> SolvencyReport:
    """`reserves_units[(asset, location)]` exact units held; `location_factor[(asset, location)]`
    the mobilisation factor in (0, 1] (1 when absent); asset_price_usd (K,) USD per unit."""
    factors = location_factor or {}
    for asset, location in reserves_units:
        if asset not in liabilities_units:
            raise InputError(f"reserves[{asset}, {location}]", f"asset {asset!r} has no liabilities tree")
        if reserves_units[(asset, location)] < 0:
            raise InputError(f"reserves[{asset}, {location}]", "must be >= 0")
    rows = []
    surplus_quantity = np.zeros((1, assets.n_assets))
    mobilisation = np.ones(assets.n_assets)
    for asset, owed in liabilities_units.items():  # K assets
        k = assets.position(asset, field_name="liabilities.asset")
        held = {loc: u for (a, loc), u in sorted(reserves_units.items()) if a == asset}
        total = sum(held.values())
        scale = 10.0 ** -decimals[asset]
        surplus_quantity[0, k] = max(total - owed, 0) * scale
        if total:
            mobilisation[k] = sum(u * factors.get((asset, loc), 1.0) for loc, u in held.items()) / total
        rows.append((asset, owed, total, held))
    surplus_value = value_collateral(surplus_quantity, assets, asset_price_usd).value_usd[0] * mobilisation
    report = []
    for asset, owed, total, held in rows:
        k = assets.index[asset]
        price, scale = float(asset_price_usd[k]), 10.0 ** -decimals[asset]
        report.append(
            AssetSolvency(
                asset=asset,
                decimals=decimals[asset],
                liabilities_units=owed,
                reserves_units=total,
                reserves_by_location_units=held,
                coverage=total / owed if owed else float("inf"),
                liabilities_usd=owed * scale * price,
                in_kind_usd=min(total, owed) * scale * price,
                surplus_value_usd=float(surplus_value[k]),
            )
        )
    return SolvencyReport(
        assets=tuple(report),
        covered_usd=sum(a.in_kind_usd + a.surplus_value_usd for a in report),
        liabilities_usd=sum(a.liabilities_usd for a in report),
    )
