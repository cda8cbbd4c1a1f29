"""Load a book file (YAML/JSON, optional CSV/Parquet positions and balances) into core types.

All or nothing: any problem raises BookFileError(path, field, problem) before anything is
computed. Field paths follow the file: `instruments[BTC-PERP].margin.maintenance_rate`,
`accounts[basis-trader].positions[0].instrument`.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from crossmargin.adapters.files.documents import read_document
from crossmargin.adapters.files.schema import (
    BOUND_REASONS,
    MAGNITUDE_REASON,
    MAX_AMOUNT,
    MAX_PRICE_USD,
    MIN_PRICE_USD,
    BookModel,
    InstrumentModel,
    MarginScheduleModel,
)
from crossmargin.core.assets import Asset, AssetTable, HaircutTier
from crossmargin.core.book import Book
from crossmargin.core.instruments import (
    Instrument,
    InstrumentKind,
    InstrumentTable,
    MarginSchedule,
    OptionType,
    RateTier,
    Settlement,
)
from crossmargin.core.margin import CrossParams, OptionMarginParams
from crossmargin.core.margin.portfolio import PortfolioParams
from crossmargin.core.margin.presets import PortfolioOverrides, portfolio_preset
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import revalue
from crossmargin.engine.inputs import LoadedBook  # the engine's value type, built here
from crossmargin.errors import BookFileError, CrossMarginError, InputError

FloatArray = npt.NDArray[np.float64]


def to_ns(moment: datetime) -> int:
    """UTC nanoseconds since the epoch (exact for whole microseconds)."""
    seconds = int(moment.timestamp())
    return seconds * 1_000_000_000 + moment.microsecond * 1_000


def _field_path(loc: tuple[int | str, ...], raw: Any) -> str:
    """pydantic loc -> 'instruments[BTC-PERP].strike', naming list items by id where they have one."""
    text = ""
    node = raw
    for item in loc:
        if isinstance(item, int):
            label = str(item)
            child = node[item] if isinstance(node, list) and 0 <= item < len(node) else None
            if isinstance(child, dict) and (child.get("id") or child.get("symbol")):
                label = str(child.get("id") or child.get("symbol"))
            text += f"[{label}]"
            node = child
        else:
            text += ("." if text else "") + str(item)
            node = node.get(item) if isinstance(node, dict) else None
    return text or "book"


def parse_book(raw: Any, path: str) -> BookModel:
    """Validate a parsed document against the book schema (strict types, bounds, unknown keys),
    then the cross-field rules the JSON Schema cannot express (check_book)."""
    if not isinstance(raw, dict):
        raise BookFileError(
            path, "book", "top level must be a mapping with assets, instruments, market, accounts"
        )
    try:
        model = BookModel.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        field = _field_path(tuple(first["loc"]), raw)
        value = first.get("input")
        shown = "" if isinstance(value, dict | list) else f" (got {_shown(value)})"
        raise BookFileError(path, field, _problem(first, shown)) from None
    check_book(model, path)
    return model


def _shown(value: object) -> str:
    text = value.isoformat() if isinstance(value, date) else repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"


BOUND_WORDS = {"le": "at most", "ge": "at least", "lt": "less than", "gt": "greater than"}


def _problem(error: Any, shown: str) -> str:
    """pydantic's message, or for a bound that BOUND_REASONS explains: the bound and why."""
    context = error.get("ctx") or {}
    for key, words in BOUND_WORDS.items():
        bound = context.get(key)
        if isinstance(bound, int | float) and float(bound) in BOUND_REASONS:
            return f"must be {words} {float(bound):g}{shown}: {BOUND_REASONS[float(bound)]}"
    return f"{error['msg']}{shown}"


def check_book(model: BookModel, path: str) -> None:
    """Cross-field rules of the book that single-field validation cannot see.

    - An inverse instrument settles in its underlying coin (Deribit BTC options and futures pay
      BTC), so that coin must be a collateral asset: otherwise margin would run on it while the
      ledger (`crossmargin simulate`) could not settle it. Refused here, the same for every command.
    - Delta-one marks and entry prices are divided by (inverse PnL is 1/entry − 1/mark), so they
      are at least MIN_PRICE_USD; only options may be marked or entered at 0.
    """
    symbols = {a.symbol for a in model.assets}
    kinds = {m.id: m.kind for m in model.instruments}
    for m in model.instruments:
        where = f"instruments[{m.id}]"
        if m.settlement == "inverse" and m.underlying not in symbols:
            raise BookFileError(
                path,
                f"{where}.settlement",
                f"an inverse instrument settles in its underlying coin {m.underlying!r}, which is not "
                f"among the assets ({', '.join(sorted(symbols))}); add an asset {m.underlying} or "
                "make the instrument linear",
            )
        if m.kind != "option" and m.mark_price is not None:
            _check_delta_one_price(path, f"{where}.mark_price", m.mark_price)
    for instrument_id, mark in model.market.mark_prices.items():
        if kinds.get(instrument_id, "option") != "option":
            _check_delta_one_price(path, f"market.mark_prices.{instrument_id}", mark)
    for account in model.accounts:
        for n, p in enumerate(account.positions):
            if p.entry_price is not None and kinds.get(p.instrument, "option") != "option":
                _check_delta_one_price(
                    path, f"accounts[{account.id}].positions[{n}].entry_price", p.entry_price
                )


def _check_delta_one_price(path: str, field: str, price: float) -> None:
    if price < MIN_PRICE_USD:
        raise BookFileError(
            path,
            field,
            f"must be > 0 for a non-option, at least {MIN_PRICE_USD:g} (got {price!r}): {MAGNITUDE_REASON}",
        )


def _schedule(model: MarginScheduleModel | None) -> MarginSchedule:
    if model is None:
        return MarginSchedule()
    if model.tiers is None:
        assert model.initial_rate is not None and model.maintenance_rate is not None
        return MarginSchedule.flat(
            initial_rate=model.initial_rate,
            maintenance_rate=model.maintenance_rate,
            rate_per_unit=model.rate_per_unit,
        )
    tiers = tuple(
        RateTier(
            above_notional_usd=t.above_notional_usd,
            initial_rate=t.resolved_initial_rate,
            maintenance_rate=t.maintenance_rate,
        )
        for t in model.tiers
    )
    return MarginSchedule(tiers=tiers, rate_per_unit=model.rate_per_unit)


def _instrument(model: InstrumentModel) -> Instrument:
    where = f"instruments[{model.id}]"
    try:
        return Instrument(
            id=model.id,
            kind=InstrumentKind[model.kind.upper()],
            underlying=model.underlying,
            settlement=Settlement[model.settlement.upper()],
            contract_size=model.contract_size,
            margin=_schedule(model.margin),
            expiry_ns=None if model.expiry is None else to_ns(model.expiry),
            strike=model.strike,
            option_type=OptionType[model.option_type.upper()] if model.option_type else OptionType.NONE,
        )
    except InputError as error:
        field = error.field if error.field.startswith("instruments[") else f"{where}.{error.field}"
        raise InputError(field, error.problem) from None


def _add_tables(
    model: BookModel,
    file: Path,
    instruments: InstrumentTable,
    assets: AssetTable,
    account_ids: list[str],
    inline: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    balances: FloatArray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, FloatArray, list[str]]:
    """The inline positions and balances plus the tables' rows, columnar (`tables`): accounts named
    only in the tables follow the inline ones, sorted by id; balances of one account and asset add up.
    Returns (account row, instrument row, quantity, entry price (NaN = today's mark), balances
    (n_accounts, n_assets), account ids)."""
    import pyarrow as pa  # here, not at import: inline books never load Arrow
    import pyarrow.compute as pc

    from crossmargin.adapters.arrow import string_array
    from crossmargin.adapters.files.tables import read_table, rows_of, rows_of_small

    positions = balances_table = None
    if model.positions_file:
        positions = read_table(
            file.parent / model.positions_file,
            ("account", "instrument", "quantity"),
            ("entry_price",),
            # entry_price > 0 (options >= 0) is checked below, per instrument
            bounds={"quantity": (-MAX_AMOUNT, MAX_AMOUNT), "entry_price": (-np.inf, MAX_PRICE_USD)},
        )
    if model.balances_file:
        balances_table = read_table(
            file.parent / model.balances_file,
            ("account", "asset", "balance"),
            bounds={"balance": (-MAX_AMOUNT, MAX_AMOUNT)},
        )
    tables = [t for t in (positions, balances_table) if t is not None]
    inline_ids = string_array(account_ids)
    named = pc.unique(pa.concat_arrays([t.text["account"].used_values() for t in tables]))
    new_ids = named.filter(pc.invert(pc.is_in(named, value_set=inline_ids)))
    new_ids = new_ids.take(pc.sort_indices(new_ids))  # by code point (UTF-8 byte order)
    all_ids = pa.concat_arrays([inline_ids, new_ids])
    account_ids = account_ids + new_ids.to_pylist()
    balances = np.vstack([balances, np.zeros((len(new_ids), assets.n_assets))])
    rows, cols, qty, entry = inline
    if positions is not None:
        tp = positions.path
        accounts = rows_of(positions.text["account"], all_ids, "account", tp)
        instr = rows_of_small(positions.text["instrument"], instruments.index, "instrument", tp)
        q = positions.numbers["quantity"]
        if not np.all(np.isfinite(q)):
            row = int(np.flatnonzero(~np.isfinite(q))[0])
            raise BookFileError(tp, "quantity", f"must be finite, got {float(q[row])!r} (data row {row + 1})")
        table_entry = positions.numbers.get("entry_price")
        if table_entry is None:
            table_entry = np.full(q.size, np.nan)
        # Blank = today's mark (NaN); given entry prices must be > 0 (options: >= 0).
        floor_ok = np.where(instruments.is_option[instr], table_entry >= 0.0, table_entry >= MIN_PRICE_USD)
        bad_entry = ~np.isnan(table_entry) & ~(np.isfinite(table_entry) & floor_ok)
        if np.any(bad_entry):
            row = int(np.flatnonzero(bad_entry)[0])
            raise BookFileError(
                tp,
                "entry_price",
                f"must be finite and > 0 (>= 0 for options; delta-one >= {MIN_PRICE_USD:g}), "
                f"got {float(table_entry[row])!r} (data row {row + 1})",
            )
        if rows.size:  # inline positions first, then the table's
            rows, cols = np.concatenate([rows, accounts]), np.concatenate([cols, instr])
            qty, entry = np.concatenate([qty, q]), np.concatenate([entry, table_entry])
        else:  # a table-only book: its columns as they are, no copies of 10 M rows
            rows, cols, qty, entry = accounts, instr, q, table_entry
    if balances_table is not None:
        tp = balances_table.path
        accounts = rows_of(balances_table.text["account"], all_ids, "account", tp)
        assets_idx = rows_of_small(balances_table.text["asset"], assets.index, "asset", tp)
        table_balance = balances_table.numbers["balance"]
        if not np.all(np.isfinite(table_balance)):
            row = int(np.flatnonzero(~np.isfinite(table_balance))[0])
            raise BookFileError(
                tp, "balance", f"must be finite, got {float(table_balance[row])!r} (data row {row + 1})"
            )
        np.add.at(balances, (accounts, assets_idx), table_balance)
    return rows, cols, qty, entry, balances, account_ids


def load_book(path: str | Path) -> LoadedBook:
    """Load and validate a book file. Raises BookFileError; computes nothing on a bad book."""
    file = Path(path)
    where = str(file)
    model = parse_book(read_document(file), where)
    try:
        return _build(model, file)
    except BookFileError:
        raise
    except CrossMarginError as error:
        field = getattr(error, "field", "book")
        problem = getattr(error, "problem", str(error))
        raise BookFileError(where, field, problem) from None


def _build(model: BookModel, file: Path) -> LoadedBook:
    where = str(file)
    index_prices = dict(model.market.index_prices)
    assets: list[Asset] = []
    for a in model.assets:
        try:
            assets.append(
                Asset(
                    symbol=a.symbol,
                    haircut_tiers=tuple(
                        HaircutTier(above=t.above, haircut=t.haircut) for t in a.haircut_tiers
                    ),
                    liability_weight=a.liability_weight,
                    borrow_rate_apr=a.borrow_rate_apr,
                )
            )
        except InputError as error:
            raise BookFileError(where, error.field, error.problem) from None
    asset_table = AssetTable.from_assets(assets)
    instruments = InstrumentTable.from_instruments([_instrument(m) for m in model.instruments])

    marks = {
        m.id: m.mark_price for m in model.instruments if m.mark_price is not None
    } | model.market.mark_prices
    vols = {
        m.id: m.implied_vol for m in model.instruments if m.implied_vol is not None
    } | model.market.implied_vols
    forwards = {m.id: m.forward_price for m in model.instruments if m.forward_price is not None}
    forwards |= model.market.forward_prices
    funding = {m.id: m.funding_rate_8h for m in model.instruments if m.funding_rate_8h is not None}
    funding |= model.market.funding_rates_8h
    # One price per collateral asset (MarketState.build refuses an asset price and an index price
    # that disagree, naming both fields): the book file's `assets[].price_usd` is market data.
    market = MarketState.build(
        instruments,
        asset_symbols=asset_table.symbols,
        asset_prices={a.symbol: a.price_usd for a in model.assets if a.price_usd is not None},
        valuation_ns=to_ns(model.valuation_time),
        index_prices=index_prices,
        rate=model.market.rate,
        mark_prices=marks,
        implied_vols=vols,
        forward_prices=forwards,
        funding_rates_8h=funding,
    )
    valuation = revalue(instruments, market)

    # Accounts from the document, then any extra ids from the tables.
    account_ids: list[str] = [a.id for a in model.accounts]
    seen: set[str] = set()
    for account_id in account_ids:
        if account_id in seen:
            raise BookFileError(where, "accounts.id", f"duplicate account {account_id!r}")
        seen.add(account_id)
    rows: list[int] = []
    cols: list[int] = []
    qty: list[float] = []
    entry: list[float] = []
    iso_rows: list[list[float]] | None = None
    balances_rows: list[list[float]] = []
    any_iso = any(p.isolated_collateral for a in model.accounts for p in a.positions)
    if any_iso:
        iso_rows = []
    for r, account in enumerate(model.accounts):  # the document's accounts: a handful
        balance = [0.0] * asset_table.n_assets
        for symbol, amount in account.collateral.items():
            balance[asset_table.position(symbol, field_name=f"accounts[{account.id}].collateral")] = amount
        balances_rows.append(balance)
        for n, p in enumerate(account.positions):
            field = f"accounts[{account.id}].positions[{n}]"
            if p.instrument not in instruments.index:
                raise BookFileError(where, f"{field}.instrument", f"unknown instrument {p.instrument!r}")
            i = instruments.index[p.instrument]
            if p.entry_price == 0.0 and not instruments.is_option[i]:
                # Inverse PnL divides by the entry price; only an option may be entered at 0.
                raise BookFileError(where, f"{field}.entry_price", "must be > 0 for a non-option (got 0.0)")
            rows.append(r)
            cols.append(i)
            qty.append(p.quantity)
            entry.append(np.nan if p.entry_price is None else p.entry_price)
            if iso_rows is not None:
                assigned = [0.0] * asset_table.n_assets
                for symbol, amount in (p.isolated_collateral or {}).items():
                    assigned[asset_table.position(symbol, field_name=f"{field}.isolated_collateral")] = amount
                iso_rows.append(assigned)

    row_arr = np.asarray(rows, dtype=np.int64)
    col_arr = np.asarray(cols, dtype=np.int64)
    qty_arr = np.asarray(qty, dtype=np.float64)
    entry_arr = np.asarray(entry, dtype=np.float64)
    balances = np.asarray(balances_rows, dtype=np.float64).reshape(len(account_ids), asset_table.n_assets)

    if model.positions_file or model.balances_file:
        if iso_rows is not None:
            raise BookFileError(where, "positions_file", "isolated_collateral is only supported inline")
        row_arr, col_arr, qty_arr, entry_arr, balances, account_ids = _add_tables(
            model,
            file,
            instruments,
            asset_table,
            account_ids,
            (row_arr, col_arr, qty_arr, entry_arr),
            balances,
        )

    # Default entry price: today's mark in settlement units (no unrealised PnL).
    mark_settlement = np.where(
        instruments.is_option, valuation.option_premium_settlement, valuation.mark_price
    )
    missing = np.isnan(entry_arr)
    entry_arr = np.where(missing, mark_settlement[col_arr] if col_arr.size else entry_arr, entry_arr)

    book = Book.from_arrays(
        account_ids=account_ids,
        assets=asset_table,
        instruments=instruments,
        account_index=row_arr,
        instrument_index=col_arr,
        quantity=qty_arr,
        entry_price=entry_arr,
        balances=balances,
        isolated_collateral=None if iso_rows is None else np.asarray(iso_rows, dtype=np.float64),
    )
    portfolio, portfolio_overrides = _portfolio_params(model, where)
    om = model.model.option_margin
    params = CrossParams(
        option_margin=OptionMarginParams(
            initial_rate=om.initial_rate,
            initial_floor_rate=om.initial_floor_rate,
            maintenance_rate=om.maintenance_rate,
            long_premium_as_margin=om.long_premium_as_margin,
        )
    )
    return LoadedBook(
        path=where,
        book=book,
        market=market,
        params=params,
        default_model=model.model.default,
        portfolio=portfolio,
        portfolio_overrides=portfolio_overrides,
        tier_preset=model.model.tier_preset,
        source=model.source,
    )


def _portfolio_params(model: BookModel, where: str) -> tuple[PortfolioParams, PortfolioOverrides]:
    """The book's preset with its explicit overrides applied, and the overrides alone (a
    `--preset` flag swaps the preset and keeps them)."""
    config = model.model.portfolio
    try:
        params = portfolio_preset(config.preset)
    except InputError as error:
        raise BookFileError(where, "model.portfolio.preset", error.problem) from None
    addons: dict[str, Any] = {} if config.addons is None else config.addons.model_dump(exclude_none=True)
    if "stablecoins" in addons:
        addons["stablecoins"] = tuple(addons["stablecoins"])
    overrides = PortfolioOverrides(
        maintenance_fraction=config.maintenance_fraction,
        numeraire=config.numeraire,
        addons=tuple(addons.items()),
    )
    try:
        return overrides.apply(params), overrides
    except InputError as error:
        raise BookFileError(where, f"model.portfolio.{error.field}", error.problem) from None


def book_json_schema() -> dict[str, Any]:
    """JSON Schema of the book file, generated from the pydantic models."""
    schema: dict[str, Any] = BookModel.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "crossmargin book"
    return schema
