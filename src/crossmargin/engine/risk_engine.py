"""The long-lived risk engine: one prepared book, one market, one margin model, kept in step.

A CLI run over a file is one use of it (load, `RiskEngine(book, market, model).result`); a service
or a simulation keeps it alive and feeds it:

    engine = RiskEngine(book, market, CrossMargin())
    engine.on_tick(PriceTick(prices_usd={"BTC": 61_000.0}))      # re-margins BTC holders only
    engine.on_account(AccountUpdate(account_id="alice", ...))      # re-margins alice only
    engine.use_model(PortfolioMargin(portfolio_preset("deribit-pm")))   # same book, no rebuild

Incremental re-margin. Every margin model here is a function of one account's own positions and
balances and of the market data of what it holds: the instrument table and scenario set are the
book's, never the other accounts'. So after a tick, only accounts holding an instrument on an
underlying whose market data moved, or a balance of an asset whose price moved, can change; the
engine re-evaluates exactly those rows as a sub-book (same instrument table and assets) and writes
them into its result arrays. tests/property/test_risk_engine.py holds the result equal to a full
recompute bit for bit, for every model. The granularity is the underlying (an option's vol change
re-margins every holder of that underlying) because a methodology may scale a whole underlying's
grid by its own vols.

Collateral-only accounts. Under a model that says its requirement and position value never read
a collateral price (`core.margin.cross.CollateralRevaluation`: cross margin), an account holding a
moved asset but no position on a moved underlying keeps its IM, MM and position value; its
collateral and gross value are summed afresh by `requirements.value_totals` (the cross kernel's
own sums), and equity, available, ratio and bankrupt follow by `MarginResult.pooled`, the same bits
as a full recompute. Only the holders of a moved position go through the model; every touched
account counts towards the full-recompute share (both kinds are read in place, each a scattered
memory round trip). Any other model, unknown ones included, re-margins every holder in full.

A change of valuation time or rate moves every instrument with an expiry (and a VaR window), so it
re-margins the whole book. An account event changes one account: its new positions and balances
wait in an overlay (O(account) per event, no book rebuild) until the next full recompute folds
every pending account into one new book.

Money here is float64 risk maths (USD); the ledger's exact integer balances are converted at the
ledger's edge (`core.ledger.state.book_of`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from crossmargin.core.book import Book, compressed_slots, grown_rows
from crossmargin.core.checks import check_range
from crossmargin.core.margin import Breakdown, MarginModel, MarginResult
from crossmargin.core.margin.cross import CollateralRevaluation, RowEvaluation
from crossmargin.core.margin.result import RESULT_ARRAYS
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import InstrumentValuation, revalue
from crossmargin.core.sparse_columns import replace_rows
from crossmargin.errors import InputError

if TYPE_CHECKING:
    import scipy.sparse as sp

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# Account events kept as an overlay before they are folded into one new book: more than
# MAX_PENDING accounts and more than one in PENDING_SHARE of the book's. A fold is a vectorised
# splice of the whole book (~70 ms at 1M accounts and 10M positions, AMD Zen 5: ~70 ns an
# account), a pending account is re-margined on its own book at every tick: one in 128 keeps
# both small, ~9 us of fold an event and ~8k pending accounts at 1M (a tick after 200 events
# p50 18.2 -> 20.8 ms against 1,024; flushing 200 events 2.0 ms, 49 ms when it folds).
MAX_PENDING = 1024
PENDING_SHARE = 128
# Above this share of accounts touched, a tick recomputes the whole book: gathering a sub-book
# costs about as much per account as the kernel itself. bench/bench_engine.py --concentrated, 1M
# accounts (AMD Zen 5): 31 % of accounts re-margined in 65 ms against 73 ms for the whole book,
# 13 % in 47 ms, 0.1-0.5 % in 2-5 ms.
FULL_RECOMPUTE_FRACTION = 0.35
# The same for a model that reads the touched accounts in place (`RowEvaluation`: cross margin),
# counting collateral-only accounts too: its whole-book pass streams the book at a few ns an
# account, while touched accounts scattered over the book cost a memory round trip or more each.
# bench_engine --concentrated, 1M accounts (AMD Zen 5): the whole book 16 ms (a tick through
# the engine 19-23 ms); scattered, 80 k accounts (8 %) 14-18 ms, 134 k (13 %) 20 ms, 314 k (31 %)
# 35 ms, 5 k 1.2 ms.
IN_PLACE_FULL_RECOMPUTE_FRACTION = 0.10

# What a collateral-only revaluation changes (`CollateralRevaluation`).
_COLLATERAL_ARRAYS = ("equity_usd", "collateral_value_usd", "available_usd", "margin_ratio", "bankrupt")


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceTick:
    """New market data. `prices_usd`: one price per symbol, the index of an underlying and the price
    of the collateral asset of the same name together (one price per asset). The per-instrument
    maps are keyed by instrument id: delta-one mark (USD; coin for inverse options), implied vol
    (per year), forward (USD), funding rate per 8 h. Unnamed values stay as they were."""

    prices_usd: Mapping[str, float] = field(default_factory=dict)
    mark_prices: Mapping[str, float] = field(default_factory=dict)
    implied_vols: Mapping[str, float] = field(default_factory=dict)
    forward_prices_usd: Mapping[str, float] = field(default_factory=dict)
    funding_rates_8h: Mapping[str, float] = field(default_factory=dict)
    valuation_ns: int | None = None  # None: the engine's valuation time stays


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountUpdate:
    """An account's whole new state after a ledger event: its positions (instrument ids, signed
    contracts, entry prices in settlement units) and its balances by asset (asset units; assets not
    named are zero)."""

    account_id: str
    instrument_ids: Sequence[str]
    quantity: Sequence[float]
    entry_price: Sequence[float]
    balances: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class Remargin:
    """What one update did: the account rows re-margined (sorted), and among them the rows that
    crossed into (`newly_below_maintenance`) or out of (`recovered`) liquidation territory and the
    rows only repriced as collateral (`collateral_only_rows`, a `CollateralRevaluation` model)."""

    account_rows: IntArray
    newly_below_maintenance: IntArray
    recovered: IntArray
    full_recompute: bool
    # Among account_rows, those whose collateral alone was revalued (no model run), sorted.
    collateral_only_rows: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


class RiskEngine:
    """Holds a prepared book, a market and a model; keeps `result` current (module docstring).

    `result` is the engine's own MarginResult, updated in place by `on_tick` and `on_account`:
    copy its arrays to keep a past state. Not thread-safe: one writer (a service serialises its
    updates through one task).
    """

    def __init__(
        self,
        book: Book,
        market: MarketState,
        model: MarginModel,
        *,
        full_recompute_fraction: float | None = None,
    ) -> None:
        """`full_recompute_fraction`: above this share of accounts touched by a tick, recompute
        the whole book instead (same numbers; 1.0 never does, e.g. to test the incremental path);
        None: the model's measured default (IN_PLACE_FULL_RECOMPUTE_FRACTION for a model that
        reads accounts in place, FULL_RECOMPUTE_FRACTION otherwise), following `use_model`."""
        if full_recompute_fraction is not None:
            check_range(full_recompute_fraction, low=0.0, high=1.0, name="full_recompute_fraction")
        self._fraction_given = full_recompute_fraction
        if market.underlyings != book.instruments.underlyings:
            raise InputError("market.underlyings", "must be the book's instrument table's underlyings")
        market.asset_prices(book.assets)  # priced for this book's collateral, or refused here
        self._book = book
        self._market = market
        self._model = model
        self._pending = _Overlay()  # accounts' states after their last events, not yet folded
        self._holder_index: _Holders | None = None  # built on the first incremental tick
        self._result_buffers: dict[str, npt.NDArray[Any]] = {}  # result rows to grow into
        self._valuation = revalue(book.instruments, market)
        self._result = self._evaluate_all()

    # -- what the engine holds ------------------------------------------------------------------

    @property
    def book(self) -> Book:
        """The current book (pending account events folded in)."""
        self._fold_pending()
        return self._book

    @property
    def account_ids(self) -> Sequence[str]:
        """The book's account ids, in row order, without folding pending events (an event never
        changes them; `book` folds: a splice of the whole book)."""
        return self._book.account_ids

    @property
    def pending_accounts(self) -> int:
        """Accounts whose last event waits in the overlay, not yet folded into the book."""
        return len(self._pending)

    @property
    def market(self) -> MarketState:
        return self._market

    @property
    def model(self) -> MarginModel:
        return self._model

    @property
    def result(self) -> MarginResult:
        return self._result

    @property
    def valuation(self) -> InstrumentValuation:
        """Every instrument revalued once at the current market (shared by every model)."""
        return self._valuation

    def account_row(self, account_id: str) -> int:
        return self._book.account_row(account_id)

    def index_holders(self) -> None:
        """Build who-holds-what now rather than on the first incremental tick: a long-lived
        monitor pays for it at start-up (~0.3 s at 1M accounts), not inside a tick's latency.
        Under a `CollateralRevaluation` model the collateral revaluation runs once over the whole
        book too (result discarded): its kernel is compiled or loaded now, not at the first tick
        (~0.1-0.3 s once)."""
        self._holders()
        model = self._model
        if isinstance(model, CollateralRevaluation) and not self._pending:
            rows = np.arange(self._book.n_accounts, dtype=np.int64)
            model.revalue_collateral(self._book, self._market, self._valuation, rows, self._result)

    # -- updates --------------------------------------------------------------------------------

    @property
    def _full_recompute_fraction(self) -> float:
        if self._fraction_given is not None:
            return self._fraction_given
        if isinstance(self._model, RowEvaluation):
            return IN_PLACE_FULL_RECOMPUTE_FRACTION
        return FULL_RECOMPUTE_FRACTION

    def use_model(self, model: MarginModel) -> MarginResult:
        """Switch model or preset (a portfolio preset, a tier preset: `CrossParams.tier_preset`)
        and recompute the whole book. The book and its price-independent structures are kept:
        presets are model parameters, never a new book."""
        self._model = model
        self._result = self._evaluate_all()
        return self._result

    def on_tick(self, tick: PriceTick) -> Remargin:
        """Apply new market data; re-margin the accounts holding what moved (module docstring)."""
        return self.on_market(self._market_after(tick))

    def on_market(self, market: MarketState) -> Remargin:
        """A whole new market state (index, marks, vols, collateral prices), e.g. rebuilt from a
        ledger; what differs from the current one is re-margined as by `on_tick`. The book is
        untouched: no price lives in it."""
        if market.underlyings != self._market.underlyings:
            raise InputError("market.underlyings", "must be the book's instrument table's underlyings")
        assets = self._book.assets
        time_moved = market.valuation_ns != self._market.valuation_ns or market.rate != self._market.rate
        moved_underlying = _moved_underlyings(self._market, market, self._book)
        moved_asset = market.asset_prices(assets) != self._market.asset_prices(assets)
        symbol_moved = set(np.asarray(market.underlyings)[moved_underlying].tolist())
        moved_asset |= np.array([s in symbol_moved for s in assets.symbols], dtype=bool)
        self._market = market
        self._valuation = revalue(self._book.instruments, market)
        if time_moved:
            return self._recompute_all()
        moved_instrument = moved_underlying[self._book.instruments.underlying_index]
        if isinstance(self._model, CollateralRevaluation):
            return self._remargin_split(moved_underlying, moved_instrument, moved_asset)
        limit = self._full_recompute_fraction * self._book.n_accounts
        if self._holders().widest_column(moved_instrument, moved_asset) > limit:
            return self._recompute_all()  # one moved column alone has more holders: skip gathering
        rows = self._with_pending(self._holders().accounts_holding(moved_instrument, moved_asset))
        if rows.size > limit:
            return self._recompute_all()  # same numbers (the property test), less gathering
        return self._remargin(rows)

    def on_book(self, book: Book, market: MarketState) -> Remargin:
        """Every account and the market at once: a venue-wide stress round, where liquidations
        changed positions and balances across the book and prices moved. `book` has the same
        accounts, instruments and assets; `market` the new prices; a full recompute."""
        if book.account_ids is not self._book.account_ids and book.account_ids != self._book.account_ids:
            raise InputError("book", "a venue-wide update may change holdings, not accounts")
        if market.underlyings != self._market.underlyings:
            raise InputError("market.underlyings", "must be the book's instrument table's underlyings")
        market.asset_prices(book.assets)
        self._pending = _Overlay()
        self._book = book
        self._market = market
        self._holder_index = None
        self._valuation = revalue(book.instruments, market)
        return self._recompute_all()

    def on_holdings(self, book: Book, rows: IntArray) -> Remargin:
        """Some accounts' positions and balances changed at today's market (a stress round's
        liquidations and ADL at unchanged prices): `book` is the whole new book (same accounts,
        instruments and assets), `rows` (sorted) the accounts that changed; only they are
        re-margined (every model's result for an account is a function of that account alone)."""
        if book.account_ids is not self._book.account_ids and book.account_ids != self._book.account_ids:
            raise InputError("book", "a holdings update may change holdings, not accounts")
        self._fold_pending()
        self._book = book
        self._holder_index = None
        if rows.size > self._full_recompute_fraction * book.n_accounts:
            return self._recompute_all()  # same numbers, less gathering (as on_market)
        return self._remargin(np.asarray(rows, dtype=np.int64))

    def on_account(self, update: AccountUpdate) -> Remargin:
        """Replace one account's positions and balances (after a ledger event) and re-margin it."""
        return self.on_accounts((update,))

    def on_accounts(self, updates: Sequence[AccountUpdate]) -> Remargin:
        """Replace accounts' positions and balances (after ledger events) and re-margin them: one
        book for the batch and one model call, where an `on_account` each cost ~0.13 ms (1M
        accounts, AMD Zen 5). An account named twice takes its last update."""
        book = self._book
        if book.isolated_collateral is not None:
            raise InputError(
                "isolated_collateral",
                "account updates on a book with isolated collateral assignments are not supported; "
                "reload the book",
            )
        latest = list({u.account_id: u for u in updates}.values())  # the last of each account
        rows = [book.account_row(u.account_id) for u in latest]
        batch = _accounts_book(latest, book)
        self._pending.add(np.array(rows, dtype=np.int64), batch)
        if len(self._pending) > max(MAX_PENDING, self._book.n_accounts // PENDING_SHARE):
            self._fold_pending()
        return self._remargin(np.array(sorted(rows), dtype=np.int64))

    def add_accounts(self, account_ids: Sequence[str]) -> Remargin:
        """Accounts opened with nothing in them, after the book's others (`Book.with_new_accounts`):
        only they are evaluated; every other account's result, the pending events and the holder
        index are kept (the result arrays are copied once, O(accounts), not recomputed). A venue
        opens accounts between ticks: rebuilding the engine for each cost the next tick a whole
        book's preparation."""
        if not account_ids:
            return _remargin(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool), self._result, full=False)
        before = self._book.n_accounts
        self._book = self._book.with_new_accounts(account_ids)
        rows = np.arange(before, self._book.n_accounts, dtype=np.int64)
        part = self._evaluate_rows(rows)
        assert part is not None  # rows is not empty
        grown = self._grown_results(rows.size)
        for name, array in grown.items():
            array[before:] = getattr(part, name)
        # Every row checked already: the old ones in the result, the new ones in `part`.
        self._result = MarginResult.of_checked_rows(self._result.model, **grown)
        if self._holder_index is not None:
            self._holder_index = self._holder_index.with_rows(self._book.n_accounts)
        return _remargin(rows, np.zeros(rows.size, dtype=bool), self._result, full=False)

    def reserve_rows(self) -> None:
        """Move the book's and the results' per-account arrays into growth buffers with room, as
        the first sign-up would (`grown_rows`): a server does it while warming up, so that the
        tick after its first sign-up does not pay that copy (~75 ms at 1M accounts). The same
        numbers; a book with isolated collateral (which cannot grow) is left as it is."""
        if self._book.isolated_collateral is not None:
            return
        self._book = self._book.with_new_accounts(())
        self._result = MarginResult.of_checked_rows(self._result.model, **self._grown_results(0))

    def warm_up(self) -> None:
        """Run once, results discarded, each kernel build a tick or an account event can reach
        that building the engine did not: the model on one account and on every account read in
        place (`RowEvaluation`: the serial and the parallel build of the row path), on a
        gathered book of one account (the path of accounts with pending events), the
        collateral-only revaluation both ways (`CollateralRevaluation`), the fold's splice
        (`Book.with_rows_replaced`, of no rows) and its holder-index update. Nothing the engine
        holds changes, but that its holder index is built if it was not. A server
        calls it before it reports ready (`Monitor.warm_up`): a build first used in a tick cost
        that tick its load from numba's disk cache (5-30 ms, once a process) or, on a fresh
        install, its compile (0.3-1.3 s; 1M accounts, AMD Zen 5)."""
        n = self._book.n_accounts
        if n == 0:
            return
        model, book, market, valuation = self._model, self._book, self._market, self._valuation
        every = np.arange(n, dtype=np.int64)
        for rows in (every[:1], every):
            if isinstance(model, RowEvaluation):
                model.evaluate_rows(book, market, valuation, rows)
            if isinstance(model, CollateralRevaluation):
                model.revalue_collateral(book, market, valuation, rows, self._result)
        model.evaluate(book.select(every[:1]), market, valuation)
        if book.isolated_collateral is None:  # the fold's splice, for this book's array types
            book.with_rows_replaced(every[:0], book.select(every[:0]))
        # The fold's update of the holder index (built here if it was not: every incremental
        # tick needs it), for its matrices' index types.
        self._holders().with_rows_replaced(every[:0], book, book)

    def _grown_results(self, n: int) -> dict[str, npt.NDArray[Any]]:
        """The result arrays with n rows after them (to be written by the caller), in growth
        buffers with room (`grown_rows`: no O(accounts) copy per growth)."""
        grown = {}
        for name in RESULT_ARRAYS:
            grown[name], self._result_buffers[name] = grown_rows(
                getattr(self._result, name), n, self._result_buffers.get(name), writeable=True
            )
        return grown

    # -- questions ------------------------------------------------------------------------------

    def breakdown(self, account_ids: Sequence[str] | None = None) -> Breakdown:
        """Per-position and per-asset contributions under the current model (all accounts by
        default), from the engine's own valuation."""
        book = self.book
        rows = range(book.n_accounts) if account_ids is None else [book.account_row(a) for a in account_ids]
        return self._model.breakdown(book, self._market, rows, self._valuation)

    def recompute(self) -> MarginResult:
        """A full recompute from scratch (what the incremental updates are held equal to)."""
        self._recompute_all()
        return self._result

    # -- internals ------------------------------------------------------------------------------

    def _evaluate_all(self) -> MarginResult:
        """The whole book's result: the model over the book, then the accounts with pending events
        over their own books, written over their rows. Every model's result for an account is a
        function of that account alone, so the same bits as over the folded book, without the
        fold (an O(positions) splice and the holder index's update) inside a tick."""
        result = self._whole_book_result()
        if self._pending:
            rows = self._pending.rows
            part = self._model.evaluate(self._sub_book(rows), self._market, self._valuation)
            for name in RESULT_ARRAYS:
                getattr(result, name)[rows] = getattr(part, name)
        return result

    def _whole_book_result(self) -> MarginResult:
        result = self._model.evaluate(self._book, self._market, self._valuation)
        # Incremental updates write into these arrays: take them as they are when the evaluation
        # made them (writable, owning their memory: 64 MB not copied at 1M accounts), copy otherwise.
        arrays = {name: getattr(result, name) for name in RESULT_ARRAYS}
        if self._result_buffers:
            # A grown engine keeps its results in the leading rows of its growth buffers, so
            # that the next sign-up copies nothing: fresh arrays were copied into new buffers
            # at the next growth (~25 ms at 1M accounts), the copy here is ~5 ms.
            held = {name: self._in_buffer(name, a) for name, a in arrays.items()}
            return MarginResult.of_checked_rows(result.model, **held)  # the model's, checked
        if all(a.flags.writeable and a.flags.owndata for a in arrays.values()):
            return result
        owned: dict[str, FloatArray] = {name: np.array(a) for name, a in arrays.items()}
        return dataclasses.replace(result, **owned)  # type: ignore[arg-type]

    def _in_buffer(self, name: str, array: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """`array` copied into the leading rows of its growth buffer (a writable view), or an
        owned copy when the buffer does not fit it."""
        buffer = self._result_buffers.get(name)
        n = array.shape[0]
        fits = buffer is not None and buffer.shape[0] >= n and buffer.shape[1:] == array.shape[1:]
        if buffer is None or not fits or buffer.dtype != array.dtype:
            return np.array(array)
        buffer[:n] = array
        view: npt.NDArray[Any] = buffer[:n]
        return view

    def _recompute_all(self) -> Remargin:
        before = self._result.below_maintenance
        self._result = self._evaluate_all()
        after = self._result.below_maintenance
        return Remargin(
            account_rows=np.arange(self._book.n_accounts, dtype=np.int64),
            newly_below_maintenance=np.flatnonzero(after & ~before),
            recovered=np.flatnonzero(before & ~after),
            full_recompute=True,
        )

    def _with_pending(self, rows: IntArray) -> IntArray:
        """`rows` and every account with a pending event (the holder index predates their events,
        so they are re-margined in full at every tick)."""
        if not self._pending:
            return rows
        return np.union1d(rows, self._pending.rows)

    def _remargin_split(
        self, moved_underlying: BoolArray, moved_instrument: BoolArray, moved_asset: BoolArray
    ) -> Remargin:
        """A tick under a `CollateralRevaluation` model: the holders of a moved instrument (and the
        pending accounts) through the model; the accounts that only hold a moved collateral asset
        keep IM, MM and position value and have their collateral revalued (vectorised, no model
        run). The full-recompute threshold counts every touched account."""
        holders = self._holders()
        no_asset = np.zeros_like(moved_asset)
        limit = self._full_recompute_fraction * self._book.n_accounts
        # One moved underlying, instrument or collateral asset (every touched account counts)
        # alone has more holders: the masks over every account below would only lead here.
        widest = max(
            holders.widest_underlying(moved_underlying), holders.widest_column(moved_instrument, moved_asset)
        )
        if widest > limit:
            return self._recompute_all()
        # Masks over accounts, not sorted-set operations: one byte per account beats sorting.
        in_model = holders.holding(moved_instrument, no_asset)
        if self._pending:
            in_model[self._pending.rows] = True
        model_rows: IntArray = np.flatnonzero(in_model)
        if model_rows.size > limit:
            return self._recompute_all()
        if not moved_asset.any():  # no collateral moved (most small markets): no second mask
            return self._remargin(model_rows)
        in_collateral = holders.holding(np.zeros_like(moved_instrument), moved_asset)
        rows: IntArray = np.flatnonzero(in_collateral | in_model)
        if rows.size > limit:
            return self._recompute_all()  # collateral-only rows are read in place too: all count
        collateral_rows: IntArray = np.flatnonzero(in_collateral & ~in_model)
        before = _below_maintenance(self._result, rows)
        self._write(model_rows, self._evaluate_rows(model_rows))
        if collateral_rows.size:
            model = self._model
            assert isinstance(model, CollateralRevaluation)
            part = model.revalue_collateral(
                self._book, self._market, self._valuation, collateral_rows, self._result
            )
            self._write(collateral_rows, part, _COLLATERAL_ARRAYS)  # IM, MM, positions: unchanged
        change = _remargin(rows, before, self._result, full=False)
        return dataclasses.replace(change, collateral_only_rows=collateral_rows)

    def _evaluate_rows(self, rows: IntArray) -> MarginResult | None:
        """The model's result for the accounts `rows` (sorted): read in place when the model can
        (`RowEvaluation`), those with a pending event on their own books; else all on the
        gathered sub-book. With pending accounts in a tick's rows, gathering all the rows cost a
        1M-account book's small-market tick 3 -> 10 ms (AMD Zen 5)."""
        if rows.size == 0:
            return None
        model = self._model
        if not isinstance(model, RowEvaluation):
            return model.evaluate(self._sub_book(rows), self._market, self._valuation)
        pending = self._pending_mask(rows)
        if not pending.any():
            return model.evaluate_rows(self._book, self._market, self._valuation, rows)
        if pending.all():  # an account re-margined after its own event: its book alone
            return model.evaluate(self._sub_book(rows), self._market, self._valuation)
        in_place = model.evaluate_rows(self._book, self._market, self._valuation, rows[~pending])
        own = model.evaluate(self._sub_book(rows[pending]), self._market, self._valuation)
        arrays = {name: np.empty(rows.size, dtype=getattr(own, name).dtype) for name in RESULT_ARRAYS}
        for name, array in arrays.items():
            array[~pending] = getattr(in_place, name)
            array[pending] = getattr(own, name)
        return MarginResult.of_checked_rows(own.model, **arrays)  # each row checked in its part

    def _pending_mask(self, rows: IntArray) -> BoolArray:
        """Which of `rows` have a pending event."""
        return self._pending.holds(rows)

    def _write(
        self, rows: IntArray, part: MarginResult | None, names: tuple[str, ...] = RESULT_ARRAYS
    ) -> None:
        if part is None:
            return
        for name in names:
            getattr(self._result, name)[rows] = getattr(part, name)

    def _remargin(self, rows: IntArray) -> Remargin:
        before = _below_maintenance(self._result, rows)
        self._write(rows, self._evaluate_rows(rows))
        return _remargin(rows, before, self._result, full=False)

    def _sub_book(self, rows: IntArray) -> Book:
        """The accounts `rows` (sorted) as a book of their own, pending events applied: the book's
        rows selected, the pending accounts' own books stacked after them, put back in row order.
        Parts that would be empty or already in order are skipped: an account re-margined after
        its own event (a liquidation moves a few) is its pending book as it is (a select of no
        rows and a reordering select cost ~0.4 ms)."""
        pending = self._pending_mask(rows)
        if not pending.any():
            return self._book.select(rows)
        own = self._pending.book(rows[pending], self._book)
        if pending.all():
            return own
        stacked = _stack([self._book.select(rows[~pending]), own], self._book)
        return stacked.select(np.argsort(np.concatenate([rows[~pending], rows[pending]]), kind="stable"))

    def _holders(self) -> _Holders:
        """Who holds what (built on first use after a book change: a stress round never needs it)."""
        if self._holder_index is None:
            self._holder_index = _Holders.of(self._book)
        return self._holder_index

    def _fold_pending(self) -> None:
        """One new book with every pending account event in it (then the overlay is empty): the
        pending accounts' rows spliced in (`Book.with_rows_replaced`)."""
        if not self._pending:
            return
        folded = self._pending.rows
        part = self._pending.book(folded, self._book)
        before = self._book
        self._book = before.with_rows_replaced(folded, part)
        self._pending = _Overlay()
        if self._holder_index is not None:  # the folded accounts' entries replaced, not rebuilt
            self._holder_index = self._holder_index.with_rows_replaced(folded, before, self._book)

    def _market_after(self, tick: PriceTick) -> MarketState:
        """The market after a tick (index and collateral prices by symbol, instrument data by
        id); unknown symbols are refused."""
        book = self._book
        market = self._market
        index = market.index_price_usd.copy()
        assets = market.asset_prices(book.assets).copy()
        underlying_column = {u: n for n, u in enumerate(market.underlyings)}
        for symbol, price in tick.prices_usd.items():
            known = False
            if symbol in underlying_column:
                index[underlying_column[symbol]] = price
                known = True
            if symbol in book.assets.index:
                assets[book.assets.index[symbol]] = price
                known = True
            if not known:
                raise InputError(
                    f"tick.prices_usd[{symbol}]", "not an underlying or collateral asset of the book"
                )

        def per_instrument(values: Mapping[str, float], current: FloatArray, name: str) -> FloatArray:
            out = current.copy()
            for instrument_id, value in values.items():
                out[book.instruments.position(instrument_id, field_name=f"tick.{name}")] = value
            return out

        updated = dataclasses.replace(
            market,
            valuation_ns=market.valuation_ns if tick.valuation_ns is None else tick.valuation_ns,
            index_price_usd=index,
            mark_price=per_instrument(tick.mark_prices, market.mark_price, "mark_prices"),
            implied_vol=per_instrument(tick.implied_vols, market.implied_vol, "implied_vols"),
            forward_price_usd=per_instrument(
                tick.forward_prices_usd, market.forward_price_usd, "forward_prices_usd"
            ),
            funding_rate_8h=per_instrument(tick.funding_rates_8h, market.funding_rate_8h, "funding_rates_8h"),
            asset_price_usd=assets,
        )
        return updated


@dataclass(slots=True)
class _Overlay:
    """The accounts whose last event is not yet folded into the book, as arrays (no Python step
    per account when a tick gathers them): `rows` ascending, each with its `slot` among the
    batches' accounts (`batches[b]` holds slots starts[b] .. starts[b] + its n_accounts - 1)."""

    rows: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    slots: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    batches: list[Book] = field(default_factory=list)
    starts: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.rows.size)

    def add(self, rows: IntArray, batch: Book) -> None:
        """Account k of `batch` is now row rows[k]'s state (distinct rows), over any earlier one."""
        if not rows.size:
            return
        start = int(self.starts[-1]) + self.batches[-1].n_accounts if self.batches else 0
        self.batches.append(batch)
        self.starts = np.append(self.starts, start)
        order = np.argsort(rows)
        rows, slots = rows[order], start + order.astype(np.int64)
        # Merged by position (O(pending) moves, no sort of them: an event at a time stays cheap).
        at = np.searchsorted(self.rows, rows)
        held = at < self.rows.size
        held[held] = self.rows[at[held]] == rows[held]
        self.slots[at[held]] = slots[held]  # a newer state of a pending row
        self.rows = np.insert(self.rows, at[~held], rows[~held])
        self.slots = np.insert(self.slots, at[~held], slots[~held])

    def holds(self, rows: IntArray) -> BoolArray:
        """Which of `rows` have a pending state."""
        if not self.rows.size:
            return np.zeros(rows.size, dtype=np.bool_)
        at = np.minimum(np.searchsorted(self.rows, rows), self.rows.size - 1)
        held: BoolArray = self.rows[at] == rows
        return held

    def book(self, rows: IntArray, like: Book) -> Book:
        """The pending accounts `rows` (sorted, all held) as one book in row order: each batch's
        accounts selected together (a batch taken whole and in order as it is: an account's own
        event is a batch of one), the batches stacked and put back in row order."""
        slots = self.slots[np.searchsorted(self.rows, rows)]
        batch = np.searchsorted(self.starts, slots, side="right") - 1
        order = np.argsort(batch, kind="stable")
        cuts = np.flatnonzero(np.diff(batch[order])) + 1
        parts = []
        for group in np.split(order, cuts):  # a loop over batches, not accounts
            b = int(batch[group[0]])
            taken = slots[group] - self.starts[b]
            whole = taken.size == self.batches[b].n_accounts and bool(np.all(taken == np.arange(taken.size)))
            parts.append(self.batches[b] if whole else self.batches[b].select(taken))
        if len(parts) == 1:
            return parts[0]
        return _stack(parts, like).select(np.argsort(order, kind="stable"))


def _accounts_book(updates: Sequence[AccountUpdate], like: Book) -> Book:
    """The updated accounts as one book over `like`'s instruments and assets, in order."""
    assets, instruments = like.assets, like.instruments
    balances = np.zeros((len(updates), assets.n_assets))
    for k, update in enumerate(updates):
        if not len(update.instrument_ids) == len(update.quantity) == len(update.entry_price):
            raise InputError(
                f"accounts[{update.account_id}]", "instrument_ids, quantity and entry_price differ in length"
            )
        for symbol, amount in update.balances.items():
            balances[k, assets.position(symbol, field_name=f"balances[{symbol}]")] = amount
    counts = [len(u.instrument_ids) for u in updates]
    return Book.from_arrays(
        account_ids=[u.account_id for u in updates],
        assets=assets,
        instruments=instruments,
        account_index=np.repeat(np.arange(len(updates), dtype=np.int64), counts),
        instrument_index=[instruments.position(i) for u in updates for i in u.instrument_ids],
        quantity=[q for u in updates for q in u.quantity],
        entry_price=[e for u in updates for e in u.entry_price],
        balances=balances,
    )


@dataclass(frozen=True, slots=True)
class _Holders:
    """Who holds what: accounts per instrument (CSC of the positions) and per asset (CSC of the
    non-zero balances), built once and then kept: taller on growth (`with_rows`), the folded
    accounts' entries replaced at a fold (`with_rows_replaced`). A tick gathers only the moved
    columns."""

    instrument_holders: sp.csc_array
    asset_holders: sp.csc_array
    underlying_accounts: IntArray  # (U,) accounts with a position on each underlying

    @classmethod
    def of(cls, book: Book) -> _Holders:
        import scipy.sparse as sp  # on first use: importing scipy costs ~0.3 s (core.position_matrix)

        positions = book.positions
        underlying = book.instruments.underlying_index[positions.indices]
        owner = book.position_account
        seen = np.zeros(book.n_accounts, dtype=np.bool_)
        per_underlying = np.zeros(len(book.instruments.underlyings), dtype=np.int64)
        for u in range(per_underlying.size):  # a handful of underlyings, vectorised over positions
            seen[:] = False
            seen[owner[underlying == u]] = True
            per_underlying[u] = int(np.count_nonzero(seen))
        pattern = sp.csr_array(
            (np.ones(positions.nnz, dtype=np.int8), positions.indices, positions.indptr),
            shape=positions.shape,
        )
        indptr, asset, _ = book.balance_csr
        balances = sp.csr_array(
            (np.ones(asset.size, dtype=np.int8), asset, indptr), shape=(book.n_accounts, book.assets.n_assets)
        )
        return cls(
            instrument_holders=pattern.tocsc(),
            asset_holders=balances.tocsc(),
            underlying_accounts=per_underlying,
        )

    def with_rows(self, n_accounts: int) -> _Holders:
        """The same holdings over `n_accounts` rows (accounts added after the others hold nothing)."""
        import scipy.sparse as sp  # on first use: importing scipy costs ~0.3 s (core.position_matrix)

        def taller(matrix: sp.csc_array) -> sp.csc_array:
            return sp.csc_array(
                (matrix.data, matrix.indices, matrix.indptr), shape=(n_accounts, matrix.shape[1])
            )

        return _Holders(
            instrument_holders=taller(self.instrument_holders),
            asset_holders=taller(self.asset_holders),
            underlying_accounts=self.underlying_accounts,
        )

    def with_rows_replaced(self, rows: IntArray, before: Book, after: Book) -> _Holders:
        """The index after the accounts `rows` (sorted) changed their holdings from `before`'s to
        `after`'s (a fold; the same accounts in the same rows): their entries dropped from every
        column and their new ones added, the rest kept as they are. Vectorised passes over the
        index's entries (no rebuild: the CSR -> CSC conversion and a pass per underlying cost
        ~130 ms at 1M accounts and fell inside a tick)."""
        n = after.n_accounts
        owners, held = _positions_of(after, rows)
        instruments = _replace_rows(self.instrument_holders, n, rows, owners, held)
        # The rows' non-zero balances from the dense matrix (`balance_csr`'s entries, without
        # building it for the whole book: ~70 ms at 1M accounts that cross margin never reads).
        held_row, held_asset = np.nonzero(after.balances[rows])
        assets = _replace_rows(self.asset_holders, n, rows, rows[held_row], held_asset)
        n_underlyings = self.underlying_accounts.size
        underlying_accounts = (
            self.underlying_accounts
            - _accounts_per_underlying(before, *_positions_of(before, rows), n_underlyings)
            + _accounts_per_underlying(after, owners, held, n_underlyings)
        )
        return _Holders(
            instrument_holders=instruments, asset_holders=assets, underlying_accounts=underlying_accounts
        )

    def widest_underlying(self, underlyings: BoolArray) -> int:
        """The most accounts positioned on any one flagged underlying (U,): a lower bound on the
        accounts holding a position on any of them."""
        return int(self.underlying_accounts[underlyings].max()) if np.any(underlyings) else 0

    def widest_column(self, instruments: BoolArray, assets: BoolArray) -> int:
        """The most holders of any one flagged instrument or asset (a lower bound on the
        accounts holding any of them, from the column pointers alone)."""
        widest = 0
        for matrix, columns in ((self.instrument_holders, instruments), (self.asset_holders, assets)):
            if np.any(columns):
                widest = max(widest, int(np.diff(matrix.indptr)[columns].max()))
        return widest

    def holding(self, instruments: BoolArray, assets: BoolArray) -> BoolArray:
        """(A,) whether each account holds any of the flagged instruments (I,) or assets (K,)."""
        flags = np.zeros(self.instrument_holders.shape[0], dtype=np.bool_)
        if instruments.any():
            flags[_column_rows(self.instrument_holders, instruments)] = True
        if assets.any():
            flags[_column_rows(self.asset_holders, assets)] = True
        return flags

    def accounts_holding(self, instruments: BoolArray, assets: BoolArray) -> IntArray:
        """Sorted account rows holding any of the flagged instruments (I,) or assets (K,)."""
        # A mask over accounts, not np.unique: one byte per account beats sorting the hits.
        rows: IntArray = np.flatnonzero(self.holding(instruments, assets))
        return rows


def _replace_rows(
    matrix: sp.csc_array,
    n_rows: int,
    rows: IntArray,
    new_rows: IntArray,
    new_columns: npt.NDArray[np.integer[Any]],
) -> sp.csc_array:
    """The pattern `matrix` (accounts x columns, CSC) with the entries of the accounts `rows`
    replaced by (new_rows, new_columns) (`core.sparse_columns.replace_rows`: one kernel pass)."""
    import scipy.sparse as sp  # loaded already: the index exists

    indptr, indices = replace_rows(matrix.indptr, matrix.indices, n_rows, rows, new_rows, new_columns)
    return sp.csc_array((np.ones(indices.size, dtype=np.int8), indices, indptr), shape=matrix.shape)


def _positions_of(book: Book, rows: IntArray) -> tuple[IntArray, npt.NDArray[np.integer[Any]]]:
    """(account row, instrument) of every position the accounts `rows` hold in `book`."""
    indptr = book.positions.indptr
    owners: IntArray = np.repeat(rows, indptr[rows + 1] - indptr[rows])
    return owners, book.positions.indices[book.stored_positions(rows)]


def _accounts_per_underlying(
    book: Book, owners: IntArray, instruments: npt.NDArray[np.integer[Any]], n_underlyings: int
) -> IntArray:
    """(U,) how many distinct accounts among `owners` hold a position on each underlying, from
    their positions' (owner, instrument) pairs."""
    underlying = book.instruments.underlying_index[instruments].astype(np.int64)
    pairs = np.unique(owners * n_underlyings + underlying)  # one per (account, underlying)
    counts: IntArray = np.bincount(pairs % n_underlyings, minlength=n_underlyings)
    return counts


def _column_rows(matrix: sp.csc_array, columns: BoolArray) -> IntArray:
    rows: IntArray = matrix.indices[compressed_slots(matrix.indptr, np.flatnonzero(columns))].astype(np.int64)
    return rows


def _moved_underlyings(before: MarketState, after: MarketState, book: Book) -> BoolArray:
    """(U,) underlyings whose index price or any instrument's market data changed (NaN == NaN)."""

    def changed(a: FloatArray, b: FloatArray) -> BoolArray:
        flags: BoolArray = ~((a == b) | (np.isnan(a) & np.isnan(b)))
        return flags

    moved = changed(before.index_price_usd, after.index_price_usd)
    per_instrument = (
        changed(before.mark_price, after.mark_price)
        | changed(before.implied_vol, after.implied_vol)
        | changed(before.forward_price_usd, after.forward_price_usd)
        | changed(before.funding_rate_8h, after.funding_rate_8h)
    )
    underlying = book.instruments.underlying_index
    moved |= np.bincount(underlying[per_instrument], minlength=moved.size) > 0
    return moved


def _stack(parts: Sequence[Book], like: Book) -> Book:
    """Books over the same instruments and assets, one after the other, as one book."""
    offsets = np.cumsum([0, *(p.n_accounts for p in parts)])
    return Book.from_arrays(
        account_ids=[a for p in parts for a in p.account_ids],
        assets=like.assets,
        instruments=like.instruments,
        account_index=np.concatenate(
            [p.position_account + o for p, o in zip(parts, offsets[:-1], strict=True)]
        ),
        instrument_index=np.concatenate([p.positions.indices.astype(np.int64) for p in parts]),
        quantity=np.concatenate([p.positions.data for p in parts]),
        entry_price=np.concatenate([p.entry_price for p in parts]),
        balances=np.vstack([p.balances for p in parts]),
    )


def _below_maintenance(result: MarginResult, rows: IntArray) -> BoolArray:
    """`MarginResult.below_maintenance` of these rows only (that property builds all A)."""
    flags: BoolArray = result.bankrupt[rows] | (result.margin_ratio[rows] >= 1.0)
    return flags


def _remargin(rows: IntArray, before: BoolArray, result: MarginResult, *, full: bool) -> Remargin:
    after = _below_maintenance(result, rows)
    return Remargin(
        account_rows=rows,
        newly_below_maintenance=rows[after & ~before],
        recovered=rows[before & ~after],
        full_recompute=full,
    )
