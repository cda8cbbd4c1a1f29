"""The liquidation controller: the ledger's state changes for one account in liquidation
(Drift's controller/ layer). The rules it follows are pure values and functions in
`crossmargin.core.liquidation` (params, margin_call, adl), which never import the ledger.

1. Partial liquidation (status LIQUIDATION): close position slices against the liquidator,
   best first by maintenance margin released per USD of close-out cost (price impact + fee),
   until coverage >= exit_coverage or the account is flat. A slice is ceil(|q| · slice_fraction)
   contracts of the position as it was when liquidation began. Fills at mark · (1 ∓ impact),
   impact = impact_bps/1e4 + slice notional / depth_usd; the liquidation fee (fee_rate × notional,
   rounded up, never more than the account holds) goes to the insurance fund.
   A bankrupt account (equity <= 0, up to `EQUITY_ZERO_TOLERANCE` of rounding) is closed out whole.
2. Collateral sale: a flat account still below target sells collateral in haircut order (the
   highest effective haircut first: it backs the least margin) to repay its borrowings, swapped
   with the outside market at price · (1 - impact_bps/1e4).
3. Loss waterfall, per asset still negative after 1-2: the stages of WaterfallParams in order —
   fee (this liquidation's fees back from the fund), insurance (capped per market), backstop,
   ADL (policy from `adl`), socialised loss (pro rata to positive balances), bad debt (recorded on
   @bad_debt). The account ends flat with every balance >= 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from crossmargin.core.collateral import value_collateral
from crossmargin.core.instruments import InstrumentKind
from crossmargin.core.ledger.counterparties import MissingTradersError, StaleCounterpartiesError, rows_of
from crossmargin.core.ledger.money import to_float, units_charge, units_payout
from crossmargin.core.ledger.postings import (
    BACKSTOP,
    BAD_DEBT,
    EXTERNAL,
    INSURANCE,
    LIQUIDATOR,
    SOCIALISED_LOSS,
)
from crossmargin.core.ledger.state import Position, balance_amounts
from crossmargin.core.ledger.transact import Tx
from crossmargin.core.liquidation.adl import AdlCandidates, AdlReport, adl_policy
from crossmargin.core.liquidation.params import AccountStatus, coverage
from crossmargin.core.margin.requirements import requirements_from_records
from crossmargin.errors import InputError


def liquidate(tx: Tx, account: str) -> None:
    """Liquidate `account` (module docstring). Raises InputError unless it is in liquidation."""
    status = tx.status[account]
    if status not in (AccountStatus.LIQUIDATION, AccountStatus.BANKRUPT):
        raise InputError("liquidate.account", f"{account!r} is {status.name.lower()}, not in liquidation")
    fees: dict[str, int] = {}
    closed: dict[str, int] = {}
    closed_notional: dict[str, float] = {}
    _close_positions(
        tx,
        account,
        bankrupt=status == AccountStatus.BANKRUPT,
        fees=fees,
        closed=closed,
        closed_notional=closed_notional,
    )
    if not _mine(tx, account):
        _sell_collateral(tx, account)
        for asset in tx.config.assets.symbols:
            if tx.balance(account, asset) < 0:
                _waterfall(tx, account, asset, fees=fees, closed=closed, closed_notional=closed_notional)


def _mine(tx: Tx, account: str) -> list[str]:
    return sorted(i for (a, i) in tx.positions if a == account)


def _close_positions(
    tx: Tx,
    account: str,
    *,
    bankrupt: bool,
    fees: dict[str, int],
    closed: dict[str, int],
    closed_notional: dict[str, float],
) -> None:
    cfg = tx.config
    params = cfg.liquidation
    table = cfg.instruments
    start = {i: tx.positions[(account, i)].quantity for i in _mine(tx, account)}
    while True:
        mine = _mine(tx, account)
        if not mine:
            return
        view = tx.view((account,))
        equity = float(view.result.equity_usd[0])
        maintenance = float(view.result.maintenance_margin_usd[0])
        if view.result.bankrupt[0]:  # equity <= 0 up to rounding (EQUITY_ZERO_TOLERANCE)
            bankrupt = True
        if not bankrupt and coverage(equity, maintenance) >= cfg.margin_call.exit_coverage:
            return
        held = [tx.positions[(account, instrument)] for instrument in mine]
        # Each position's value and maintenance margin, as the engine's cross breakdown gives them
        # (the same kernel on the same instrument records: the view's priced market keeps them).
        req = requirements_from_records(
            view.priced.instruments,
            view.priced.valuation,
            view.priced.records,
            instrument_index=np.array([table.index[instrument] for instrument in mine], dtype=np.int64),
            quantity=np.array([float(p.quantity) for p in held]),
            entry_price=np.array([p.entry_price for p in held]),
        )
        best: tuple[float, str, int, float, float] | None = None
        for p, (instrument, position) in enumerate(zip(mine, held, strict=True)):
            i = table.index[instrument]
            q = position.quantity
            size = (
                abs(q)
                if bankrupt
                else min(abs(q), max(1, math.ceil(abs(start.get(instrument, q)) * params.slice_fraction)))
            )
            unit_value = float(req.value_usd[p]) / q
            mark = _close_price(tx, i, unit_value)
            notional_usd = size * _unit_notional_usd(tx, i, mark)
            impact = params.impact_bps * 1e-4 + notional_usd / params.depth_usd
            released = float(req.maintenance_margin_usd[p]) * size / abs(q)
            cost = notional_usd * (impact + params.fee_rate) + 1e-12
            score = released / cost
            if best is None or score > best[0] or (score == best[0] and instrument < best[1]):
                best = (score, instrument, -int(math.copysign(size, q)), mark, impact)
        assert best is not None  # mine is non-empty
        _, instrument, traded, mark, impact = best
        i = table.index[instrument]
        fill = mark * (1.0 + impact) if traded > 0 else mark * (1.0 - impact)
        tx.trade(account, LIQUIDATOR, instrument, traded, fill, "liquidation")
        asset, fee = tx.fee_units(instrument, traded, fill, params.fee_rate)
        fee = min(fee, max(tx.balance(account, asset), 0))
        tx.post(account, INSURANCE, asset, fee, "liquidation_fee")
        fees[asset] = fees.get(asset, 0) + fee
        closed[instrument] = closed.get(instrument, 0) + traded
        closed_notional[instrument] = closed_notional.get(instrument, 0.0) + abs(traded) * _unit_notional_usd(
            tx, i, mark
        )
        tx.record(
            "liquidation_fill",
            account,
            instrument=instrument,
            quantity=traded,
            mark=mark,
            fill_price=fill,
            fee_units=fee,
            fee_asset=asset,
            reason="bankrupt: close out" if bankrupt else "below exit coverage: partial",
        )


def _close_price(tx: Tx, i: int, unit_value_usd: float) -> float:
    """The price a position closes at before impact: delta-one mark, or the option's mark value
    per unit of underlying in settlement units (USD linear, coin inverse)."""
    table = tx.config.instruments
    instrument = table.ids[i]
    if int(table.kind[i]) != InstrumentKind.OPTION:
        return tx.mark(instrument)
    cs = float(table.contract_size[i])
    underlying = table.underlyings[table.underlying_index[i]]
    per_unit_usd = unit_value_usd / cs
    return per_unit_usd / tx.prices[underlying] if table.is_inverse[i] else per_unit_usd


def _unit_notional_usd(tx: Tx, i: int, price: float) -> float:
    table = tx.config.instruments
    cs = float(table.contract_size[i])
    underlying = table.underlyings[table.underlying_index[i]]
    if int(table.kind[i]) == InstrumentKind.OPTION:
        return cs * tx.prices[underlying]
    return cs if table.reciprocal_entry[i] else cs * price


def _sell_collateral(tx: Tx, account: str) -> None:
    """Repay every negative balance by selling positive ones, highest haircut first."""
    cfg = tx.config
    symbols = cfg.assets.symbols
    slippage = 1.0 - cfg.liquidation.impact_bps * 1e-4
    units = [tx.balance(account, s) for s in symbols]
    if min(units) >= 0 or max(units) <= 0:
        return  # nothing owed, or nothing to sell (a crash's usual bankrupt: one asset, negative)
    # The effective haircut of each balance: the account's amounts, no Book of it built.
    amounts = np.array([balance_amounts(tx.balances, cfg, account)], dtype=np.float64)
    haircut = value_collateral(amounts, cfg.assets, tx.market().asset_prices(cfg.assets)).haircut[0]
    order = sorted(range(len(symbols)), key=lambda k: (-haircut[k], symbols[k]))
    for owed in symbols:
        for k in order:
            sold = symbols[k]
            short = -tx.balance(account, owed)
            held = tx.balance(account, sold)
            if short <= 0:
                break
            if sold == owed or held <= 0:
                continue
            rate = tx.prices[sold] / tx.prices[owed] * slippage  # owed asset per unit sold
            need = units_charge(to_float(short, cfg.decimals[owed]) / rate, cfg.decimals[sold])
            sell = min(need, held)
            proceeds = units_payout(to_float(sell, cfg.decimals[sold]) * rate, cfg.decimals[owed])
            tx.post(account, EXTERNAL, sold, sell, "collateral_sale")
            tx.post(EXTERNAL, account, owed, proceeds, "collateral_sale")
            tx.record(
                "collateral_sale", account, sold=sold, sold_units=sell, bought=owed, bought_units=proceeds
            )


def _waterfall(
    tx: Tx,
    account: str,
    asset: str,
    *,
    fees: dict[str, int],
    closed: dict[str, int],
    closed_notional: dict[str, float],
) -> None:
    cfg = tx.config
    table = cfg.instruments
    deficit_total = -tx.balance(account, asset)
    markets = [i for i in closed if cfg.settlement_asset(table.index[i]) == asset]
    market = max(markets, key=lambda i: (closed_notional[i], i)) if markets else None
    underlying = None if market is None else table.underlyings[table.underlying_index[table.index[market]]]
    paid: dict[str, int] = {}
    for stage in cfg.waterfall.stages:
        deficit = -tx.balance(account, asset)
        if deficit <= 0:
            break
        if stage == "fee":
            pay = min(deficit, fees.get(asset, 0), max(tx.balance(INSURANCE, asset), 0))
            tx.post(INSURANCE, account, asset, pay, "waterfall:fee")
        elif stage == "insurance":
            fraction = cfg.waterfall.insurance_cap_fraction.get(underlying or "", 1.0)
            cap = math.floor(fraction * max(tx.balance(INSURANCE, asset), 0))
            pay = min(deficit, cap)
            tx.post(INSURANCE, account, asset, pay, "waterfall:insurance")
        elif stage == "backstop":
            pay = min(deficit, max(tx.balance(BACKSTOP, asset), 0))
            tx.post(BACKSTOP, account, asset, pay, "waterfall:backstop")
        elif stage == "adl":
            if market is None:
                continue
            report = _auto_deleverage(
                tx,
                account,
                market,
                asset,
                deficit=deficit,
                deficit_total=deficit_total,
                closed=closed[market],
            )
            pay = report.covered_units
            if report.contracts:
                tx.record("adl", account, **_adl_detail(report))
        elif stage == "socialised_loss":
            pay = _socialise(tx, account, asset, deficit)
        else:  # bad_debt
            pay = deficit
            tx.post(BAD_DEBT, account, asset, pay, "waterfall:bad_debt")
        paid[stage] = pay
    tx.record("waterfall", account, asset=asset, deficit_units=deficit_total, market=market, paid_units=paid)


def _adl_detail(report: AdlReport) -> dict[str, object]:
    return {
        "policy": report.policy,
        "instrument": report.instrument,
        "asset": report.asset,
        "contracts": report.contracts,
        "notional_usd": report.notional_usd,
        "haircut_units": report.haircut_units,
        "deficit_units": report.deficit_units,
        "covered_units": report.covered_units,
        "overshoot_units": report.overshoot_units,
    }


def _auto_deleverage(
    tx: Tx, account: str, instrument: str, asset: str, *, deficit: int, deficit_total: int, closed: int
) -> AdlReport:
    """Deleverage profitable opposite positions (module `adl`); returns the report."""
    cfg = tx.config
    table = cfg.instruments
    i = table.index[instrument]
    cs = float(table.contract_size[i])
    inverse = bool(table.reciprocal_entry[i])
    mark = tx.mark(instrument)
    decimals = cfg.decimals[asset]
    liquidator = tx.positions.get((LIQUIDATOR, instrument))
    # The liquidator took the bankrupt side (opposite to `closed`); winners hold the side of `closed`.
    held = liquidator.quantity if liquidator is not None else 0
    whole = min(abs(closed), abs(held)) if held * closed < 0 else 0
    side = 1 if closed > 0 else -1
    holders = _opposite_holders(tx, account, instrument, side)
    # Elementwise float64, the same operations (and bits) as one candidate at a time.
    per_contract = cs * ((1.0 / holders.entry - 1.0 / mark) if inverse else (mark - holders.entry))
    pnl = holders.signed * per_contract
    profitable = np.flatnonzero(pnl > 0.0)
    signed, entry, pnl = holders.signed[profitable], holders.entry[profitable], pnl[profitable]
    quantity = np.abs(signed)
    empty = AdlReport(
        policy=cfg.waterfall.adl_policy,
        instrument=instrument,
        asset=asset,
        contracts=0,
        notional_usd=0.0,
        haircut_units={},
        deficit_units=deficit,
        covered_units=0,
        overshoot_units=0,
    )
    if not profitable.size or whole == 0:
        return empty
    if holders.equity is None:
        equity = tx.view(tuple(holders.names_of(profitable))).result.equity_usd
    else:
        equity = holders.equity[profitable]
    notional_usd = quantity * (cs if inverse else cs * mark) * (tx.prices[asset] if inverse else 1.0)
    leverage = np.where(equity > 0.0, notional_usd / np.where(equity > 0.0, equity, 1.0), np.inf)
    candidates = AdlCandidates(
        accounts=holders.keys[profitable],  # in id order: the policies' tie-breaks need no strings
        quantity=quantity,
        profit_fraction=pnl / (quantity * (cs / entry if inverse else cs * entry)),
        leverage=leverage,
    )
    gap = deficit_total / abs(closed)  # units per contract: mark-to-bankruptcy distance
    needed = min(whole, math.ceil(deficit / gap))
    rng = np.random.default_rng([cfg.waterfall.seed, tx.sequence])
    allocation = adl_policy(cfg.waterfall.adl_policy)(candidates, needed, whole, rng)
    picked = np.flatnonzero(allocation > 0).tolist()
    winners = holders.names_of(profitable[picked])
    missing = frozenset(who for who in winners if who not in tx.status)
    if missing and tx.traders_of is None:
        raise MissingTradersError(missing)
    if missing:
        tx.hold(missing)
    haircuts: dict[str, int] = {}
    contracts = 0
    for j, who in zip(picked, winners, strict=True):
        x, q = int(allocation[j]), int(signed[j])
        position = tx.positions.get((who, instrument))
        if position is None or position.quantity != q:
            raise StaleCounterpartiesError(f"{who}'s {instrument} position is not the state's")
        tx.trade(who, LIQUIDATOR, instrument, -int(math.copysign(x, q)), mark, "adl")
        pnl_units = units_payout(float(pnl[j]), decimals)
        cap = min(pnl_units * x // abs(q), max(tx.balance(who, asset), 0))
        haircut = min(math.ceil(x * gap), cap)  # a charge to the winner: rounds up, never past its profit
        tx.post(who, account, asset, haircut, "adl_haircut")
        haircuts[who] = haircut
        contracts += x
    taken = sum(haircuts.values())
    overshoot = max(taken - deficit, 0)
    tx.post(account, INSURANCE, asset, overshoot, "adl_overshoot")
    return AdlReport(
        policy=cfg.waterfall.adl_policy,
        instrument=instrument,
        asset=asset,
        contracts=contracts,
        notional_usd=float(contracts * (cs if inverse else cs * mark)),
        haircut_units=haircuts,
        deficit_units=deficit,
        covered_units=taken - overshoot,
        overshoot_units=overshoot,
    )


class _Holders(NamedTuple):
    """ADL's possible candidates in a market, by account id: `keys` (n,) integers in id order
    (the policies' tie-breaks compare them, not the ids' strings), signed contracts, entry prices,
    equity (USD) or None (then the state's own), and the ids of chosen rows (`names_of`)."""

    keys: npt.NDArray[np.int64]
    signed: npt.NDArray[np.int64]
    entry: npt.NDArray[np.float64]
    equity: npt.NDArray[np.float64] | None
    names_of: Callable[[npt.NDArray[np.int64]], list[str]]


def _opposite_holders(tx: Tx, account: str, instrument: str, side: int) -> _Holders:
    """The traders holding `instrument` on `side` (ADL's winners hold the side of the
    liquidation's closing trades), by account id, with their equity when given with them
    (`tx.counterparties`: numpy over the market's holders, no Python step and no copy of their
    ids per holder; the traders the transaction holds read from it, as it has moved them), else
    without (the state's own)."""
    outside = tx.counterparties.get(instrument)
    if outside is None:
        held = _held_on_side(
            tx, account, instrument, side, (who for (who, i) in tx.positions if i == instrument)
        )
        names = [who for who, _ in held]
        return _Holders(
            keys=np.arange(len(held), dtype=np.int64),
            signed=np.array([p.quantity for _, p in held], dtype=np.int64),
            entry=np.array([p.entry_price for _, p in held], dtype=np.float64),
            equity=None,
            names_of=lambda rows: [names[j] for j in rows.tolist()],
        )
    keep = outside.quantity * side > 0
    keep[rows_of(outside.accounts, sorted(tx.traders))] = False  # the transaction's own: below
    rows = np.flatnonzero(keep)
    held = _held_on_side(tx, account, instrument, side, tx.traders)
    here = [who for who, _ in held]
    # The transaction's holders go where their ids fall among the others' (keys: twice the
    # outside row, odd; twice the insertion row, even, so before that row); source: the outside
    # row, or -1 - k for the k-th of the transaction's.
    at = np.searchsorted(outside.accounts, np.array(here, dtype=np.str_)) if held else np.zeros(0, np.int64)
    into = np.searchsorted(rows, at)
    source = np.insert(rows, into, -1 - np.arange(len(held), dtype=np.int64))
    equity_here = tx.view(tuple(here)).result.equity_usd if held else np.zeros(0)

    def names_of(chosen: npt.NDArray[np.int64]) -> list[str]:
        picked = source[chosen]
        return [here[-1 - r] if r < 0 else str(outside.accounts[r]) for r in picked.tolist()]

    return _Holders(
        keys=np.insert(2 * rows + 1, into, 2 * at).astype(np.int64),
        signed=np.insert(outside.quantity[rows], into, [p.quantity for _, p in held]).astype(np.int64),
        entry=np.insert(outside.entry_price[rows], into, [p.entry_price for _, p in held]),
        equity=np.insert(outside.equity_usd[rows], into, equity_here),
        names_of=names_of,
    )


def _held_on_side(
    tx: Tx, account: str, instrument: str, side: int, traders: Iterable[str]
) -> list[tuple[str, Position]]:
    """(trader, position) of `traders` other than `account` and the system accounts holding
    `instrument` on `side` in the transaction, by id."""
    return sorted(
        (who, p)
        for who in set(traders)
        if who != account
        and not who.startswith("@")
        and (p := tx.positions.get((who, instrument))) is not None
        and p.quantity * side > 0
    )


def _socialise(tx: Tx, account: str, asset: str, deficit: int) -> int:
    """Spread `deficit` over every other trader's positive balance, pro rata (largest remainder),
    through @socialised_loss. Returns what was covered."""
    holders = [(t, tx.balance(t, asset)) for t in tx.traders if t != account and tx.balance(t, asset) > 0]
    total = sum(b for _, b in holders)
    if total == 0:
        return 0
    cover = min(deficit, total)
    shares = [cover * b // total for _, b in holders]
    remainders = sorted(range(len(holders)), key=lambda j: (-(cover * holders[j][1] % total), holders[j][0]))
    rest = cover - sum(shares)
    for j in remainders:
        if rest == 0:
            break
        if shares[j] < holders[j][1]:
            shares[j] += 1
            rest -= 1
    for (t, _), share in zip(holders, shares, strict=True):
        tx.post(t, SOCIALISED_LOSS, asset, share, "socialised_loss")
    tx.post(SOCIALISED_LOSS, account, asset, cover, "socialised_loss")
    tx.record(
        "socialised_loss",
        account,
        asset=asset,
        covered_units=cover,
        shares=dict(zip([t for t, _ in holders], shares, strict=True)),
    )
    return cover
