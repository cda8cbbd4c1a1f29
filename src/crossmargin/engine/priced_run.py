"""A margin run on oracle prices: the book re-priced from an oracle snapshot, collateral at the
worse of spot and smoothed, the oracle-uncertainty requirement added, and every account marked
with the status of the prices it was computed on.

Per oracle asset ("factor") the snapshot gives price, status, age, band, smoothed price and the
uncertainty add-on (`core.oracle.OracleUpdate`). A book's underlying or collateral asset of the
same name takes the oracle's price; one the oracle has no price for (an asset with too few
sources, all quotes older than the max age at the valuation time) keeps the book's price and its
accounts say `no_price`; one the quote file does not name at all keeps the book's price. The
oracle is read at the book's valuation time: quotes from 2019 make a 2025 book's prices
`no_price`, not `ok`. Then, per account (A,), sparse products only:

    collateral_usd = Σ_k haircut qty_k · min(spot_k, smoothed_k) + min(b_k, 0) · w_k · max(spot_k, smoothed_k)
    oracle_usd     = Σ_f |net USD exposure_f| · add-on_f           (core.oracle.exposure)
    IM            += oracle_usd,     MM += fraction · oracle_usd
    price_status   = worst status over the oracle assets it holds or trades: ok < held < stale < no_price

`fraction` is the model's `maintenance_fraction` (portfolio, sensitivity, VaR) or, for cross and
isolated margin (per-instrument rates), the account's own MM/IM (the book's where it has no IM).
Positions are revalued at the oracle index: delta-one marks and forwards move with it (the
book's basis kept), options are repriced at their implied vols; an underlying whose price did
not change keeps the book's marks exactly. Scenario models shock the spot-priced book; the
worse-of adjustment is applied to the base equity.

Report: `margin_report` keys, plus per account "price_status" and "oracle_uncertainty_usd", and
a top-level "prices" block (one entry per oracle asset: price, smoothed, status, age, add-on).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from crossmargin.core.collateral import value_collateral
from crossmargin.core.margin import MarginModel, MarginResult
from crossmargin.core.margin.options_rule import OptionMarginParams
from crossmargin.core.margin.requirements import book_totals
from crossmargin.core.margin.result import EQUITY_ZERO_TOLERANCE, bankrupt_accounts, margin_ratio
from crossmargin.core.market import MarketState
from crossmargin.core.oracle import OracleParams, OraclePolicy, OracleUpdate
from crossmargin.core.oracle.exposure import (
    account_exposure,
    conservative_collateral_of,
    factor_index,
    uncertainty_requirement_usd,
    worst_status,
)
from crossmargin.core.oracle.params import FloatArray
from crossmargin.core.pricing import revalue
from crossmargin.engine.inputs import LoadedBook, QuoteTable
from crossmargin.engine.margin_run import MarginRun, make_model, margin_report
from crossmargin.engine.oracle_replay import price_message, replay, status_label
from crossmargin.engine.ports import PriceHistorySource, QuoteSource, VolatilityFilter
from crossmargin.errors import InputError


@dataclass(frozen=True, slots=True)
class PriceSnapshot:
    """The oracle's output for its assets (names in `assets`, aligned with the update's arrays)."""

    assets: tuple[str, ...]
    update: OracleUpdate

    def __post_init__(self) -> None:
        if len(self.assets) != self.update.price_usd.shape[0]:
            raise InputError(
                "prices", f"{len(self.assets)} names for {self.update.price_usd.shape[0]} assets"
            )


def snapshot_from_quotes(
    table: QuoteTable,
    *,
    params: OracleParams | None = None,
    policy: OraclePolicy | None = None,
    as_of_ns: int | None = None,
) -> PriceSnapshot:
    """Replay a quote table through the oracle (as `crossmargin oracle replay` does) and keep the
    last update; with `as_of_ns` (a book's valuation time) the last update is at that time, so a
    quote older than the oracle's max age there is dropped and its asset is stale or has no price.
    A quote after `as_of_ns` is refused: the book would be valued on a price it could not know."""
    if len(table) == 0:
        raise InputError("prices", "the quotes have no rows")
    if as_of_ns is not None and int(table.time_ns[-1]) > as_of_ns:
        late = int(np.flatnonzero(table.time_ns > as_of_ns)[0])
        raise InputError(
            f"prices[{late}].time",
            f"{_iso(int(table.time_ns[late]))} is after the book's valuation time {_iso(as_of_ns)}",
        )
    last: OracleUpdate | None = None
    for step in replay(table, params=params or OracleParams(), policy=policy, until_ns=as_of_ns):
        last = step.update
    if last is None:  # pragma: no cover - a non-empty table replays at least one update
        raise InputError("prices", "the quotes have no rows")
    return PriceSnapshot(assets=table.assets, update=last)


def _iso(ns: int) -> str:
    """2025-12-30T17:31:15Z (UTC, whole seconds): times in messages as the files write them."""
    return np.datetime_as_string(np.datetime64(ns // 1_000_000_000, "s"), unit="s") + "Z"


def load_snapshot(
    source: QuoteSource,
    *,
    params: OracleParams | None = None,
    policy: OraclePolicy | None = None,
    as_of_ns: int | None = None,
) -> PriceSnapshot:
    """A quote source's quotes (a replay file: `adapters.feeds.QuoteFile`) → its oracle prices at
    `as_of_ns` (default: the last quote's time; `snapshot_from_quotes`)."""
    return snapshot_from_quotes(source.quote_table(), params=params, policy=policy, as_of_ns=as_of_ns)


def _check_snapshot(loaded: LoadedBook, snapshot: PriceSnapshot) -> None:
    """The snapshot must be the oracle at the book's valuation time (ages and statuses are those
    of that moment), and name the book's assets exactly: `btc` for `BTC` is refused, not ignored."""
    valuation_ns = loaded.market.valuation_ns
    if snapshot.update.as_of_ns != valuation_ns:
        raise InputError(
            "prices",
            f"the oracle snapshot is at {_iso(snapshot.update.as_of_ns)}, the book is valued at "
            f"{_iso(valuation_ns)}: replay the quotes up to the valuation time (as_of_ns=)",
        )
    names = set(loaded.market.underlyings) | set(loaded.book.assets.symbols)
    folded = {n.casefold(): n for n in names}
    for asset in snapshot.assets:
        if asset not in names and asset.casefold() in folded:
            raise InputError(
                f"prices.asset[{asset}]",
                f"not a name of the book (names are exact): the book's is {folded[asset.casefold()]!r}",
            )


@dataclass(frozen=True, slots=True)
class PricedBook:
    """A book re-priced from a snapshot; factor maps −1 where the oracle gives no price."""

    loaded: LoadedBook
    underlying_factor: np.ndarray
    asset_factor: np.ndarray
    asset_smoothed_usd: FloatArray  # (K,), NaN where the oracle does not price the asset


def _oracle_prices(
    snapshot: PriceSnapshot, names: tuple[str, ...], fallback: FloatArray
) -> tuple[np.ndarray, FloatArray]:
    factor = factor_index(names, snapshot.assets)
    oracle = np.where(factor >= 0, snapshot.update.price_usd[np.maximum(factor, 0)], np.nan)
    priced = (factor >= 0) & np.isfinite(oracle) & (oracle > 0.0)
    return np.where(priced, factor, -1), np.where(priced, oracle, fallback)


def priced_book(loaded: LoadedBook, snapshot: PriceSnapshot) -> PricedBook:
    """The book and market at the snapshot's prices (module docstring)."""
    book = loaded.book
    market = loaded.market
    instruments = book.instruments
    underlying_factor, index_usd = _oracle_prices(snapshot, market.underlyings, market.index_price_usd)
    asset_factor, asset_usd = _oracle_prices(snapshot, book.assets.symbols, market.asset_prices(book.assets))
    ratio = (index_usd / market.index_price_usd)[instruments.underlying_index]
    moved = ratio != 1.0
    option = instruments.is_option
    # Options: the book's (given or solved) implied vol carries over; their marks are re-derived.
    vols = revalue(instruments, market).implied_vol
    new_market = MarketState(
        valuation_ns=market.valuation_ns,
        underlyings=market.underlyings,
        index_price_usd=index_usd,
        rate=market.rate,
        mark_price=np.where(moved, np.where(option, np.nan, market.mark_price * ratio), market.mark_price),
        implied_vol=np.where(moved & option, vols, market.implied_vol),
        forward_price_usd=np.where(moved, market.forward_price_usd * ratio, market.forward_price_usd),
        funding_rate_8h=market.funding_rate_8h,
        asset_symbols=market.asset_symbols,
        asset_price_usd=asset_usd,
    )
    smoothed = np.where(asset_factor >= 0, snapshot.update.smoothed_usd[np.maximum(asset_factor, 0)], np.nan)
    return PricedBook(
        loaded=dataclasses.replace(loaded, market=new_market),
        underlying_factor=underlying_factor,
        asset_factor=asset_factor,
        asset_smoothed_usd=smoothed,
    )


@dataclass(frozen=True, slots=True)
class PricedRun:
    """A margin run on oracle prices. Per account of the whole book (A,): `price_status`
    (PriceStatus codes) and `oracle_uncertainty_usd` (the IM add-on)."""

    run: MarginRun
    snapshot: PriceSnapshot
    price_status: np.ndarray
    oracle_uncertainty_usd: FloatArray


def _maintenance_fraction(model: MarginModel, result: MarginResult) -> FloatArray:
    params = getattr(model, "params", None)
    fraction = getattr(params, "maintenance_fraction", None)
    n = result.initial_margin_usd.shape[0]
    if isinstance(fraction, float):
        return np.full(n, fraction)
    im = result.initial_margin_usd
    total_im = float(im.sum())
    book_fraction = float(result.maintenance_margin_usd.sum()) / total_im if total_im > 0.0 else 1.0
    own: FloatArray = np.where(
        im > 0.0, result.maintenance_margin_usd / np.where(im > 0.0, im, 1.0), book_fraction
    )
    return np.clip(own, 0.0, 1.0)


def _adjusted(
    result: MarginResult,
    *,
    collateral_change_usd: FloatArray,
    oracle_usd: FloatArray,
    fraction: FloatArray,
    gross_value_usd: FloatArray,
) -> MarginResult:
    """The spot result with the worse-of collateral change and the oracle add-on; bankrupt by the
    models' rule (equity <= EQUITY_ZERO_TOLERANCE x gross value, `MarginResult.pooled`)."""
    collateral = result.collateral_value_usd + collateral_change_usd
    initial = result.initial_margin_usd + oracle_usd
    maintenance = result.maintenance_margin_usd + fraction * oracle_usd
    if result.model != "isolated":
        return MarginResult.pooled(
            model=result.model,
            collateral_value_usd=collateral,
            position_value_usd=result.position_value_usd,
            initial_margin_usd=initial,
            maintenance_margin_usd=maintenance,
            gross_value_usd=gross_value_usd,
        )
    # Isolated: the add-on and the collateral change fall on the account's pool; its ratio is the
    # worse of its positions' own ratios and the pooled one.
    equity = result.equity_usd + collateral_change_usd
    bankrupt = result.bankrupt | bankrupt_accounts(
        equity, collateral, maintenance, EQUITY_ZERO_TOLERANCE * gross_value_usd
    )
    pooled_ratio = margin_ratio(maintenance, equity, bankrupt)
    return MarginResult(
        model=result.model,
        equity_usd=equity,
        collateral_value_usd=collateral,
        position_value_usd=result.position_value_usd,
        initial_margin_usd=initial,
        maintenance_margin_usd=maintenance,
        available_usd=result.available_usd + collateral_change_usd - oracle_usd,
        margin_ratio=np.where(bankrupt, np.nan, np.fmax(result.margin_ratio, pooled_ratio)),
        bankrupt=bankrupt,
    )


def run_priced_margin(
    loaded: LoadedBook,
    snapshot: PriceSnapshot,
    *,
    model: str | None = None,
    preset: str | None = None,
    account_ids: Sequence[str] | None = None,
    history: PriceHistorySource | None = None,
    volatility: VolatilityFilter | None = None,
    max_history_gap_days: int | None = None,
) -> PricedRun:
    """Evaluate the whole book on the snapshot's prices (module docstring), then break down the
    requested accounts (all by default). `history`, `volatility`: the VaR model's (`make_model`).
    The snapshot is the oracle at the book's valuation time (`snapshot_from_quotes(as_of_ns=)`)."""
    _check_snapshot(loaded, snapshot)
    priced = priced_book(loaded, snapshot)
    choice = make_model(
        model or loaded.default_model,
        priced.loaded,
        preset,
        history=history,
        volatility=volatility,
        max_history_gap_days=max_history_gap_days,
    )
    book = choice.book
    market = priced.loaded.market
    valuation = revalue(book.instruments, market)
    asset_usd = market.asset_prices(book.assets)
    spot_result = choice.model.evaluate(book, market, valuation)
    rows = list(range(book.n_accounts)) if account_ids is None else [book.account_row(a) for a in account_ids]
    breakdown = choice.model.breakdown(book, market, rows, valuation)

    exposure = account_exposure(
        book,
        delta_per_contract_usd=valuation.delta_usd * valuation.spot_usd,
        underlying_factor=priced.underlying_factor,
        asset_factor=priced.asset_factor,
        asset_price_usd=asset_usd,
        n_factors=len(snapshot.assets),
    )
    update = snapshot.update
    # The status rests on every oracle asset an account touches, priced or not: an asset the oracle
    # names but has no price for keeps the book's price and says `no_price`, never `ok`.
    named = account_exposure(
        book,
        delta_per_contract_usd=valuation.delta_usd * valuation.spot_usd,
        underlying_factor=factor_index(market.underlyings, snapshot.assets),
        asset_factor=factor_index(book.assets.symbols, snapshot.assets),
        asset_price_usd=asset_usd,
        n_factors=len(snapshot.assets),
    )
    price_status = worst_status(named.touched, update.status)
    oracle_usd = uncertainty_requirement_usd(exposure.delta_usd, update.uncertainty_addon)
    conservative = conservative_collateral_of(
        book, balances=book.balances, spot_usd=asset_usd, smoothed_usd=priced.asset_smoothed_usd
    )
    change = conservative.sum(axis=1) - value_collateral(book.balances, book.assets, asset_usd).total_usd
    result = _adjusted(
        spot_result,
        collateral_change_usd=change,
        oracle_usd=oracle_usd,
        fraction=_maintenance_fraction(choice.model, spot_result),
        # The rounding scale of equity: every term's magnitude, the collateral change's included.
        gross_value_usd=book_totals(book, valuation, OptionMarginParams(), asset_usd).gross_value_usd
        + np.abs(change),
    )
    breakdown = dataclasses.replace(
        breakdown,
        collateral_value_usd=conservative_collateral_of(
            book, balances=breakdown.balance, spot_usd=asset_usd, smoothed_usd=priced.asset_smoothed_usd
        ),
    )
    run = MarginRun(
        loaded=priced.loaded,
        model=choice.name,
        result=result,
        breakdown=breakdown,
        preset=choice.preset,
        # The model and priced book: --levels searches under the run's own model (portfolio, VaR),
        # not cross, and a VaR report carries its var_history block (how stale the window is).
        margin_model=choice.model,
        model_book=book,
    )
    return PricedRun(run=run, snapshot=snapshot, price_status=price_status, oracle_uncertainty_usd=oracle_usd)


def priced_margin_report(priced: PricedRun) -> dict[str, Any]:
    """`margin_report` plus "price_status" and "oracle_uncertainty_usd" per account and the
    oracle's "prices" (module docstring)."""
    report = margin_report(priced.run)
    book = priced.run.loaded.book
    for account in report["accounts"]:  # report formatting, not the risk path
        row = book.account_row(account["account_id"])
        account["price_status"] = status_label(int(priced.price_status[row]))
        account["oracle_uncertainty_usd"] = float(priced.oracle_uncertainty_usd[row])
    update = priced.snapshot.update
    loaded = priced.run.loaded
    names = set(loaded.market.underlyings) | set(loaded.book.assets.symbols)
    prices = []
    for i, name in enumerate(priced.snapshot.assets):
        message = price_message(i, name, update)
        message["status"] = status_label(int(update.status[i]))
        message["used_by_book"] = name in names  # a quoted asset the book does not hold: unused
        prices.append(message)
    report["prices"] = prices
    return report
