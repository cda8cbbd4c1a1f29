"""The custody file: where collateral and reserves sit (YAML or JSON, read strictly).

```yaml
horizon_hours: 1            # liquidation horizon: collateral that arrives within it counts in full
z: 2.33                     # one-sided quantile of the price move over the extra wait
volatility_annual: {BTC: 0.55, ETH: 0.70}   # per asset; absent assets use default_volatility_annual
default_volatility_annual: 0.8
locations:
  - {name: arbitrum-bridge, transfer_delay_hours: 168, transfer_cost_bps: 5, failure_probability: 0.002}
  - {name: custodian-a, transfer_delay_hours: 24, transfer_cost_bps: 2, failure_probability: 0.0005}
holdings:                   # parts of account balances held away from the venue (asset units)
  - {account: alice, asset: BTC, location: arbitrum-bridge, amount: 1.5}
reserves:                   # the venue's own holdings per asset and location (asset units, rounded down)
  - {asset: BTC, location: custodian-a, amount: 1000}
```
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crossmargin.adapters.files.documents import read_document
from crossmargin.core.book import Book
from crossmargin.core.locations import (
    LocatedBalances,
    Location,
    LocationTable,
    MobilisationParams,
    volatility_for,
)
from crossmargin.core.solvency.units import units_floor
from crossmargin.engine.custody import CustodyPlan
from crossmargin.errors import BookFileError, CrossMarginError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Location(_Strict):
    name: str = Field(min_length=1)
    transfer_delay_hours: float = 0.0
    transfer_cost_bps: float = 0.0
    failure_probability: float = 0.0


class _Holding(_Strict):
    account: str = Field(min_length=1)
    asset: str = Field(min_length=1)
    location: str = Field(min_length=1)
    amount: float = Field(gt=0, le=1e15)


class _Reserve(_Strict):
    asset: str = Field(min_length=1)
    location: str = Field(min_length=1)
    amount: float = Field(ge=0, le=1e15)


class _Custody(_Strict):
    horizon_hours: float = 1.0
    z: float = 2.33
    volatility_annual: dict[str, float] = Field(default_factory=dict)
    default_volatility_annual: float = 0.8
    locations: list[_Location] = Field(default_factory=list)
    holdings: list[_Holding] = Field(default_factory=list)
    reserves: list[_Reserve] = Field(default_factory=list)


def read_custody(path: Path, book: Book, decimals: dict[str, int] | None = None) -> CustodyPlan:
    """Parse and check against the book (accounts, assets); errors name the file and field."""
    where = str(path)
    try:
        model = _Custody.model_validate(read_document(path))
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise BookFileError(where, field, first["msg"]) from None
    try:
        return _plan(model, book, decimals or {})
    except BookFileError:
        raise
    except CrossMarginError as error:
        raise BookFileError(
            where, getattr(error, "field", "custody"), getattr(error, "problem", str(error))
        ) from None


def _plan(model: _Custody, book: Book, decimals: dict[str, int]) -> CustodyPlan:
    from crossmargin.engine.simulation import default_decimals

    table = LocationTable.from_locations([Location(**loc.model_dump()) for loc in model.locations])
    params = MobilisationParams(horizon_hours=model.horizon_hours, z=model.z)
    symbols = book.assets.symbols
    rows = [_account_row(book, h.account, f"holdings[{i}].account") for i, h in enumerate(model.holdings)]
    located = LocatedBalances(
        account_row=np.array(rows, dtype=np.int64),
        asset=np.array(
            [
                book.assets.position(h.asset, field_name=f"holdings[{i}].asset")
                for i, h in enumerate(model.holdings)
            ],
            dtype=np.int64,
        ),
        location=np.array([table.position(h.location) for h in model.holdings], dtype=np.int64),
        amount=np.array([h.amount for h in model.holdings], dtype=np.float64),
    )
    reserves: dict[tuple[str, str], int] = {}
    for i, r in enumerate(model.reserves):
        book.assets.position(r.asset, field_name=f"reserves[{i}].asset")
        table.position(r.location)
        digits = decimals.get(r.asset, default_decimals(r.asset))
        units = int(units_floor(np.array([r.amount]), digits, name=f"reserves[{i}].amount")[0])
        reserves[(r.asset, r.location)] = reserves.get((r.asset, r.location), 0) + units
    return CustodyPlan(
        locations=table,
        params=params,
        volatility_annual=volatility_for(symbols, model.volatility_annual, model.default_volatility_annual),
        located=located,
        reserves_units=reserves,
    )


def _account_row(book: Book, account: str, field: str) -> int:
    try:
        return book.account_row(account)
    except CrossMarginError:
        raise BookFileError("custody", field, f"unknown account {account!r}") from None
