"""A margin run's report as columns: the typed report's fields, struct of arrays.

`margin_columns(run)` is the one place a run becomes report data. The typed report
(`margin_run.build_margin_report`, small books, the Python API) zips these columns into rows;
the file writers (`adapters.files.report_json`, `report_parquet`) stream them in chunks of
accounts, so a book of 1,000,000 accounts and 10,000,000 positions is reported without one Python
object per account or position. Same fields, same values, same order as the typed report:

    accounts    (R,)  account_id, equity_usd, initial_margin_usd, maintenance_margin_usd,
                      available_usd, margin_ratio (NaN when bankrupt: JSON null), bankrupt,
                      below_maintenance, collateral_value_usd
    positions   (P,)  stored account after account (`AccountColumns.position_count` each), in
                      instrument order: instrument (index into `instrument_ids`), quantity,
                      entry_price, value_usd, unrealised_pnl_usd, initial_margin_usd,
                      maintenance_margin_usd, isolated_equity_usd (isolated model only, else None)
    collateral  (C,)  the non-zero balances account after account, in asset order: asset (index
                      into `asset_symbols`), balance, value_usd, haircut

Amounts are float64 USD (risk maths); quantities and balances in the book's units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from crossmargin.engine.margin_run import MarginRun

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountColumns:
    """Per reported account, (R,). `position_count` and `collateral_count` say how many rows of
    the position and collateral columns belong to each account, in order."""

    account_id: Sequence[str]
    equity_usd: FloatArray
    initial_margin_usd: FloatArray
    maintenance_margin_usd: FloatArray
    available_usd: FloatArray
    margin_ratio: FloatArray
    bankrupt: BoolArray
    below_maintenance: BoolArray
    collateral_value_usd: FloatArray
    position_count: IntArray
    collateral_count: IntArray

    @property
    def n_accounts(self) -> int:
        return int(self.equity_usd.shape[0])


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionColumns:
    """Per reported position, (P,); `instrument` indexes `MarginColumns.instrument_ids`."""

    instrument: IntArray
    quantity: FloatArray
    entry_price: FloatArray
    value_usd: FloatArray
    unrealised_pnl_usd: FloatArray
    initial_margin_usd: FloatArray
    maintenance_margin_usd: FloatArray
    isolated_equity_usd: FloatArray | None  # the isolated model only


@dataclass(frozen=True, slots=True, kw_only=True)
class CollateralColumns:
    """Per non-zero balance, (C,); `asset` indexes `MarginColumns.asset_symbols`."""

    asset: IntArray
    balance: FloatArray
    value_usd: FloatArray
    haircut: FloatArray


@dataclass(frozen=True, slots=True, kw_only=True)
class MarginColumns:
    """The report (module docstring): header, then accounts, positions and collateral columns."""

    model: str
    preset: str | None
    valuation_time: str  # UTC, ISO 8601 with Z
    book: str
    instrument_ids: tuple[str, ...]
    asset_symbols: tuple[str, ...]
    accounts: AccountColumns
    positions: PositionColumns
    collateral: CollateralColumns

    @property
    def n_accounts(self) -> int:
        return self.accounts.n_accounts

    @property
    def n_positions(self) -> int:
        return int(self.positions.quantity.shape[0])

    def chunk(self, start: int, stop: int) -> MarginColumns:
        """Accounts [start, stop) with their positions and collateral rows (views, no copies)."""
        a = self.accounts
        position_start, position_stop = _bounds(a.position_count, start, stop)
        collateral_start, collateral_stop = _bounds(a.collateral_count, start, stop)
        rows = slice(start, stop)
        p = slice(position_start, position_stop)
        c = slice(collateral_start, collateral_stop)
        positions = self.positions
        return MarginColumns(
            model=self.model,
            preset=self.preset,
            valuation_time=self.valuation_time,
            book=self.book,
            instrument_ids=self.instrument_ids,
            asset_symbols=self.asset_symbols,
            accounts=AccountColumns(
                account_id=a.account_id[rows],
                equity_usd=a.equity_usd[rows],
                initial_margin_usd=a.initial_margin_usd[rows],
                maintenance_margin_usd=a.maintenance_margin_usd[rows],
                available_usd=a.available_usd[rows],
                margin_ratio=a.margin_ratio[rows],
                bankrupt=a.bankrupt[rows],
                below_maintenance=a.below_maintenance[rows],
                collateral_value_usd=a.collateral_value_usd[rows],
                position_count=a.position_count[rows],
                collateral_count=a.collateral_count[rows],
            ),
            positions=PositionColumns(
                instrument=positions.instrument[p],
                quantity=positions.quantity[p],
                entry_price=positions.entry_price[p],
                value_usd=positions.value_usd[p],
                unrealised_pnl_usd=positions.unrealised_pnl_usd[p],
                initial_margin_usd=positions.initial_margin_usd[p],
                maintenance_margin_usd=positions.maintenance_margin_usd[p],
                isolated_equity_usd=None
                if positions.isolated_equity_usd is None
                else positions.isolated_equity_usd[p],
            ),
            collateral=CollateralColumns(
                asset=self.collateral.asset[c],
                balance=self.collateral.balance[c],
                value_usd=self.collateral.value_usd[c],
                haircut=self.collateral.haircut[c],
            ),
        )


def _bounds(counts: IntArray, start: int, stop: int) -> tuple[int, int]:
    """Row range of accounts [start, stop) in a column stored `counts` rows per account."""
    first = int(counts[:start].sum())
    return first, first + int(counts[start:stop].sum())


def valuation_time_text(valuation_ns: int) -> str:
    """UTC ISO 8601 with Z, as every report prints it."""
    moment = datetime.fromtimestamp(valuation_ns / 1e9, tz=UTC)
    return moment.isoformat().replace("+00:00", "Z")


def margin_columns(run: MarginRun) -> MarginColumns:
    """The report columns of a run's broken-down accounts (module docstring). Vectorised: the
    result arrays gathered at the breakdown's account rows, the breakdown's position arrays as
    they are, the non-zero balances in row-major order."""
    book = run.loaded.book
    result = run.result
    bd = run.breakdown
    rows = bd.account_rows
    whole = rows.size == book.n_accounts and np.array_equal(rows, np.arange(book.n_accounts))
    at: slice | IntArray = slice(None) if whole else rows  # the whole book: views, no gathers
    n_positions = bd.quantity.shape[0]
    account_n, asset_k = np.nonzero(bd.balance)
    return MarginColumns(
        model=run.model,
        preset=run.preset,
        valuation_time=valuation_time_text(run.loaded.market.valuation_ns),
        book=run.loaded.path,
        instrument_ids=tuple(book.instruments.ids),
        asset_symbols=tuple(book.assets.symbols),
        accounts=AccountColumns(
            account_id=tuple(book.account_ids) if whole else book.ids.gather(rows.tolist()),
            equity_usd=result.equity_usd[at],
            initial_margin_usd=result.initial_margin_usd[at],
            maintenance_margin_usd=result.maintenance_margin_usd[at],
            available_usd=result.available_usd[at],
            margin_ratio=result.margin_ratio[at],
            bankrupt=result.bankrupt[at],
            below_maintenance=result.below_maintenance[at],  # a property: evaluated once, here
            collateral_value_usd=result.collateral_value_usd[at],
            position_count=np.diff(book.positions.indptr)[rows].astype(np.int64),
            collateral_count=np.count_nonzero(bd.balance, axis=1).astype(np.int64),
        ),
        positions=PositionColumns(
            instrument=bd.position_instrument[:n_positions],
            quantity=bd.quantity[:n_positions],
            entry_price=bd.entry_price[:n_positions],
            value_usd=bd.value_usd[:n_positions],
            unrealised_pnl_usd=bd.unrealised_pnl_usd[:n_positions],
            initial_margin_usd=bd.initial_margin_usd[:n_positions],
            maintenance_margin_usd=bd.maintenance_margin_usd[:n_positions],
            isolated_equity_usd=bd.isolated_equity_usd[:n_positions] if run.model == "isolated" else None,
        ),
        collateral=CollateralColumns(
            asset=asset_k.astype(np.int64),
            balance=bd.balance[account_n, asset_k],
            value_usd=bd.collateral_value_usd[account_n, asset_k],
            haircut=bd.haircut[account_n, asset_k],
        ),
    )
