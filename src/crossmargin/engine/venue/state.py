"""The venue's state as a fold of its log: exact balances (integer minor units), integer positions,
prices, margin-call statuses, open orders and the risk parameters in force.

`apply_effects` is the only way it changes, live and in replay alike, so the state after a log is
a pure function of the log. `sub_state` cuts out the few traders one command touches as a core
`LedgerState`, so the existing ledger (`core.ledger.apply`) decides the command on them alone
(an event touches a few accounts; copying the whole venue per event would cost O(accounts)).
`to_dict` / `from_dict` are the snapshot format; `digest` compares states bit for bit.

`price_ns` is when each index price and mark was last set: the `as_of_ns` of the record that set
it, when the fold is given it (the venue does, live and in recovery). It is metadata of the log's
timestamps, not ledger state: outside the digest, and absent from snapshots written before it
existed (those prices' times are then unknown until they are set again). `oracle_status` and
`oracle_band_fraction` (the oracle's word on each price) are the same kind of metadata.
"""

from __future__ import annotations

import dataclasses
import hashlib
import types
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from crossmargin.core.ledger.postings import EXTERNAL, SYSTEM_ACCOUNTS
from crossmargin.core.ledger.state import AccountStatus, LedgerConfig, LedgerState, Position, frozen_prices
from crossmargin.core.liquidation.params import LiquidationParams, MarginCallParams
from crossmargin.core.margin import CrossParams
from crossmargin.core.margin.options_rule import OptionMarginParams
from crossmargin.engine.journal import GENESIS_HASH, canonical_json
from crossmargin.errors import InputError

_NO_SIZES: Mapping[tuple[str, int], int] = types.MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class Order:
    """A resting order: `quantity` contracts (signed) of `instrument` at `price`."""

    order_id: str
    account: str
    instrument: str
    quantity: int
    price: float


@dataclass(slots=True)
class VenueState:
    """Mutable fold of the log (module docstring). Indexes kept by the fold, so a command costs
    O(what it touches), not O(the venue): `holdings[account]` (its instruments) and
    `instrument_holders[instrument]` (the accounts holding it) index `positions` both ways;
    `account_orders[account]` (order id -> Order) and `instrument_orders[instrument]` index
    `orders`; `order_sizes[account]` counts its orders by size (instrument, contracts), all a
    reservation reads (`core.ledger.reservation`)."""

    traders: list[str] = field(default_factory=list)
    balances: dict[tuple[str, str], int] = field(default_factory=dict)
    positions: dict[tuple[str, str], Position] = field(default_factory=dict)
    holdings: dict[str, set[str]] = field(default_factory=dict)
    instrument_holders: dict[str, set[str]] = field(default_factory=dict)
    # Read-only views, replaced (never changed in place) when a record moves a price: a command's
    # sub-state shares them and the priced-market memo knows them by identity (`frozen_prices`).
    prices: Mapping[str, float] = field(default_factory=lambda: frozen_prices({}))
    marks: Mapping[str, float] = field(default_factory=lambda: frozen_prices({}))
    price_ns: dict[str, int] = field(default_factory=dict)  # symbol or instrument -> set at (ns)
    # The oracle's last word on each symbol ("ok", "held", "stale", "no_price") and its source band
    # relative to the price: what the venue can say of a price it was sent or held back.
    oracle_status: dict[str, str] = field(default_factory=dict)
    oracle_band_fraction: dict[str, float] = field(default_factory=dict)
    status: dict[str, AccountStatus] = field(default_factory=dict)
    deadlines: dict[str, int] = field(default_factory=dict)
    expired: set[str] = field(default_factory=set)
    orders: dict[str, Order] = field(default_factory=dict)
    account_orders: dict[str, dict[str, Order]] = field(default_factory=dict)
    instrument_orders: dict[str, dict[str, Order]] = field(default_factory=dict)
    order_sizes: dict[str, Counter[tuple[str, int]]] = field(default_factory=dict)
    # (from sequence, parameters as a plain dict) in force from that record on
    parameter_versions: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    time_ns: int = 0
    postings_count: int = 0
    sequence: int = 0
    head_hash: str = GENESIS_HASH

    # -- the fold --------------------------------------------------------------------------------

    def apply_effects(
        self, effects: Mapping[str, Any], *, sequence: int, record_hash: str, as_of_ns: int | None = None
    ) -> None:
        """Apply one record's effects (journal payload "effects"); see `engine.effects` for keys.
        `as_of_ns`: the record's time, kept as the time of the prices and marks it sets."""
        for account in effects.get("accounts", ()):
            if account in self.status:
                raise InputError("effects.accounts", f"account {account!r} already open")
            self.traders.append(account)
            self.status[account] = AccountStatus.HEALTHY
            self.holdings[account] = set()
        for debit, credit, asset, units, _kind in effects.get("postings", ()):
            self.balances[(debit, asset)] = self.balances.get((debit, asset), 0) - units
            self.balances[(credit, asset)] = self.balances.get((credit, asset), 0) + units
            if self.balances[(debit, asset)] == 0:
                del self.balances[(debit, asset)]
            if self.balances.get((credit, asset)) == 0:
                del self.balances[(credit, asset)]
            self.postings_count += 1
        for account, instrument, quantity, entry in effects.get("positions", ()):
            if quantity == 0:
                self.positions.pop((account, instrument), None)
                self._unhold(account, instrument)
            else:
                self.positions[(account, instrument)] = Position(int(quantity), float(entry))
                self._hold(account, instrument)
        for account, status, deadline in effects.get("status", ()):
            self.status[account] = AccountStatus(int(status))
            if deadline is None:
                self.deadlines.pop(account, None)
            else:
                self.deadlines[account] = int(deadline)
        if new_prices := effects.get("prices"):
            self.prices = frozen_prices({**self.prices, **new_prices})
        if new_marks := effects.get("marks"):
            self.marks = frozen_prices({**self.marks, **new_marks})
        if as_of_ns is not None:
            for name in (*effects.get("prices", ()), *effects.get("marks", ())):
                self.price_ns[name] = as_of_ns
        self.oracle_status.update(effects.get("oracle_status", {}))
        self.oracle_band_fraction.update(effects.get("oracle_band_fraction", {}))
        for instrument in effects.get("expired", ()):
            self.expired.add(instrument)
            if instrument in self.marks:
                self.marks = frozen_prices({k: v for k, v in self.marks.items() if k != instrument})
        for order_id, account, instrument, quantity, price in effects.get("orders", ()):
            old = self.orders.get(order_id)
            # A partial fill replaces an order in place (its place in every index kept); only a
            # cancel, or an id moved to another account or instrument, leaves the indexes.
            if old is not None and (quantity == 0 or (old.account, old.instrument) != (account, instrument)):
                self._unindex_order(old)
            elif old is not None:
                self._count_size(old, -1)  # replaced in place: its new size is counted below
            if quantity == 0:
                self.orders.pop(order_id, None)
            else:
                self._index_order(
                    Order(
                        order_id=order_id,
                        account=account,
                        instrument=instrument,
                        quantity=int(quantity),
                        price=price,
                    )
                )
        if "parameters" in effects:
            self.parameter_versions.append((sequence, dict(effects["parameters"])))
        self.time_ns = max(self.time_ns, int(effects.get("time_ns", self.time_ns)))
        self.sequence = sequence
        self.head_hash = record_hash

    def apply_deposit(
        self, account: str, asset: str, units: int, sequence: int, record_hash: str, as_of_ns: int
    ) -> None:
        """`apply_effects` of a deposit's effects (one posting @external -> account of `units` of
        `asset`, audit records, `time_ns` = as_of_ns), step for step without reading them from a
        dict: the deposit lane's fold (`engine.venue.deposit_lane`; tests hold the two equal)."""
        balances = self.balances
        debit, credit = (EXTERNAL, asset), (account, asset)
        balances[debit] = balances.get(debit, 0) - units
        balances[credit] = balances.get(credit, 0) + units
        if balances[debit] == 0:
            del balances[debit]
        if balances[credit] == 0:
            del balances[credit]
        self.postings_count += 1
        self.time_ns = max(self.time_ns, as_of_ns)
        self.sequence = sequence
        self.head_hash = record_hash

    def _hold(self, account: str, instrument: str) -> None:
        self.holdings.setdefault(account, set()).add(instrument)
        self.instrument_holders.setdefault(instrument, set()).add(account)

    def _unhold(self, account: str, instrument: str) -> None:
        self.holdings.setdefault(account, set()).discard(instrument)
        holders = self.instrument_holders.get(instrument)
        if holders is not None:
            holders.discard(account)
            if not holders:
                del self.instrument_holders[instrument]

    def _index_order(self, order: Order) -> None:
        self.orders[order.order_id] = order
        self.account_orders.setdefault(order.account, {})[order.order_id] = order
        self.instrument_orders.setdefault(order.instrument, {})[order.order_id] = order
        self._count_size(order, 1)

    def _unindex_order(self, order: Order) -> None:
        for index, key in ((self.account_orders, order.account), (self.instrument_orders, order.instrument)):
            mine = index[key]
            del mine[order.order_id]
            if not mine:
                del index[key]
        self._count_size(order, -1)

    def _count_size(self, order: Order, step: int) -> None:
        sizes = self.order_sizes.setdefault(order.account, Counter())
        size = (order.instrument, order.quantity)
        count = sizes[size] + step
        if count:
            sizes[size] = count
            return
        del sizes[size]
        if not sizes:
            del self.order_sizes[order.account]

    # -- views -----------------------------------------------------------------------------------

    def positions_of(self, account: str) -> dict[str, Position]:
        return {i: self.positions[(account, i)] for i in sorted(self.holdings.get(account, ()))}

    def orders_of(self, account: str) -> list[Order]:
        return sorted(self.account_orders.get(account, {}).values(), key=lambda o: o.order_id)

    def has_orders(self, account: str) -> bool:
        return account in self.account_orders

    def order_sizes_of(self, account: str) -> Mapping[tuple[str, int], int]:
        """How many open orders the account has of each size (instrument, contracts), O(1): the
        fold's own counter, to read, not to change."""
        return self.order_sizes.get(account, _NO_SIZES)

    def order_sizes_after(self, account: str, rows: Iterable[list[Any]]) -> Counter[tuple[str, int]]:
        """The account's order sizes once the order rows `rows` ([order id, account, instrument,
        contracts, price], the fold's `orders` effects, one per order id: 0 contracts cancels) are
        applied, as `apply_effects` would count them; O(its distinct sizes + rows), the fold
        unchanged."""
        sizes = Counter(self.order_sizes_of(account))
        for order_id, owner, instrument, quantity, _ in rows:
            old = self.orders.get(order_id)
            if old is not None and old.account == account:
                sizes[(old.instrument, old.quantity)] -= 1
            if quantity != 0 and owner == account:
                sizes[(instrument, int(quantity))] += 1
        return +sizes  # positive counts only

    def holders_of(self, instruments: Iterable[str]) -> set[str]:
        """Traders holding any of `instruments` (funding, expiry, ADL counterparties), O(holders)."""
        status = self.status
        return {a for i in instruments for a in self.instrument_holders.get(i, ()) if a in status}

    def orders_on(self, instrument: str) -> list[Order]:
        """The open orders on `instrument` in `orders`' order (an order id keeps its instrument),
        O(those orders)."""
        return list(self.instrument_orders.get(instrument, {}).values())

    def sub_state(self, traders: Iterable[str], assets: Iterable[str]) -> LedgerState:
        """The named traders (and every system account) as a core LedgerState."""
        chosen = tuple(sorted(set(traders)))
        symbols = tuple(assets)
        balances: dict[tuple[str, str], int] = {}
        for account in (*chosen, *SYSTEM_ACCOUNTS):
            for symbol in symbols:
                units = self.balances.get((account, symbol), 0)
                if units:
                    balances[(account, symbol)] = units
        positions = {(a, i): self.positions[(a, i)] for a in chosen for i in self.holdings.get(a, ())}
        return LedgerState(
            traders=chosen,
            balances=balances,
            positions=positions,
            prices=self.prices,  # read-only views: shared, not copied (O(1) in the market's width)
            marks=self.marks,
            status={a: self.status[a] for a in chosen},
            call_deadline_ns={a: self.deadlines[a] for a in chosen if a in self.deadlines},
            expired=frozenset(self.expired),
            time_ns=self.time_ns,
            sequence=self.postings_count,
        )

    def config_in_force(self, base: LedgerConfig) -> LedgerConfig:
        """`base` with the newest parameter version applied."""
        if not self.parameter_versions:
            return base
        return with_parameters(base, self.parameter_versions[-1][1])

    # -- snapshots -------------------------------------------------------------------------------

    def detached(self) -> VenueState:
        """A copy sharing no mutable container with this state (the price views are read-only):
        C-level copies, fast under the writer's lock, so a snapshot is sorted, encoded and
        written on another thread while the writer moves on. The indexes (`holdings`,
        `instrument_holders`, `account_orders`, `instrument_orders`, `order_sizes`) are left out
        (a snapshot does not hold them; `from_dict` rebuilds them)."""
        return VenueState(
            traders=list(self.traders),
            balances=dict(self.balances),
            positions=dict(self.positions),
            prices=self.prices,  # read-only views: shared
            marks=self.marks,
            price_ns=dict(self.price_ns),
            oracle_status=dict(self.oracle_status),
            oracle_band_fraction=dict(self.oracle_band_fraction),
            status=dict(self.status),
            deadlines=dict(self.deadlines),
            expired=set(self.expired),
            orders=dict(self.orders),
            parameter_versions=list(self.parameter_versions),
            time_ns=self.time_ns,
            postings_count=self.postings_count,
            sequence=self.sequence,
            head_hash=self.head_hash,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "traders": list(self.traders),
            "balances": sorted([a, k, v] for (a, k), v in self.balances.items()),
            "positions": sorted([a, i, p.quantity, p.entry_price] for (a, i), p in self.positions.items()),
            "prices": dict(self.prices),
            "marks": dict(self.marks),
            "price_ns": dict(self.price_ns),
            "oracle_status": dict(self.oracle_status),
            "oracle_band_fraction": dict(self.oracle_band_fraction),
            "status": sorted([a, int(s)] for a, s in self.status.items()),
            "deadlines": sorted([a, d] for a, d in self.deadlines.items()),
            "expired": sorted(self.expired),
            "orders": sorted(
                [o.order_id, o.account, o.instrument, o.quantity, o.price] for o in self.orders.values()
            ),
            "parameter_versions": [[s, p] for s, p in self.parameter_versions],
            "time_ns": self.time_ns,
            "postings_count": self.postings_count,
            "sequence": self.sequence,
            "head_hash": self.head_hash,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VenueState:
        state = cls(
            traders=list(data["traders"]),
            balances={(a, k): int(v) for a, k, v in data["balances"]},
            prices=frozen_prices({k: float(v) for k, v in data["prices"].items()}),
            marks=frozen_prices({k: float(v) for k, v in data["marks"].items()}),
            price_ns={k: int(v) for k, v in data.get("price_ns", {}).items()},  # absent before 2026-12
            oracle_status={k: str(v) for k, v in data.get("oracle_status", {}).items()},
            oracle_band_fraction={k: float(v) for k, v in data.get("oracle_band_fraction", {}).items()},
            status={a: AccountStatus(int(s)) for a, s in data["status"]},
            deadlines={a: int(d) for a, d in data["deadlines"]},
            expired=set(data["expired"]),
            parameter_versions=[(int(s), dict(p)) for s, p in data["parameter_versions"]],
            time_ns=int(data["time_ns"]),
            postings_count=int(data["postings_count"]),
            sequence=int(data["sequence"]),
            head_hash=str(data["head_hash"]),
        )
        state.holdings = {a: set() for a in state.traders}
        for a, i, q, e in data["positions"]:
            state.positions[(a, i)] = Position(int(q), float(e))
            state._hold(a, i)
        for order_id, account, instrument, quantity, price in data["orders"]:
            order = Order(
                order_id=order_id, account=account, instrument=instrument, quantity=int(quantity), price=price
            )
            state._index_order(order)
        return state

    def digest(self) -> str:
        """SHA-256 of the canonical snapshot form without the price times (module docstring): equal
        digests = the same ledger state bit for bit."""
        form = self.to_dict()
        for metadata in ("price_ns", "oracle_status", "oracle_band_fraction"):
            del form[metadata]
        return hashlib.sha256(canonical_json(form)).hexdigest()


def parameters_dict(config: LedgerConfig) -> dict[str, Any]:
    """The run-time risk parameters of a config as a plain dict (the log's form)."""
    return {
        "margin": {"option_margin": dataclasses.asdict(config.margin.option_margin)},
        "margin_call": dataclasses.asdict(config.margin_call),
        "liquidation": dataclasses.asdict(config.liquidation),
    }


def merged_parameters(current: Mapping[str, Any], change: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """`current` with the fields named in `change` replaced; an unknown group or field is an
    InputError naming it."""
    merged = {group: dict(values) for group, values in current.items()}
    merged["margin"]["option_margin"] = dict(merged["margin"]["option_margin"])
    for group, values in change.items():
        if group not in merged:
            raise InputError(f"parameters.{group}", "unknown parameter group")
        for name, value in values.items():
            if group == "margin":
                if name != "option_margin" or not isinstance(value, Mapping):
                    raise InputError(f"parameters.margin.{name}", "only option_margin.{field} may change")
                for sub, v in value.items():
                    if sub not in merged["margin"]["option_margin"]:
                        raise InputError(f"parameters.margin.option_margin.{sub}", "unknown field")
                    merged["margin"]["option_margin"][sub] = v
                continue
            if name not in merged[group]:
                raise InputError(f"parameters.{group}.{name}", "unknown field")
            merged[group][name] = value
    return merged


def with_parameters(base: LedgerConfig, parameters: Mapping[str, Any]) -> LedgerConfig:
    """`base` with these risk parameters; invalid values raise InputError from the core's own
    validation (naming the field)."""
    try:
        option_margin = OptionMarginParams(**parameters["margin"]["option_margin"])
        margin_call = MarginCallParams(**parameters["margin_call"])
        liquidation = LiquidationParams(**parameters["liquidation"])
    except TypeError as error:
        raise InputError("parameters", str(error)) from None
    return dataclasses.replace(
        base,
        margin=CrossParams(option_margin=option_margin),
        margin_call=margin_call,
        liquidation=liquidation,
    )
