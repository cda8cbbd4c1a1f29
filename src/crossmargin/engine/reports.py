"""Typed reports, and the one serializer that turns any of them into JSON-ready data.

A report is a tree of frozen dataclasses (`MarginReport` → `AccountReport` → `PositionReport`,
`CollateralReport`, optional `AccountPriceLevels`). `to_json` is the only place a report becomes
plain data, for every command's `--json` and every tool reading the report:

    dataclass          → dict of its fields, in declaration order
                         (metadata OMIT_NONE: the key is absent when the value is None;
                          INLINE: a nested dataclass's keys are merged into the parent's)
    tuple / list       → list;  Mapping → dict (str keys)
    float              → float, or None when not finite (JSON has no NaN/inf: null)
    numpy scalar       → the Python scalar, by the same rules
    str, int, bool, None → as is

The keys are the contract documented in docs/cli.md; field names are the JSON keys.
This module imports nothing heavy (no numpy at import): `import crossmargin` stays cheap.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

OMIT_NONE: Mapping[str, bool] = {"omit_none": True}
INLINE_OMIT_NONE: Mapping[str, bool] = {"omit_none": True, "inline": True}

PricesByUnderlying = Mapping[str, float | None]  # underlying → USD index price, None: never reached


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionReport:
    """One non-zero position of an account. Quantity and entry price in the book's settlement
    units; USD amounts at today's prices. Σ over an account's positions of initial/maintenance
    margin = the account's."""

    instrument_id: str
    quantity: float
    entry_price: float
    value_usd: float
    unrealised_pnl_usd: float
    initial_margin_usd: float
    maintenance_margin_usd: float
    # Isolated model only: assigned collateral + position value, USD (absent from JSON otherwise).
    isolated_equity_usd: float | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True, slots=True, kw_only=True)
class CollateralReport:
    """One non-zero balance: asset units (negative = borrowed), value after haircut USD
    (a borrowing at its liability weight), effective haircut of the whole balance (fraction)."""

    asset: str
    balance: float
    value_usd: float
    haircut: float


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountPriceLevels:
    """Per underlying, the index price (USD) at which the account's equity falls to its model's
    MM (liquidation) or to 0 (bankruptcy), all other prices fixed; nearest root, and the nearest
    on each side of today. None: never reached within ×1e-4..×1e4, or no exposure."""

    liquidation_price: PricesByUnderlying
    bankruptcy_price: PricesByUnderlying
    liquidation_price_below: PricesByUnderlying
    liquidation_price_above: PricesByUnderlying
    bankruptcy_price_below: PricesByUnderlying
    bankruptcy_price_above: PricesByUnderlying


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountReport:
    """One account's margin, USD. margin_ratio = MM / equity (isolated: the worst position's),
    None when bankrupt. `levels` only when asked for (`price_levels`, `crossmargin margin --levels`):
    its six keys then sit in the account's JSON object."""

    account_id: str
    equity_usd: float
    initial_margin_usd: float
    maintenance_margin_usd: float
    available_usd: float
    margin_ratio: float | None
    bankrupt: bool
    below_maintenance: bool
    collateral_value_usd: float
    positions: tuple[PositionReport, ...]
    collateral: tuple[CollateralReport, ...]
    levels: AccountPriceLevels | None = field(default=None, metadata=INLINE_OMIT_NONE)


@dataclass(frozen=True, slots=True, kw_only=True)
class MarginReport:
    """A margin run's report: model, preset (or None), valuation time (UTC, ISO 8601 with Z),
    the book path as given, and the reported accounts in book (or request) order."""

    model: str
    preset: str | None
    valuation_time: str
    book: str
    accounts: tuple[AccountReport, ...]


_PLANS: dict[type, tuple[tuple[str, bool, bool], ...]] = {}


def _plan(cls: type) -> tuple[tuple[str, bool, bool], ...]:
    """(name, omit when None, inline) per field of a dataclass type; computed once per type."""
    plan = _PLANS.get(cls)
    if plan is None:
        plan = tuple(
            (f.name, bool(f.metadata.get("omit_none", False)), bool(f.metadata.get("inline", False)))
            for f in dataclasses.fields(cls)
        )
        _PLANS[cls] = plan
    return plan


_PLAIN = (str, bool, int, type(None))


def to_json(value: Any) -> Any:
    """JSON-ready plain data of a report (rules in the module docstring)."""
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if kind in _PLAIN:
        return value
    if kind in _PLANS or (dataclasses.is_dataclass(value) and not isinstance(value, type)):
        return _dataclass_json(value, _plan(kind))
    if kind is tuple or kind is list:
        return [to_json(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): to_json(item) for key, item in value.items()}
    if hasattr(value, "item") and hasattr(value, "dtype"):  # a numpy scalar (numpy not imported)
        return to_json(value.item())
    # Subclasses of the plain types (an IntEnum, a str enum, a NamedTuple): their plain value.
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return to_json(float(value))
    if isinstance(value, str):
        return str(value)
    if isinstance(value, tuple | list):
        return [to_json(item) for item in value]
    raise TypeError(f"to_json: no JSON form for {kind.__name__}")


def _dataclass_json(value: Any, plan: tuple[tuple[str, bool, bool], ...]) -> dict[str, Any]:
    # The hot loop of a large report (one call per position): plain floats and strings are
    # handled inline; anything else recurses.
    out: dict[str, Any] = {}
    for name, omit_none, inline in plan:
        item = getattr(value, name)
        kind = type(item)
        if kind is float:
            out[name] = item if item - item == 0.0 else None  # inf - inf and nan - nan are nan
        elif kind is str or kind is bool:
            out[name] = item
        elif item is None:
            if not omit_none:
                out[name] = None
        elif inline:
            out.update(to_json(item))
        else:
            out[name] = to_json(item)
    return out
