"""Collateral assets: haircut schedule by balance size, liability weight, borrow rate.

Prices are not here: an asset's USD price is market data and lives in the MarketState
(`MarketState.asset_price_usd`, aligned to `AssetTable.symbols`), so a tick never rebuilds the
book or its asset table.

Struct of arrays over K assets (the accounts x assets balance matrix has K columns). Haircut tiers
are progressive, like tax brackets: the slice of a balance between two tier floors takes that
tier's haircut. A step schedule (whole balance at the tier it reaches) would make collateral value
fall when a balance crosses a floor, so depositing more could lower equity; progressive tiers keep
value continuous and non-decreasing in the balance (Binance portfolio-margin "tiered collateral
ratio" and Bybit's "tiered collateral value ratio" work the same way).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from crossmargin.core.checks import check_finite, check_range
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, kw_only=True)
class HaircutTier:
    """The haircut applied to the slice of a balance above `above` (asset units)."""

    above: float
    haircut: float

    def __post_init__(self) -> None:
        check_range(self.above, low=0.0, high=np.inf, name="haircut_tiers.above")
        check_range(self.haircut, low=0.0, high=1.0, include_high=False, name="haircut_tiers.haircut")


@dataclass(frozen=True, slots=True, kw_only=True)
class Asset:
    """One collateral asset's risk parameters (its price is in the market state).

    `liability_weight` (>= 1) scales a negative (borrowed) balance: the liability counts at
    price x weight. `borrow_rate_apr` accrues on borrowed balances.
    """

    symbol: str
    haircut_tiers: tuple[HaircutTier, ...] = (HaircutTier(above=0.0, haircut=0.0),)
    liability_weight: float = 1.0
    borrow_rate_apr: float = 0.0

    def __post_init__(self) -> None:
        if not self.symbol:
            raise InputError("assets.symbol", "must not be empty")
        check_range(
            self.liability_weight,
            low=1.0,
            high=100.0,
            name=f"assets[{self.symbol}].liability_weight",
        )
        check_range(self.borrow_rate_apr, low=0.0, high=100.0, name=f"assets[{self.symbol}].borrow_rate_apr")
        if not self.haircut_tiers:
            raise InputError(f"assets[{self.symbol}].haircut_tiers", "must have at least one tier")
        if self.haircut_tiers[0].above != 0.0:
            raise InputError(f"assets[{self.symbol}].haircut_tiers", "first tier must start at above: 0")
        floors = [t.above for t in self.haircut_tiers]
        if any(b <= a for a, b in pairwise(floors)):
            raise InputError(
                f"assets[{self.symbol}].haircut_tiers", "tier floors must be strictly increasing"
            )
        haircuts = [t.haircut for t in self.haircut_tiers]
        if any(b < a for a, b in pairwise(haircuts)):
            raise InputError(
                f"assets[{self.symbol}].haircut_tiers",
                "haircuts must not decrease with balance size (larger balances are harder to sell)",
            )


@dataclass(frozen=True, slots=True)
class AssetTable:
    """K assets as arrays. Tier tables are padded to T columns with +inf floors.

    Shapes: tier_floor (K, T) asset units, tier_haircut (K, T),
    tier_value_below (K, T) = haircut-adjusted quantity of the slices below each floor,
    liability_weight (K,), borrow_rate_apr (K,).
    """

    symbols: tuple[str, ...]
    tier_floor: FloatArray
    tier_haircut: FloatArray
    tier_value_below: FloatArray
    liability_weight: FloatArray
    borrow_rate_apr: FloatArray
    index: dict[str, int] = field(compare=False)

    @property
    def n_assets(self) -> int:
        return len(self.symbols)

    @classmethod
    def from_assets(cls, assets: Sequence[Asset]) -> AssetTable:
        symbols = tuple(a.symbol for a in assets)
        if len(set(symbols)) != len(symbols):
            dup = next(s for s in symbols if symbols.count(s) > 1)
            raise InputError("assets.symbol", f"duplicate asset {dup!r}")
        n_tiers = max((len(a.haircut_tiers) for a in assets), default=1)
        k = len(assets)
        floor = np.full((k, n_tiers), np.inf)
        haircut = np.zeros((k, n_tiers))
        value_below = np.zeros((k, n_tiers))
        for row, asset in enumerate(assets):  # K assets, load time only
            tiers = asset.haircut_tiers
            for col, tier in enumerate(tiers):
                floor[row, col] = tier.above
                haircut[row, col] = tier.haircut
            haircut[row, len(tiers) :] = tiers[-1].haircut
            widths = np.diff(floor[row, : len(tiers)])
            value_below[row, 1 : len(tiers)] = np.cumsum(widths * (1.0 - haircut[row, : len(tiers) - 1]))
        return cls(
            symbols=symbols,
            tier_floor=floor,
            tier_haircut=haircut,
            tier_value_below=value_below,
            liability_weight=np.array([a.liability_weight for a in assets], dtype=np.float64),
            borrow_rate_apr=np.array([a.borrow_rate_apr for a in assets], dtype=np.float64),
            index={s: i for i, s in enumerate(symbols)},
        )

    def position(self, symbol: str, *, field_name: str = "asset") -> int:
        try:
            return self.index[symbol]
        except KeyError:
            raise InputError(field_name, f"unknown asset {symbol!r}") from None


def check_balances(balances: FloatArray, assets: AssetTable) -> None:
    """Balances must be a finite (n_accounts, n_assets) float64 matrix."""
    if balances.ndim != 2 or balances.shape[1] != assets.n_assets:
        raise InputError("balances", f"shape {balances.shape} does not match {assets.n_assets} assets")
    check_finite(balances, "balances")
