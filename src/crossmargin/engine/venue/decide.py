"""Decide one command against the venue state: refuse it (InputError naming the field) or return
its effects, the record the log keeps and the fold applies (`VenueState.apply_effects`).

Effects keys (all optional): time_ns; accounts (opened); postings [[debit, credit, asset, units,
kind]] (integer minor units); positions [[account, instrument, contracts, entry]] (0 = closed);
status [[account, status, deadline_ns | null]]; prices {symbol: USD}; marks {instrument: price};
expired [instrument]; orders [[order_id, account, instrument, contracts, price]] (0 = gone);
parameters {...} (a new version); records [[kind, account, detail]] (audit: status changes,
liquidation fills, waterfall stages, ADL); margin [[account, equity, IM, MM, reserved]] (USD,
for subscribers).

Money moves through the existing ledger (`core.ledger.apply`) on a sub-state of the traders
involved, so fees, realised PnL, margin checks and the margin-call machine are the ledger's own.
Reservations for open orders (a resting order that would increase risk is charged the IM it
would add if filled, each order on its own: Binance's and Deribit's open-order margin, summed
conservatively) are checked here, on top of the ledger's IM check.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

from crossmargin.core.instruments import InstrumentKind
from crossmargin.core.ledger import events as ledger_events
from crossmargin.core.ledger.apply import Applied, apply
from crossmargin.core.ledger.counterparties import (
    Counterparties,
    StaleCounterpartiesError,
)
from crossmargin.core.ledger.postings import BACKSTOP, EXTERNAL, INSURANCE, SYSTEM_ACCOUNTS
from crossmargin.core.ledger.reservation import OrderSize, margin_and_reserved, reserved_im_of
from crossmargin.core.ledger.state import (
    AccountStatus,
    LedgerConfig,
    LedgerState,
    Position,
    RiskView,
    balance_amounts,
    risk_view,
)
from crossmargin.core.ledger.transact import AuditRecord
from crossmargin.core.liquidation.margin_call import may_withdraw, reduce_only
from crossmargin.engine.oracle_replay import STATUS_LABELS
from crossmargin.engine.venue import commands as c
from crossmargin.engine.venue.state import VenueState, merged_parameters, with_parameters
from crossmargin.errors import InputError

Effects = dict[str, Any]


def decide(state: VenueState, config: LedgerConfig, command: c.Command, as_of_ns: int) -> Effects:
    """Effects of one command (module docstring); `config` is the one in force."""
    handler = _HANDLERS[type(command)]
    effects: Effects = handler(state, config, command, as_of_ns)
    effects["time_ns"] = as_of_ns
    return effects


# ---------------------------------------------------------------------------------- helpers


def _trader(state: VenueState, account: Any, name: str) -> str:
    if not isinstance(account, str) or account not in state.status:
        raise InputError(name, f"unknown account {account!r}")
    return account


# Postings are stored as signed 64-bit integers (exact; never rounded): a larger amount is refused.
MAX_UNITS = 2**63 - 1


def _units(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InputError(name, f"must be a positive integer number of minor units, got {value!r}")
    if value > MAX_UNITS:
        raise InputError(name, f"must be at most {MAX_UNITS} minor units, got {value}")
    return value


def _effects_of(before: LedgerState, applied: Applied, traders: Iterable[str]) -> Effects:
    """Postings, position and status changes of a core apply on a sub-state: per trader (sorted)
    its closed positions then its changed ones (by instrument), then the system accounts' (the
    liquidator's book) changed then closed ones, by (account, instrument).

    A Tx copies the positions dict, so a position the apply did not touch is the same object
    after it: only the replaced and removed ones are compared and sorted (O(positions) identity
    checks, then O(changes log changes)). Grouping and sorting every trader's positions instead
    cost a liquidation over 2,000 holders ~9 ms of its ~41 ms (cProfile, Zen 4)."""
    after = applied.state
    old, new = before.positions, after.positions
    changed: dict[str, list[str]] = {}
    for key, p in new.items():
        was = old.get(key)
        if was is not p and was != p:
            changed.setdefault(key[0], []).append(key[1])
    closed: dict[str, list[str]] = {}
    for account, instrument in old.keys() - new.keys():
        closed.setdefault(account, []).append(instrument)
    chosen = sorted(set(traders))
    positions: list[list[Any]] = []
    for trader in (t for t in chosen if t in changed or t in closed):
        positions.extend([trader, i, 0, 0.0] for i in sorted(closed.get(trader, ())))
        positions.extend(_position_row(new, trader, i) for i in sorted(changed.get(trader, ())))
    system = sorted(a for a in changed.keys() | closed.keys() if a.startswith("@"))
    positions.extend(_position_row(new, a, i) for a in system for i in sorted(changed.get(a, ())))
    positions.extend([a, i, 0, 0.0] for a in system for i in sorted(closed.get(a, ())))
    status = [
        [t, int(after.status[t]), after.call_deadline_ns.get(t)]
        for t in chosen
        if after.status[t] != before.status[t]
        or after.call_deadline_ns.get(t) != before.call_deadline_ns.get(t)
    ]
    return {
        "postings": [
            [p.debit_account, p.credit_account, p.asset, p.amount_units, p.kind] for p in applied.postings
        ],
        "positions": positions,
        "status": status,
        "records": [_record(r) for r in applied.records],
    }


def _position_row(positions: Mapping[tuple[str, str], Position], account: str, instrument: str) -> list[Any]:
    p = positions[(account, instrument)]
    return [account, instrument, p.quantity, p.entry_price]


def _record(record: AuditRecord) -> list[Any]:
    return [record.kind, record.account, _json_ready(record.detail)]


def _json_ready(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, int | str | bool) or value is None:
        return value
    return str(value)


def _sub(state: VenueState, config: LedgerConfig, traders: Iterable[str]) -> LedgerState:
    sub = state.sub_state(traders, config.assets.symbols)
    # System accounts' positions (the liquidator takes closed positions) ride along, found through
    # the holdings index: O(their positions), not a walk over every position of the venue (70 ms
    # per command at 1M positions).
    positions = dict(sub.positions)
    for account in SYSTEM_ACCOUNTS:
        for instrument in sorted(state.holdings.get(account, ())):
            positions[(account, instrument)] = state.positions[(account, instrument)]
    return LedgerState(
        traders=sub.traders,
        balances=sub.balances,
        positions=positions,
        prices=sub.prices,
        marks=sub.marks,
        status=sub.status,
        call_deadline_ns=sub.call_deadline_ns,
        expired=sub.expired,
        time_ns=sub.time_ns,
        sequence=sub.sequence,
    )


class OpenOrders(Protocol):
    """What a reservation reads of the open orders: the venue's fold, or a command's trial of it
    (`TrialOrders`)."""

    def has_orders(self, account: str) -> bool: ...

    def order_sizes_of(self, account: str) -> Mapping[OrderSize, int]: ...


@dataclasses.dataclass(frozen=True, slots=True)
class TrialOrders:
    """The fold's open orders with some accounts' sizes as a command would leave them (a new
    order counted, a consumed or cancelled one taken off): O(those accounts' distinct sizes) to
    build, where a copy of their orders was O(orders)."""

    state: VenueState
    sizes: Mapping[str, Mapping[OrderSize, int]]

    @classmethod
    def after(cls, state: VenueState, accounts: Iterable[str], rows: list[list[Any]]) -> TrialOrders:
        """`accounts`' sizes once the order rows `rows` (the `orders` effects) are applied."""
        return cls(state, {a: state.order_sizes_after(a, rows) for a in set(accounts)})

    def has_orders(self, account: str) -> bool:
        return bool(self.order_sizes_of(account))

    def order_sizes_of(self, account: str) -> Mapping[OrderSize, int]:
        sizes = self.sizes.get(account)
        return self.state.order_sizes_of(account) if sizes is None else sizes


def reserved_usd(orders: OpenOrders, config: LedgerConfig, account: str, sub: LedgerState) -> float:
    """IM the account's open orders reserve on the positions and prices of `sub`, USD: each order
    that would increase risk is charged the IM it would add if filled at its price (module
    docstring), in one kernel call over its distinct order sizes (`core.ledger.reservation`)."""
    sizes = orders.order_sizes_of(account)
    if not sizes:
        return 0.0
    held = {i: p for (a, i), p in sub.positions.items() if a == account}
    return reserved_im_of(held, sub, config, sizes)


def _margin_rows(
    sub: LedgerState,
    config: LedgerConfig,
    state: OpenOrders,
    traders: list[str],
    *,
    taken: RiskView | None = None,
    reserved: Mapping[str, float] | None = None,
) -> list[list[Any]]:
    """[trader, equity, IM, MM, reserved] of each trader on `sub`. `taken`: a view the ledger
    already took (`Applied.view`), reused when it covers these traders in this order on the same
    balances, positions and prices (the margins are a function of those alone), else a new one.
    `reserved`: reservations already computed on `sub` and `state` (`_check_reserved`'s)."""
    known = reserved or {}
    same = (
        taken is not None
        and taken.traders == tuple(traders)
        and taken.state.balances == sub.balances
        and taken.state.positions == sub.positions
        and _same_values(taken.state.prices, sub.prices)
        and _same_values(taken.state.marks, sub.marks)
        and taken.state.expired == sub.expired
    )
    view = taken.result if same and taken is not None else risk_view(sub, config, tuple(traders)).result
    rows = []
    for n, trader in enumerate(traders):
        rows.append(
            [
                trader,
                float(view.equity_usd[n]),
                float(view.initial_margin_usd[n]),
                float(view.maintenance_margin_usd[n]),
                known[trader] if trader in known else _reserved_if_any(state, config, trader, sub),
            ]
        )
    return rows


def _same_values(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    """The same prices: the same read-only view (O(1), the usual case: a transaction shares its
    state's), or equal values."""
    return a is b or a == b


def _reserved_if_any(orders: OpenOrders, config: LedgerConfig, account: str, sub: LedgerState) -> float:
    return reserved_usd(orders, config, account, sub) if orders.has_orders(account) else 0.0


def _check_reserved(
    state: OpenOrders,
    config: LedgerConfig,
    after: LedgerState,
    account: str,
    field: str,
) -> float:
    """After the change, available − reserved must stay ≥ 0; returns the reservation (0 without
    open orders), for the margin row of the same state."""
    if not state.has_orders(account):
        return 0.0
    available = float(risk_view(after, config, (account,)).result.available_usd[0])
    reserved = reserved_usd(state, config, account, after)
    if available - reserved < 0.0:
        raise _below_reservation(account, reserved, available, field)
    return reserved


def _below_reservation(account: str, reserved: float, available: float, field: str) -> InputError:
    return InputError(
        field,
        f"would leave {account!r} below initial margin once its open orders' reservation "
        f"({reserved:.2f} USD) is counted (available {available:.2f} USD)",
    )


# ---------------------------------------------------------------------------------- handlers


def _open_account(state: VenueState, config: LedgerConfig, cmd: c.OpenAccount, as_of_ns: int) -> Effects:
    account = cmd.account
    if not isinstance(account, str) or not account or account.startswith("@") or len(account) > 128:
        raise InputError(
            "open_account.account", "must be a non-empty id of at most 128 chars, not starting with '@'"
        )
    if account in state.status:
        raise InputError("open_account.account", f"account {account!r} already exists")
    return {"accounts": [account]}


# System accounts a deposit may fund from outside: the insurance fund and the backstop vault.
FUNDABLE = frozenset({INSURANCE, BACKSTOP})


def _deposit(state: VenueState, config: LedgerConfig, cmd: c.Deposit, as_of_ns: int) -> Effects:
    if cmd.account in FUNDABLE:
        if cmd.asset not in config.assets.index:
            raise InputError("deposit.asset", f"unknown asset {cmd.asset!r}")
        units = _units(cmd.amount_units, "deposit.amount_units")
        return {"postings": [[EXTERNAL, cmd.account, cmd.asset, units, "deposit"]]}
    account = _trader(state, cmd.account, "deposit.account")
    if state.status[account] == AccountStatus.HEALTHY and account not in state.deadlines:
        # A deposit only raises equity, so coverage only rises and a HEALTHY account stays so:
        # the ledger's status refresh cannot change anything and is skipped (the one posting is
        # the ledger's own Deposit posting, validated the same way).
        if cmd.asset not in config.assets.index:
            raise InputError("deposit.asset", f"unknown asset {cmd.asset!r}")
        units = _units(cmd.amount_units, "deposit.amount_units")
        return {
            "postings": [[EXTERNAL, account, cmd.asset, units, "deposit"]],
            "records": [["deposit", account, {"asset": cmd.asset, "amount_units": units}]],
        }
    sub = _sub(state, config, [account])
    applied = apply(
        sub,
        ledger_events.Deposit(
            account=account,
            asset=cmd.asset,
            amount_units=_units(cmd.amount_units, "deposit.amount_units"),
            as_of_ns=as_of_ns,
        ),
        config,
    )
    effects = _effects_of(sub, applied, [account])
    effects["margin"] = _margin_rows(applied.state, config, state, [account], taken=applied.view)
    return effects


def _withdraw_applied(
    state: VenueState, config: LedgerConfig, account: str, asset: str, units: int, as_of_ns: int, name: str
) -> tuple[LedgerState, Applied, float]:
    """The withdrawal applied on the account's sub-state, checked against its open orders'
    reservation: (sub, applied, reserved USD after it)."""
    sub = _sub(state, config, [account])
    try:
        applied = apply(
            sub,
            ledger_events.Withdrawal(account=account, asset=asset, amount_units=units, as_of_ns=as_of_ns),
            config,
        )
    except InputError as error:
        raise InputError(error.field.replace("withdrawal", name), error.problem) from None
    reserved = _check_reserved(state, config, applied.state, account, f"{name}.amount_units")
    return sub, applied, reserved


def _withdraw(state: VenueState, config: LedgerConfig, cmd: c.Withdraw, as_of_ns: int) -> Effects:
    account = _trader(state, cmd.account, "withdraw.account")
    units = _units(cmd.amount_units, "withdraw.amount_units")
    sub, applied, reserved = _withdraw_applied(state, config, account, cmd.asset, units, as_of_ns, "withdraw")
    effects = _effects_of(sub, applied, [account])
    effects["margin"] = _margin_rows(
        applied.state, config, state, [account], taken=applied.view, reserved={account: reserved}
    )
    return effects


def _transfer(state: VenueState, config: LedgerConfig, cmd: c.Transfer, as_of_ns: int) -> Effects:
    sender = _trader(state, cmd.from_account, "transfer.from_account")
    receiver = _trader(state, cmd.to_account, "transfer.to_account")
    if sender == receiver:
        raise InputError("transfer.to_account", "must differ from from_account")
    units = _units(cmd.amount_units, "transfer.amount_units")
    # The sender's side under the withdrawal rules (balance, IM with reservations, status, bad
    # debt), then the receiver's as a deposit; the two legs through @external net to one posting.
    sub = _sub(state, config, [sender, receiver])
    try:
        out = apply(
            sub,
            ledger_events.Withdrawal(account=sender, asset=cmd.asset, amount_units=units, as_of_ns=as_of_ns),
            config,
        )
    except InputError as error:
        raise InputError(error.field.replace("withdrawal", "transfer"), error.problem) from None
    _check_reserved(state, config, out.state, sender, "transfer.amount_units")
    if out.state.status[receiver] == AccountStatus.HEALTHY and receiver not in out.state.call_deadline_ns:
        # As a deposit's fast path: more collateral keeps a HEALTHY receiver HEALTHY.
        balances = dict(out.state.balances)
        balances[(receiver, cmd.asset)] = balances.get((receiver, cmd.asset), 0) + units
        final = dataclasses.replace(out.state, balances=balances)
        combined = Applied(final, (), out.records)
    else:
        into = apply(
            out.state,
            ledger_events.Deposit(account=receiver, asset=cmd.asset, amount_units=units, as_of_ns=as_of_ns),
            config,
        )
        combined = Applied(into.state, (), (*out.records, *into.records), into.view)
    effects = _effects_of(sub, combined, [sender, receiver])
    # The two legs through @external net to one posting, sender to receiver.
    effects["postings"] = [[sender, receiver, cmd.asset, units, "transfer"]]
    effects["margin"] = _margin_rows(combined.state, config, state, [sender, receiver], taken=combined.view)
    return effects


def order_left_by_fill(state: VenueState, cmd: c.Fill, maker: str) -> list[list[Any]]:
    """The order rows a fill leaves: [] when it names no order, else [[id, maker, instrument,
    contracts left, price]] of the maker's order it consumes; InputError when it names an order
    it does not fit (the generic path and the fill lane share this check)."""
    if cmd.order_id is None:
        return []
    order = state.orders.get(cmd.order_id)
    if order is None or order.account != maker:
        raise InputError("fill.order_id", f"no open order {cmd.order_id!r} of {maker!r}")
    if order.instrument != cmd.instrument:
        raise InputError("fill.instrument", f"order {cmd.order_id!r} is on {order.instrument!r}")
    # The maker's side is -quantity: it must have the order's sign and not exceed it.
    if (-cmd.quantity) * order.quantity <= 0 or abs(cmd.quantity) > abs(order.quantity):
        raise InputError("fill.quantity", f"does not fit order {cmd.order_id!r} ({order.quantity} left)")
    return [[order.order_id, maker, order.instrument, order.quantity + cmd.quantity, order.price]]


def _fill(state: VenueState, config: LedgerConfig, cmd: c.Fill, as_of_ns: int) -> Effects:
    taker = _trader(state, cmd.taker, "fill.taker")
    maker = _trader(state, cmd.maker, "fill.maker")
    order_effects = order_left_by_fill(state, cmd, maker)
    sub = _sub(state, config, [taker, maker])
    applied = apply(
        sub,
        ledger_events.TradeFill(
            taker=taker,
            maker=maker,
            instrument=cmd.instrument,
            quantity=cmd.quantity,
            price=cmd.price,
            as_of_ns=as_of_ns,
        ),
        config,
    )
    check_state: OpenOrders = state
    if order_effects:
        # Reservation is re-checked without the part of the order this fill consumed.
        check_state = TrialOrders.after(state, [taker, maker], order_effects)
    reserved: dict[str, float] = {}  # the checks' reservations are the margin rows'
    for who, q in ((taker, cmd.quantity), (maker, -cmd.quantity)):
        old = sub.positions.get((who, cmd.instrument))
        q0 = old.quantity if old else 0
        if abs(q0 + q) > abs(q0):
            reserved[who] = _check_reserved(check_state, config, applied.state, who, "fill.quantity")
    effects = _effects_of(sub, applied, [taker, maker])
    effects["orders"] = order_effects
    effects["margin"] = _margin_rows(
        applied.state, config, check_state, sorted({taker, maker}), taken=applied.view, reserved=reserved
    )
    return effects


def _place_order(state: VenueState, config: LedgerConfig, cmd: c.PlaceOrder, as_of_ns: int) -> Effects:
    account = _trader(state, cmd.account, "place_order.account")
    if not isinstance(cmd.order_id, str) or not cmd.order_id or len(cmd.order_id) > 128:
        raise InputError("place_order.order_id", "must be a non-empty string of at most 128 chars")
    if cmd.order_id in state.orders:
        raise InputError("place_order.order_id", f"order {cmd.order_id!r} is already open")
    table = config.instruments
    if cmd.instrument not in table.index or cmd.instrument in state.expired:
        raise InputError("place_order.instrument", f"unknown or expired instrument {cmd.instrument!r}")
    if int(table.kind[table.index[cmd.instrument]]) == InstrumentKind.SPOT:
        raise InputError("place_order.instrument", "spot is held as a balance, not traded as a position")
    if isinstance(cmd.quantity, bool) or not isinstance(cmd.quantity, int) or cmd.quantity == 0:
        raise InputError("place_order.quantity", f"must be a non-zero integer, got {cmd.quantity!r}")
    if (
        isinstance(cmd.price, bool)
        or not isinstance(cmd.price, int | float)
        or not math.isfinite(cmd.price)
        or cmd.price <= 0
    ):
        raise InputError("place_order.price", f"must be a finite number > 0, got {cmd.price!r}")
    position = state.positions.get((account, cmd.instrument))
    held = position.quantity if position is not None else 0
    increases = abs(held + cmd.quantity) > abs(held)
    if increases and reduce_only(state.status[account]):
        raise InputError(
            "place_order.quantity", f"{account!r} is {state.status[account].name.lower()}: reduce-only"
        )
    order = [cmd.order_id, account, cmd.instrument, cmd.quantity, float(cmd.price)]
    # Read from the fold (no sub-state): the account's margin now and its orders' reservation
    # with this one counted, in one kernel call; the margin row is what the check read.
    result, reserved = margin_and_reserved(
        {i: state.positions[(account, i)] for i in state.holdings.get(account, ())},
        balance_amounts(state.balances, config, account),
        state,
        config,
        state.order_sizes_after(account, [order]),
    )
    available = float(result.available_usd[0])
    if available - reserved < 0.0:
        raise _below_reservation(account, reserved, available, "place_order.quantity")
    equity, im, mm = result.equity_usd[0], result.initial_margin_usd[0], result.maintenance_margin_usd[0]
    return {"orders": [order], "margin": [[account, float(equity), float(im), float(mm), reserved]]}


def _cancel_order(state: VenueState, config: LedgerConfig, cmd: c.CancelOrder, as_of_ns: int) -> Effects:
    account = _trader(state, cmd.account, "cancel_order.account")
    order = state.orders.get(cmd.order_id)
    if order is None or order.account != account:
        raise InputError("cancel_order.order_id", f"no open order {cmd.order_id!r} of {account!r}")
    return {"orders": [[order.order_id, account, order.instrument, 0, order.price]]}


def _update_prices(state: VenueState, config: LedgerConfig, cmd: c.UpdatePrices, as_of_ns: int) -> Effects:
    """Validated by the ledger on a sub-state without traders (so no O(accounts) status refresh);
    the re-margin of the holders is the monitor's (`engine.venue.monitor`)."""
    if not isinstance(cmd.index_prices, Mapping) or not isinstance(cmd.mark_prices, Mapping):
        raise InputError("update_prices", "index_prices and mark_prices must be mappings")
    oracle = _oracle_effects(config, cmd)
    if not cmd.index_prices and not cmd.mark_prices:
        if oracle:  # the oracle's word on a price it holds back: no price changes
            return oracle
        raise InputError("update_prices.index_prices", "name at least one price")
    sub = _sub(state, config, [])
    applied = apply(
        sub,
        ledger_events.PriceUpdate(
            index_prices=dict(cmd.index_prices), mark_prices=dict(cmd.mark_prices), as_of_ns=as_of_ns
        ),
        config,
    )
    after = applied.state
    return {
        "prices": {k: v for k, v in after.prices.items() if sub.prices.get(k) != v},
        "marks": {k: v for k, v in after.marks.items() if sub.marks.get(k) != v},
        **oracle,
    }


def _oracle_effects(config: LedgerConfig, cmd: c.UpdatePrices) -> Effects:
    """The oracle's status words and band fractions, checked: known symbols, known words, finite
    fractions >= 0."""
    status, band = cmd.oracle_status, cmd.oracle_band_fraction
    if not isinstance(status, Mapping) or not isinstance(band, Mapping):
        raise InputError("update_prices", "oracle_status and oracle_band_fraction must be mappings")
    known = set(config.instruments.underlyings) | set(config.assets.symbols)
    for name, table in (("oracle_status", status), ("oracle_band_fraction", band)):
        unknown = sorted(set(table) - known)
        if unknown:
            raise InputError(f"update_prices.{name}", f"unknown symbol {unknown[0]!r}")
    words = set(STATUS_LABELS.values())
    for symbol, word in status.items():
        if word not in words:
            raise InputError(
                f"update_prices.oracle_status.{symbol}", f"{word!r} is not one of {sorted(words)}"
            )
    for symbol, fraction in band.items():
        if not isinstance(fraction, int | float) or not math.isfinite(fraction) or fraction < 0.0:
            raise InputError(
                f"update_prices.oracle_band_fraction.{symbol}", f"must be finite and >= 0, got {fraction!r}"
            )
    out: Effects = {}
    if status:
        out["oracle_status"] = dict(status)
    if band:
        out["oracle_band_fraction"] = {k: float(v) for k, v in band.items()}
    return out


def _set_risk_parameters(
    state: VenueState, config: LedgerConfig, cmd: c.SetRiskParameters, as_of_ns: int
) -> Effects:
    """The what-if and its threshold are the venue's (it holds the whole book); here the change
    is validated and recorded."""
    from crossmargin.engine.venue.state import parameters_dict

    params = cmd.parameters
    if not isinstance(params, c.RiskParameters):
        raise InputError("set_risk_parameters.parameters", "must be RiskParameters")
    current = state.parameter_versions[-1][1] if state.parameter_versions else parameters_dict(config)
    merged = merged_parameters(
        current,
        {"margin": params.margin, "margin_call": params.margin_call, "liquidation": params.liquidation},
    )
    with_parameters(config, merged)  # validates (InputError naming the field)
    return {"parameters": merged}


# ---------------------------------------------------------------------------------- lifecycle
# Funding, interest and expiry are the ledger's own events (`core.ledger.apply`: FundingPayment,
# BorrowInterest, Expiry), applied to a sub-state of the accounts they touch (the instrument's
# holders, the borrowers) and every system account: the postings are the ledger's, to the unit.


def _lifecycle_applied(
    state: VenueState,
    config: LedgerConfig,
    traders: Iterable[str],
    event: ledger_events.Event,
    fields: Mapping[str, str],
    amount_field: str,
) -> tuple[LedgerState, Applied]:
    """Apply `event` on the sub-state of `traders`; the ledger's field names in a refusal are
    renamed to the command's (`fields`: ledger field -> command field). An amount that has no
    integer form (non-finite) or exceeds `MAX_UNITS` is refused naming `amount_field`, the input
    that made it so."""
    sub = _sub(state, config, traders)
    try:
        applied = apply(sub, event, config)
    except InputError as error:
        raise InputError(fields.get(error.field, amount_field), error.problem) from None
    for p in applied.postings:
        if p.amount_units > MAX_UNITS:
            raise InputError(amount_field, f"would post {p.amount_units} units, above {MAX_UNITS}")
    return sub, applied


def _lifecycle_effects(
    state: VenueState, config: LedgerConfig, sub: LedgerState, applied: Applied, traders: set[str]
) -> Effects:
    effects = _effects_of(sub, applied, traders)
    effects["margin"] = _margin_rows(applied.state, config, state, sorted(traders), taken=applied.view)
    return effects


def _instrument_name(config: LedgerConfig, value: Any, name: str) -> str:
    if not isinstance(value, str) or value not in config.instruments.index:
        raise InputError(name, f"unknown instrument {value!r}")
    return value


def _settle_funding(state: VenueState, config: LedgerConfig, cmd: c.SettleFunding, as_of_ns: int) -> Effects:
    instrument = _instrument_name(config, cmd.instrument, "settle_funding.instrument")
    traders = state.holders_of([instrument])
    event = ledger_events.FundingPayment(instrument=instrument, rate=cmd.funding_rate, as_of_ns=as_of_ns)
    fields = {
        "funding.instrument": "settle_funding.instrument",
        "funding.rate": "settle_funding.funding_rate",
    }
    sub, applied = _lifecycle_applied(state, config, traders, event, fields, "settle_funding.funding_rate")
    return _lifecycle_effects(state, config, sub, applied, traders)


def _accrue_interest(
    state: VenueState, config: LedgerConfig, cmd: c.AccrueInterest, as_of_ns: int
) -> Effects:
    elapsed = cmd.elapsed_ns
    if isinstance(elapsed, bool) or not isinstance(elapsed, int) or elapsed <= 0:
        raise InputError("accrue_interest.elapsed_ns", f"must be a positive integer of ns, got {elapsed!r}")
    # The borrowers: traders with a negative balance (only they pay interest).
    traders = {a for (a, _k), units in state.balances.items() if units < 0 and a in state.status}
    event = ledger_events.BorrowInterest(elapsed_ns=elapsed, as_of_ns=as_of_ns)
    fields = {"interest.elapsed_ns": "accrue_interest.elapsed_ns"}
    sub, applied = _lifecycle_applied(state, config, traders, event, fields, "accrue_interest.elapsed_ns")
    return _lifecycle_effects(state, config, sub, applied, traders)


def _settle_expiry(state: VenueState, config: LedgerConfig, cmd: c.SettleExpiry, as_of_ns: int) -> Effects:
    instrument = _instrument_name(config, cmd.instrument, "settle_expiry.instrument")
    expiry_ns = int(config.instruments.expiry_ns[config.instruments.index[instrument]])
    # Holders, and the owners of open orders on it (cancelled below), are re-margined together.
    cancelled = state.orders_on(instrument)
    traders = state.holders_of([instrument]) | {o.account for o in cancelled}
    event = ledger_events.Expiry(
        instrument=instrument, settlement_price=cmd.settlement_price, as_of_ns=as_of_ns
    )
    fields = {
        "expiry.instrument": "settle_expiry.instrument",
        "expiry.settlement_price": "settle_expiry.settlement_price",
        "expiry.as_of_ns": "settle_expiry.instrument",
    }
    try:
        sub, applied = _lifecycle_applied(
            state, config, traders, event, fields, "settle_expiry.settlement_price"
        )
    except InputError as error:
        if error.field == "settle_expiry.instrument" and "expires at" in error.problem:
            raise InputError(
                error.field, f"{instrument!r} expires at {expiry_ns} ns; the venue clock is at {as_of_ns} ns"
            ) from None
        raise
    # Open orders on it can never fill: cancelled (their reservations freed) in the same record.
    # What the margin rows read: the re-margined traders' other orders (reservations).
    effects = _effects_of(sub, applied, traders)
    effects["expired"] = [instrument]
    effects["orders"] = [[o.order_id, o.account, o.instrument, 0, o.price] for o in cancelled]
    remaining = TrialOrders.after(state, traders, effects["orders"])
    effects["records"].extend(
        ["order_cancelled", o.account, {"order_id": o.order_id, "reason": "expired"}] for o in cancelled
    )
    effects["margin"] = _margin_rows(applied.state, config, remaining, sorted(traders), taken=applied.view)
    return effects


def liquidation_effects(
    state: VenueState,
    config: LedgerConfig,
    account: str,
    as_of_ns: int,
    *,
    candidates_of: Callable[[str, int], Counterparties] | None = None,
) -> Effects:
    """One `Liquidate` of `account` by the ledger's liquidation engine, on the fewest traders
    that decide it exactly:

    1. the account alone (with the system accounts: the liquidator, the insurance fund, the
       backstop): closing its positions, selling its collateral and the waterfall's fee,
       insurance and backstop stages read nothing else. A liquidation the insurance fund
       absorbs, the usual case, ends here: O(the account).
    2. when a waterfall reaches ADL and `candidates_of` is given: the ledger asks for the
       market's opposite-side holders (ADL's only candidates) as arrays (`candidates_of(market,
       side)`, `core.ledger.counterparties`: the venue's `engine.venue.adl_candidates`, equity from
       its whole-book margin) in the same pass as step 1, and takes in the winners it picks
       (`traders_of`: their sub-state), so the decision holds the account and its winners and
       is taken once. In several markets (one waterfall per settlement asset) a later market's
       candidates that an earlier one moved are read from the decision's own state. Without
       `candidates_of`, or with candidates that turn out not to be the state's
       (`StaleCounterpartiesError`: a bug, not expected): the sub-state holds every opposite
       holder, the ledger margins them itself. The same candidates with the same equity give
       the same ranking, allocation and haircuts.
    3. when the waterfall then reaches socialised loss (which reads every trader of the
       decision) or ADL had no market: with every holder of what the account holds, as before.

    A decision refreshes the statuses of its own traders only; the others' are the monitor's (a
    decision over every holder refreshed them by happenstance of holding). On 2,000 accounts
    holding one perpetual, a crash tick's 391 liquidations took 12.1 s by the whole-holder path
    with a funded insurance fund, 0.75 s now (bench/bench_venue_scale.py)."""
    event = ledger_events.Liquidate(account=account, as_of_ns=as_of_ns)
    traders, sub, applied = {account}, _sub(state, config, {account}), None
    if candidates_of is not None:
        try:  # steps 1 and 2 in one: candidates asked for when a waterfall reaches ADL
            applied = apply(
                sub,
                event,
                config,
                counterparties=_AdlMarkets(state, account, candidates_of),
                traders_of=lambda more: _sub(state, config, more),
            )
        except StaleCounterpartiesError:  # the reference path below
            applied = None
        else:  # the decision took its winners in: the state before it holds them too
            traders = set(applied.state.traders)
            sub = _sub(state, config, traders) if len(traders) > 1 else sub
    if applied is None:
        applied = apply(sub, event, config)
        markets = _adl_markets(applied)
        if markets:
            traders = {account} | _opposite_holders(state, account, markets)
            sub = _sub(state, config, traders)
            applied = apply(sub, event, config)
    # Socialised loss reads every trader of the decision (and is the only counterparty stage
    # reached without an ADL market: a waterfall without one skips ADL).
    if "socialised_loss" in _reached(applied):
        traders = {account} | state.holders_of(state.holdings.get(account, set()))
        sub = _sub(state, config, traders)
        applied = apply(sub, event, config)
    effects = _effects_of(sub, applied, traders)
    effects["time_ns"] = as_of_ns
    return effects


class _AdlMarkets(Mapping[str, Counterparties]):
    """ADL's candidates for the ledger (`Tx.counterparties`), asked for market by market as its
    waterfalls reach ADL, from `candidates_of(market, the side opposite to the account's
    position)`, and kept for the decision. A second market's arrays may hold the first's winners
    as they were; the ledger reads those from its own state (core.ledger.counterparties)."""

    def __init__(self, state: VenueState, account: str, candidates_of: Callable[[str, int], Counterparties]):
        self._state, self._account, self._candidates_of = state, account, candidates_of
        self._asked: dict[str, Counterparties] = {}

    def __getitem__(self, market: str) -> Counterparties:
        if market not in self._asked:
            side = -1 if self._state.positions[(self._account, market)].quantity > 0 else 1
            self._asked[market] = self._candidates_of(market, side)
        return self._asked[market]

    def __iter__(self) -> Iterator[str]:
        return iter(self._asked)

    def __len__(self) -> int:
        return len(self._asked)


def _reached(applied: Applied) -> set[str]:
    """The loss-waterfall stages that ran (each waterfall record's `paid_units` names them)."""
    return {stage for r in applied.records if r.kind == "waterfall" for stage in r.detail["paid_units"]}


def _adl_markets(applied: Applied) -> set[str]:
    """The markets of the waterfalls that reached ADL (a waterfall without a market skips ADL)."""
    return {
        r.detail["market"]
        for r in applied.records
        if r.kind == "waterfall" and "adl" in r.detail["paid_units"]
    }


def _opposite_holders(state: VenueState, account: str, markets: Iterable[str]) -> set[str]:
    """Traders holding each market on the side opposite to `account`'s position there: ADL's
    winners hold the side of the liquidation's closing trades (core.ledger.liquidate)."""
    out: set[str] = set()
    for market in markets:
        side = state.positions[(account, market)].quantity
        out |= {a for a in state.holders_of([market]) if state.positions[(a, market)].quantity * side < 0}
    return out


def status_change(account: str, status: AccountStatus, deadline_ns: int | None) -> list[Any]:
    return [account, int(status), deadline_ns]


def withdraw_allowed(state: VenueState, account: str) -> bool:
    return may_withdraw(state.status[account])


_HANDLERS: dict[type[Any], Any] = {
    c.OpenAccount: _open_account,
    c.Deposit: _deposit,
    c.Withdraw: _withdraw,
    c.Transfer: _transfer,
    c.Fill: _fill,
    c.PlaceOrder: _place_order,
    c.CancelOrder: _cancel_order,
    c.UpdatePrices: _update_prices,
    c.SetRiskParameters: _set_risk_parameters,
    c.SettleFunding: _settle_funding,
    c.AccrueInterest: _accrue_interest,
    c.SettleExpiry: _settle_expiry,
}
