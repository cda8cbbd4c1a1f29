"""Inputs of a private margin check: what is public (market, schedules, scenario matrices) and
what one account keeps secret (positions, balances), plus the plaintext reference.

The multiparty computation (`adapters.mpc`) evaluates exactly these formulas on secret shares:

    hu_k    = Σ_t (1 − h_kt) · clip(b_k − f_kt, 0, f_k,t+1 − f_kt) + w_k · min(b_k, 0)
              (progressive haircut tiers on a holding, liability weight on a borrowing; units)
    equity  = Σ_k P_k · hu_k + Σ_i q_i · u_i + Σ_i qe_i · c_i        (qe_i = q_i · entry_term(E_i))
    MM      = Σ_i |q_i| · mm_i                                        (mm_i = notional_i · rate_i)
    PnL_s   = Σ_i q_i · dU_is + qe_i · dC_is + Σ_k hu_k · P_k · dF_ks
    grid    = max(0, max_s −PnL_s)

which are the cross model's (`core.margin.cross`, single-tier delta-one schedules: MM = rate ×
notional) and the portfolio kernel's scenario pass (`core.scenarios.revalue_scenarios`, one
group, weight 1, no add-ons) for one account. Books outside that scope (options, multi-tier or
size-scaled schedules) are refused with an InputError naming the instrument.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from crossmargin.core.book import Book
from crossmargin.core.collateral import haircut_quantity
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import entry_term, revalue
from crossmargin.core.scenarios import ScenarioSet, revalue_scenarios
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, kw_only=True)
class PublicMarginData:
    unit_value_usd: FloatArray  # (I,)
    entry_coefficient_usd: FloatArray  # (I,)
    maintenance_per_contract_usd: FloatArray  # (I,)
    price_usd: FloatArray  # (K,)
    liability_weight: FloatArray  # (K,)
    tier_floor: FloatArray  # (K, T) +inf padded
    tier_haircut: FloatArray  # (K, T)
    d_unit_value_usd: FloatArray  # (I, S)
    d_entry_coefficient_usd: FloatArray  # (I, S)
    d_value_per_unit_usd: FloatArray  # (K, S) = P_k · dF_ks

    def as_dict(self) -> dict[str, Any]:
        return {k: np.where(np.isinf(v), -1.0, v).tolist() for k, v in _fields(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PublicMarginData:
        arrays = {k: np.array(v, dtype=np.float64) for k, v in data.items() if k != "n_accounts"}
        arrays["tier_floor"] = np.where(arrays["tier_floor"] < 0, np.inf, arrays["tier_floor"])
        return cls(**arrays)


def _fields(obj: Any) -> dict[str, FloatArray]:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountSecrets:
    quantity: FloatArray  # (I,) contracts, 0 where not held
    quantity_entry: FloatArray  # (I,) q · entry_term(E)
    balances: FloatArray  # (K,) asset units

    def as_dict(self) -> dict[str, Any]:
        return {k: v.tolist() for k, v in _fields(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AccountSecrets:
        return cls(**{k: np.array(v, dtype=np.float64) for k, v in data.items()})


def price_grid(book: Book, *, price_range: float = 0.15, steps: int = 9) -> ScenarioSet:
    """`steps` moves over [−range, +range] of each underlying alone (its collateral asset moves
    with it, as in every portfolio grid of the engine), vol unchanged, one group."""
    factors = tuple(dict.fromkeys([*book.instruments.underlyings, *book.assets.symbols]))
    moves = np.linspace(-price_range, price_range, steps)
    rows, labels = [], []
    for u in book.instruments.underlyings:  # U underlyings
        for m in moves:
            row = np.ones(len(factors))
            row[factors.index(u)] = 1.0 + m
            rows.append(row)
            labels.append(f"{u} {m:+.2%}")
    s = len(rows)
    return ScenarioSet(
        factors=factors,
        price_factor=np.array(rows).reshape(s, len(factors)),
        vol_shift=np.zeros((s, book.instruments.n_instruments)),
        weight=np.ones(s),
        group=np.zeros(s, dtype=np.int64),
        labels=tuple(labels),
    )


def public_data(book: Book, market: MarketState, scenarios: ScenarioSet) -> PublicMarginData:
    table = book.instruments
    multi_tier = np.isfinite(table.tier_floor_usd[:, 1:]).any(axis=1)
    unsupported = table.is_option | (table.rate_per_unit != 0.0) | multi_tier
    if np.any(unsupported):
        name = table.ids[int(np.flatnonzero(unsupported)[0])]
        raise InputError(
            f"instruments[{name}]", "private margin supports single-tier delta-one instruments only"
        )
    valuation = revalue(table, market)
    moved = revalue_scenarios(table, book.assets, market, valuation, scenarios)
    return PublicMarginData(
        unit_value_usd=valuation.unit_value_usd,
        entry_coefficient_usd=valuation.entry_coefficient_usd,
        maintenance_per_contract_usd=valuation.notional_usd * table.tier_maintenance_rate[:, 0],
        price_usd=market.asset_prices(book.assets),
        liability_weight=book.assets.liability_weight,
        tier_floor=book.assets.tier_floor,
        tier_haircut=book.assets.tier_haircut,
        d_unit_value_usd=moved.d_unit_value_usd,
        d_entry_coefficient_usd=moved.d_entry_coefficient_usd,
        d_value_per_unit_usd=market.asset_prices(book.assets)[:, None] * moved.d_asset_factor,
    )


def account_secrets(book: Book, row: int) -> AccountSecrets:
    quantity = np.zeros(book.instruments.n_instruments)
    quantity_entry = np.zeros_like(quantity)
    start, end = book.positions.indptr[row], book.positions.indptr[row + 1]
    cols = book.positions.indices[start:end]
    q = book.positions.data[start:end]
    quantity[cols] = q
    quantity_entry[cols] = q * entry_term(
        book.entry_price[start:end], book.instruments.reciprocal_entry[cols]
    )
    return AccountSecrets(
        quantity=quantity, quantity_entry=quantity_entry, balances=book.balances[row].copy()
    )


def plaintext_margin(public: PublicMarginData, secrets: AccountSecrets) -> dict[str, float]:
    """The same formulas in float64 (the reference the MPC result is held to)."""
    b = secrets.balances[None, :]
    held = np.maximum(b, 0.0)
    assets_like = _Tiers(public.tier_floor, public.tier_haircut)
    hu = haircut_quantity(held, assets_like)[0] + public.liability_weight * np.minimum(secrets.balances, 0.0)  # type: ignore[arg-type]
    equity = float(
        public.price_usd @ hu
        + secrets.quantity @ public.unit_value_usd
        + secrets.quantity_entry @ public.entry_coefficient_usd
    )
    mm = float(np.abs(secrets.quantity) @ public.maintenance_per_contract_usd)
    pnl = (
        secrets.quantity @ public.d_unit_value_usd
        + secrets.quantity_entry @ public.d_entry_coefficient_usd
        + hu @ public.d_value_per_unit_usd
    )
    grid = float(max(0.0, float(np.max(-pnl))))
    return {"equity_usd": equity, "maintenance_margin_usd": mm, "grid_requirement_usd": grid}


@dataclass(frozen=True, slots=True)
class _Tiers:
    """The two AssetTable arrays `haircut_quantity` reads, rebuilt from public data."""

    tier_floor: FloatArray
    tier_haircut: FloatArray

    @property
    def n_assets(self) -> int:
        return int(self.tier_floor.shape[0])

    @property
    def tier_value_below(self) -> FloatArray:
        k, t = self.tier_floor.shape
        below = np.zeros((k, t))
        for row in range(k):
            finite = np.isfinite(self.tier_floor[row])
            widths = np.diff(self.tier_floor[row, finite])
            below[row, 1 : finite.sum()] = np.cumsum(
                widths * (1.0 - self.tier_haircut[row, : finite.sum() - 1])
            )
        return below
