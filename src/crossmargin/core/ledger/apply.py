"""apply(state, event, config) -> Applied(new state, postings, audit records): the only way a
ledger changes. Pure: the input state is never modified, so a rejected event (InputError naming
the field) leaves it untouched, and replaying the same events from the same state gives the same
state bit for bit (`replay`, `LedgerState.digest`).

After every accepted event all traders' margin-call statuses are re-evaluated
(`liquidation.margin_call`); each change is an audit record with its reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from crossmargin.core.instruments import InstrumentKind
from crossmargin.core.ledger.counterparties import Counterparties, TradersOf
from crossmargin.core.ledger.events import (
    BorrowInterest,
    Deposit,
    Event,
    Expiry,
    FundingPayment,
    Liquidate,
    MarginCheck,
    PositionTransfer,
    PriceUpdate,
    TradeFill,
    Withdrawal,
)
from crossmargin.core.ledger.liquidate import liquidate
from crossmargin.core.ledger.money import to_float, units_charge, units_payout, units_signed_pnl
from crossmargin.core.ledger.postings import (
    BACKSTOP,
    BAD_DEBT,
    CLEARING,
    EXTERNAL,
    FEES,
    INSURANCE,
    LIQUIDATOR,
    Posting,
)
from crossmargin.core.ledger.state import (
    AccountStatus,
    LedgerConfig,
    LedgerState,
    Position,
    RiskView,
    coverage,
    frozen_prices,
)
from crossmargin.core.ledger.transact import AuditRecord, Tx
from crossmargin.core.liquidation.margin_call import may_withdraw, next_status, reduce_only
from crossmargin.core.market import NS_PER_YEAR
from crossmargin.errors import InputError

DEPOSIT_ACCOUNTS = frozenset({INSURANCE, BACKSTOP, LIQUIDATOR, BAD_DEBT})


class Applied(NamedTuple):
    """The new state, its postings and audit records, and `view`: the cross-margin view of every
    trader the status refresh took on the new state's balances and positions (None without
    traders): a caller that needs those margins again reads them here instead of a second pass."""

    state: LedgerState
    postings: tuple[Posting, ...]
    records: tuple[AuditRecord, ...]
    view: RiskView | None = None


def apply(
    state: LedgerState,
    event: Event,
    config: LedgerConfig,
    *,
    counterparties: Mapping[str, Counterparties] | None = None,
    traders_of: TradersOf | None = None,
) -> Applied:
    """Apply one event (module docstring). `counterparties`: a `Liquidate`'s ADL candidates held
    outside `state`, by market (core.ledger.counterparties); the winners ADL picks among them are
    taken in through `traders_of` (the new state holds them: `Applied.state.traders`), or without
    it MissingTradersError names the winners the state must hold."""
    handler = _HANDLERS.get(type(event))
    if handler is None:
        raise InputError("event", f"unknown event type {type(event).__name__}")
    as_of = _integer(event.as_of_ns, "as_of_ns")
    if as_of < state.time_ns:
        raise InputError("as_of_ns", f"{as_of} is before the ledger time {state.time_ns}")
    tx = Tx(
        config, state, counterparties={} if counterparties is None else counterparties, traders_of=traders_of
    )
    tx.time_ns = as_of
    view = _refresh_statuses(tx, handler(tx, event))
    return Applied(tx.commit(), tuple(tx.postings), tuple(tx.records), view)


def replay(state: LedgerState, events: Iterable[Event], config: LedgerConfig) -> LedgerState:
    """Apply every event in order (rejections raise: a recorded log holds only accepted events)."""
    for event in events:
        state = apply(state, event, config).state
    return state


# ---------------------------------------------------------------------------------- validation


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(name, f"must be an integer, got {value!r}")
    return value


def _positive_units(value: Any, name: str) -> int:
    units = _integer(value, name)
    if units <= 0:
        raise InputError(name, f"must be > 0, got {units!r}")
    return units


def _price(value: Any, name: str, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(name, f"must be a finite number, got {value!r}")
    if value < 0.0 or (value == 0.0 and not allow_zero):
        raise InputError(name, f"must be > 0, got {value!r}")
    return float(value)


def _trader(tx: Tx, account: Any, name: str) -> str:
    if account not in tx.status:
        raise InputError(name, f"unknown account {account!r}")
    return str(account)


def _asset(tx: Tx, asset: Any, name: str) -> str:
    if asset not in tx.config.assets.index:
        raise InputError(name, f"unknown asset {asset!r}")
    return str(asset)


def _instrument(tx: Tx, instrument: Any, name: str) -> int:
    if instrument not in tx.config.instruments.index:
        raise InputError(name, f"unknown instrument {instrument!r}")
    if instrument in tx.expired:
        raise InputError(name, f"instrument {instrument!r} has expired")
    return tx.config.instruments.index[instrument]


def _bad_debt_outstanding(tx: Tx) -> bool:
    return any(tx.balance(BAD_DEBT, k) < 0 for k in tx.config.assets.symbols)


# ---------------------------------------------------------------------------------- handlers


def _deposit(tx: Tx, e: Deposit) -> None:
    if e.account not in tx.status and e.account not in DEPOSIT_ACCOUNTS:
        raise InputError("deposit.account", f"unknown account {e.account!r}")
    asset = _asset(tx, e.asset, "deposit.asset")
    units = _positive_units(e.amount_units, "deposit.amount_units")
    tx.post(EXTERNAL, e.account, asset, units, "deposit")


def _withdrawal(tx: Tx, e: Withdrawal) -> RiskView | None:
    account = _trader(tx, e.account, "withdrawal.account")
    asset = _asset(tx, e.asset, "withdrawal.asset")
    units = _positive_units(e.amount_units, "withdrawal.amount_units")
    held = tx.balance(account, asset)
    if units > held:
        raise InputError(
            "withdrawal.amount_units", f"{units} exceeds the free balance {max(held, 0)} of {asset}"
        )
    if not may_withdraw(tx.status[account]):
        raise InputError(
            "withdrawal.account", f"{account!r} is {tx.status[account].name.lower()}: withdrawals gated"
        )
    if _bad_debt_outstanding(tx):
        raise InputError("withdrawal", "venue has unresolved bad debt: withdrawals gated")
    tx.post(account, EXTERNAL, asset, units, "withdrawal")
    view = tx.view()  # every trader: the status refresh reads the same view (`apply`)
    available = float(view.result.available_usd[view.traders.index(account)])
    if available < 0.0:
        raise InputError(
            "withdrawal.amount_units",
            f"would leave {account!r} below initial margin (available {available:.2f} USD)",
        )
    return view


def _trade_fill(tx: Tx, e: TradeFill) -> RiskView | None:
    taker = _trader(tx, e.taker, "fill.taker")
    maker = _trader(tx, e.maker, "fill.maker")
    if taker == maker:
        raise InputError("fill.maker", "must differ from taker")
    i = _instrument(tx, e.instrument, "fill.instrument")
    option = int(tx.config.instruments.kind[i]) == InstrumentKind.OPTION
    if int(tx.config.instruments.kind[i]) == InstrumentKind.SPOT:
        raise InputError("fill.instrument", "spot is held as a balance, not traded as a position")
    quantity = _integer(e.quantity, "fill.quantity")
    if quantity == 0:
        raise InputError("fill.quantity", "must not be 0")
    price = _price(e.price, "fill.price", allow_zero=option)
    growing: list[str] = []
    for who, q in ((taker, quantity), (maker, -quantity)):
        old = tx.positions.get((who, e.instrument))
        q0 = old.quantity if old else 0
        if abs(q0 + q) > abs(q0) or (q0 + q) * q0 < 0:
            if reduce_only(tx.status[who]):
                raise InputError("fill.quantity", f"{who!r} is {tx.status[who].name.lower()}: reduce-only")
            growing.append(who)
    tx.trade(taker, maker, e.instrument, quantity, price, "fill")
    for who, rate in ((taker, tx.config.taker_fee_rate), (maker, tx.config.maker_fee_rate)):
        asset, fee = tx.fee_units(e.instrument, quantity, price, rate)
        tx.post(who, FEES, asset, fee, "trading_fee")
    if not growing:
        return None
    view = tx.view()  # every trader: the status refresh reads the same view (`apply`)
    for who in growing:
        if float(view.result.available_usd[view.traders.index(who)]) < 0.0:
            raise InputError("fill.quantity", f"{who!r} would fall below initial margin")
    return view


def _position_transfer(tx: Tx, e: PositionTransfer) -> None:
    account = _trader(tx, e.account, "transfer.account")
    i = _instrument(tx, e.instrument, "transfer.instrument")
    if int(tx.config.instruments.kind[i]) == InstrumentKind.SPOT:
        raise InputError("transfer.instrument", "spot is held as a balance, not a position")
    quantity = _integer(e.quantity, "transfer.quantity")
    if quantity == 0:
        raise InputError("transfer.quantity", "must not be 0")
    option = int(tx.config.instruments.kind[i]) == InstrumentKind.OPTION
    price = _price(e.entry_price, "transfer.entry_price", allow_zero=option)
    if (account, e.instrument) in tx.positions:
        raise InputError("transfer.instrument", f"{account!r} already holds {e.instrument!r}")
    tx.positions[(account, e.instrument)] = Position(quantity, price)
    # The liquidator (the market) takes the other side at the same price; a reduction of its side
    # realises against the clearing pool like any close.
    asset = tx.config.settlement_asset(i)
    realised = tx.move_position(LIQUIDATOR, i, e.instrument, -quantity, price)
    tx.post(
        CLEARING,
        LIQUIDATOR,
        asset,
        units_signed_pnl(realised, tx.config.decimals[asset]),
        "transfer:realised_pnl",
    )
    tx.record("position_transfer", account, instrument=e.instrument, quantity=quantity, entry_price=price)


def _funding(tx: Tx, e: FundingPayment) -> None:
    i = _instrument(tx, e.instrument, "funding.instrument")
    if int(tx.config.instruments.kind[i]) != InstrumentKind.PERPETUAL:
        raise InputError("funding.instrument", f"{e.instrument!r} is not a perpetual")
    if (
        isinstance(e.rate, bool)
        or not isinstance(e.rate, int | float)
        or not math.isfinite(e.rate)
        or abs(e.rate) >= 1.0
    ):
        raise InputError("funding.rate", f"must be finite with |rate| < 1, got {e.rate!r}")
    asset = tx.config.settlement_asset(i)
    decimals = tx.config.decimals[asset]
    cs = float(tx.config.instruments.contract_size[i])
    mark = tx.mark(e.instrument)
    per_contract = cs / mark if tx.config.instruments.reciprocal_entry[i] else cs * mark
    paid = received = 0
    for (who, inst), pos in sorted(tx.positions.items()):
        if inst != e.instrument:
            continue
        amount = pos.quantity * per_contract * e.rate  # > 0: this position pays
        if amount > 0.0:
            units = units_charge(amount, decimals, name="funding")
            tx.post(who, CLEARING, asset, units, "funding")
            paid += units
        elif amount < 0.0:
            units = units_payout(-amount, decimals, name="funding")
            tx.post(CLEARING, who, asset, units, "funding")
            received += units
    # Payers round up and receivers down: the residue (>= 0) is swept to fees, so the clearing
    # pool is unchanged and longs + shorts + residue sum to zero exactly.
    tx.post(CLEARING, FEES, asset, paid - received, "funding_residue")
    tx.record("funding", e.instrument, rate=e.rate, paid_units=paid, received_units=received)


def _borrow_interest(tx: Tx, e: BorrowInterest) -> None:
    elapsed = _integer(e.elapsed_ns, "interest.elapsed_ns")
    if elapsed < 0:
        raise InputError("interest.elapsed_ns", f"must be >= 0, got {elapsed}")
    years = elapsed / NS_PER_YEAR
    assets = tx.config.assets
    for trader in tx.traders:
        for k, symbol in enumerate(assets.symbols):
            owed = tx.balance(trader, symbol)
            if owed < 0:
                decimals = tx.config.decimals[symbol]
                interest = to_float(-owed, decimals) * float(assets.borrow_rate_apr[k]) * years
                tx.post(
                    trader, FEES, symbol, units_charge(interest, decimals, name="interest"), "borrow_interest"
                )


def _price_update(tx: Tx, e: PriceUpdate) -> None:
    known = set(tx.config.instruments.underlyings) | set(tx.config.assets.symbols)
    prices, marks = dict(tx.prices), dict(tx.marks)  # new mappings: the old ones are shared
    for symbol, value in e.index_prices.items():
        if symbol not in known:
            raise InputError("prices.index_prices", f"unknown symbol {symbol!r}")
        prices[symbol] = _price(value, f"prices.index_prices[{symbol}]")
    for instrument, value in e.mark_prices.items():
        i = _instrument(tx, instrument, "prices.mark_prices")
        if int(tx.config.instruments.kind[i]) == InstrumentKind.OPTION:
            raise InputError(f"prices.mark_prices[{instrument}]", "options are priced from implied vols")
        marks[instrument] = _price(value, f"prices.mark_prices[{instrument}]")
    tx.prices, tx.marks = frozen_prices(prices), frozen_prices(marks)


def _expiry(tx: Tx, e: Expiry) -> None:
    i = _instrument(tx, e.instrument, "expiry.instrument")
    table = tx.config.instruments
    kind = int(table.kind[i])
    if kind not in (InstrumentKind.FUTURE, InstrumentKind.OPTION):
        raise InputError("expiry.instrument", f"{e.instrument!r} does not expire")
    if tx.time_ns < int(table.expiry_ns[i]):
        raise InputError("expiry.as_of_ns", f"{e.instrument!r} expires at {int(table.expiry_ns[i])}")
    settle = _price(e.settlement_price, "expiry.settlement_price")
    asset = tx.config.settlement_asset(i)
    decimals = tx.config.decimals[asset]
    cs = float(table.contract_size[i])
    for (who, inst), pos in sorted(tx.positions.items()):
        if inst != e.instrument:
            continue
        if kind == InstrumentKind.OPTION:
            intrinsic = cs * max(float(table.option_sign[i]) * (settle - float(table.strike[i])), 0.0)
            amount = pos.quantity * (intrinsic / settle if table.is_inverse[i] else intrinsic)
        elif table.reciprocal_entry[i]:
            amount = pos.quantity * cs * (1.0 / pos.entry_price - 1.0 / settle)
        else:
            amount = pos.quantity * cs * (settle - pos.entry_price)
        tx.post(CLEARING, who, asset, units_signed_pnl(amount, decimals, name="settlement"), "settlement")
        del tx.positions[(who, inst)]
    tx.expired.add(e.instrument)
    if e.instrument in tx.marks:  # a new mapping: the old one is shared
        tx.marks = frozen_prices({k: v for k, v in tx.marks.items() if k != e.instrument})
    tx.record("expiry", e.instrument, settlement_price=settle)


def _liquidate(tx: Tx, e: Liquidate) -> None:
    account = _trader(tx, e.account, "liquidate.account")
    liquidate(tx, account)


def _margin_check(tx: Tx, e: MarginCheck) -> None:
    return None


# Each handler applies its event to the Tx; it may return the view of every trader it took on
# the final state (a margin check), which the status refresh then reads instead of its own.
_HANDLERS: dict[type[Any], Callable[[Tx, Any], RiskView | None]] = {
    Deposit: _deposit,
    Withdrawal: _withdrawal,
    TradeFill: _trade_fill,
    PositionTransfer: _position_transfer,
    FundingPayment: _funding,
    BorrowInterest: _borrow_interest,
    PriceUpdate: _price_update,
    Expiry: _expiry,
    Liquidate: _liquidate,
    MarginCheck: _margin_check,
}


def _refresh_statuses(tx: Tx, taken: RiskView | None) -> RiskView | None:
    """Move every trader's margin-call status on its coverage now; returns the view it read:
    `taken`, the handler's view of every trader on the final state (a margin check's, one risk
    pass per fill or withdrawal instead of two), else its own."""
    traders = tx.traders
    if not traders:
        return None
    view = taken if taken is not None else tx.view()
    result = view.result
    params = tx.config.margin_call
    for n, trader in enumerate(traders):
        previous = tx.status[trader]
        cover = coverage(float(result.equity_usd[n]), float(result.maintenance_margin_usd[n]))
        if result.bankrupt[n] and result.maintenance_margin_usd[n] > 0.0:
            # Equity at zero up to rounding (EQUITY_ZERO_TOLERANCE), the rule every margin model
            # applies: a +1e-10 left by cancellation is not solvency.
            cover = min(cover, 0.0)
        move = next_status(
            previous, coverage=cover, now_ns=tx.time_ns, deadline_ns=tx.deadlines.get(trader), params=params
        )
        if move.deadline_ns is None:
            tx.deadlines.pop(trader, None)
        else:
            tx.deadlines[trader] = move.deadline_ns
        if move.status != previous:
            tx.status[trader] = move.status
            tx.record(
                "status",
                trader,
                previous=previous.name.lower(),
                status=move.status.name.lower(),
                reason=move.reason,
                coverage=None if not math.isfinite(cover) else cover,
                as_of_ns=tx.time_ns,
            )
    return view


def account_is_bankrupt(state: LedgerState) -> dict[str, bool]:
    """Trader -> status is BANKRUPT (a helper for callers and tests)."""
    return {t: state.status[t] == AccountStatus.BANKRUPT for t in state.traders}
