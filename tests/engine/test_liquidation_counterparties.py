"""A liquidation reads other traders only when its loss waterfall reaches a stage that needs them
(ADL, socialised loss): decided on the account alone otherwise, with the same postings, positions
and records for the account as the decision over every holder of what it holds."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from crossmargin.adapters.clock import SystemClock
from crossmargin.core.ledger import events as ledger_events
from crossmargin.core.ledger.apply import apply
from crossmargin.core.ledger.counterparties import Counterparties, MissingTradersError
from crossmargin.core.ledger.postings import EXTERNAL, INSURANCE
from crossmargin.core.ledger.state import AccountStatus, LedgerConfig, frozen_prices, risk_view
from crossmargin.engine.memory import MemoryEventStore, SteppingClock
from crossmargin.engine.venue import Deposit, Fill, OpenAccount, UpdatePrices, Venue, VenueSettings, decide
from crossmargin.engine.venue.adl_candidates import AdlCandidates
from crossmargin.engine.venue.decide import _effects_of, _sub, liquidation_effects
from crossmargin.engine.venue.state import VenueState
from crossmargin.errors import InputError
from tests.adapters.sql.support import desk_genesis

FloatArray = npt.NDArray[np.float64]

ACCOUNT = "directional"  # ETH and SOL perpetuals; near-liquidation also holds the SOL one


def _crashed(insurance_units: int) -> tuple[VenueState, LedgerConfig]:
    """The desk with every underlying at half its price (no tick: the holders' statuses are as
    they were), `ACCOUNT` in liquidation, the insurance fund holding `insurance_units` USDC."""
    with Venue.open(
        MemoryEventStore(), desk_genesis(), clock=SystemClock(), settings=VenueSettings()
    ) as venue:
        state, config = VenueState.from_dict(venue._state.to_dict()), venue.config
    state.prices = {k: p * 0.5 if k not in ("USDC", "USDT") else p for k, p in state.prices.items()}
    state.marks = {k: p * 0.5 for k, p in state.marks.items()}
    state.status[ACCOUNT] = AccountStatus.LIQUIDATION
    state.balances[(INSURANCE, "USDC")] = insurance_units
    state.balances[(EXTERNAL, "USDC")] = state.balances.get((EXTERNAL, "USDC"), 0) - insurance_units
    return state, config


def _over_every_holder(state: VenueState, config: LedgerConfig, account: str = ACCOUNT) -> dict[str, Any]:
    """The decision over the account and every holder of what it holds (the path before)."""
    traders = {account} | state.holders_of(state.holdings[account])
    sub = _sub(state, config, traders)
    applied = apply(sub, ledger_events.Liquidate(account=account, as_of_ns=state.time_ns + 1), config)
    return _effects_of(sub, applied, traders)


def test_a_liquidation_the_insurance_fund_absorbs_is_decided_on_the_account_alone() -> None:
    state, config = _crashed(insurance_units=10**13)  # 10M USDC
    assert state.holders_of(state.holdings[ACCOUNT]) - {ACCOUNT}  # it has counterparties
    alone = liquidation_effects(state, config, ACCOUNT, state.time_ns + 1)
    every = _over_every_holder(state, config)
    waterfall = [r for r in alone["records"] if r[0] == "waterfall"]
    assert waterfall and all(set(r[2]["paid_units"]) <= {"fee", "insurance"} for r in waterfall)
    assert alone["postings"] == every["postings"]
    assert alone["positions"] == every["positions"]
    assert alone["status"] == [s for s in every["status"] if s[0] == ACCOUNT]
    assert alone["records"] == [r for r in every["records"] if r[1] == ACCOUNT]
    # What the whole-holder decision adds: other holders' status refreshes (their statuses are
    # the monitor's; here stale on purpose, since no tick ran), nothing else.
    assert any(s[0] != ACCOUNT for s in every["status"])
    assert {r[0] for r in every["records"] if r[1] != ACCOUNT} <= {"status"}


@pytest.mark.parametrize("insurance_units", [0, 1_000_000])  # empty; 1 USDC: a deficit remains
def test_a_liquidation_whose_waterfall_reaches_adl_is_decided_over_every_holder(insurance_units: int) -> None:
    state, config = _crashed(insurance_units)
    alone = liquidation_effects(state, config, ACCOUNT, state.time_ns + 1)
    assert any("adl" in r[2]["paid_units"] for r in alone["records"] if r[0] == "waterfall")
    assert alone == {**_over_every_holder(state, config), "time_ns": state.time_ns + 1}


def _trade_pairs(
    venue: Venue,
    pairs: int,
    *,
    usdc: Callable[[int], int],
    contracts: Callable[[int], int],
    price: Callable[[int], float],
) -> list[str]:
    """`pairs` pairs of new traders long-k / short-k, each funded with usdc(k) USDC, the long
    buying contracts(k) BTC perpetual contracts from the short at price(k); returns the longs."""
    longs = []
    for k in range(pairs):
        long, short = f"long-{k:02d}", f"short-{k:02d}"
        for name in (long, short):
            venue.execute(OpenAccount(idempotency_key=f"open-{name}", account=name))
            venue.execute(
                Deposit(
                    idempotency_key=f"dep-{name}", account=name, asset="USDC", amount_units=usdc(k) * 10**6
                )
            )
        venue.execute(
            Fill(
                idempotency_key=f"fill-{k}",
                taker=long,
                maker=short,
                instrument="BTC-USDC-PERP",
                quantity=contracts(k),
                price=price(k),
            )
        )
        longs.append(long)
    return longs


def _grown_and_crashed(pairs: int) -> tuple[VenueState, LedgerConfig, list[str]]:
    """`pairs` pairs of new traders, each pair one BTC perpetual trade (the taker long 1-3
    contracts, thinly funded), then BTC at half its price with an empty insurance fund: the
    longs lose, the shorts are the ADL candidates; the longs are returned."""
    with Venue.open(
        MemoryEventStore(), desk_genesis(), clock=SystemClock(), settings=VenueSettings()
    ) as venue:
        price = venue.prices()["BTC"]
        longs = _trade_pairs(
            venue,
            pairs,
            usdc=lambda k: 25_000 + 7_919 * k,
            contracts=lambda k: 1 + k % 3,
            price=lambda k: price,
        )
        state, config = VenueState.from_dict(venue._state.to_dict()), venue.config
    state.prices = frozen_prices({**state.prices, "BTC": state.prices["BTC"] * 0.5})  # a new view
    state.marks = frozen_prices({k: p * 0.5 if k.startswith("BTC") else p for k, p in state.marks.items()})
    state.balances.pop((INSURANCE, "USDC"), None)
    return state, config, longs


def test_adl_is_decided_over_the_opposite_holders_of_its_market_with_the_whole_holder_effects() -> None:
    """Step 2 of `liquidation_effects`: the sub-state holds the account and the holders of the
    ADL market on the other side (not every holder of what it holds): the same postings,
    positions and records as the decision over every holder, but for the statuses of traders
    the liquidation did not touch, which that decision refreshed by happenstance."""
    state, config, longs = _grown_and_crashed(pairs=12)
    deleveraged = refreshed_elsewhere = 0
    for long in longs:
        crashed = VenueState.from_dict(state.to_dict())
        crashed.status[long] = AccountStatus.LIQUIDATION
        fewer = liquidation_effects(crashed, config, long, crashed.time_ns + 1)
        every = _over_every_holder(crashed, config, long)
        assert fewer["postings"] == every["postings"]
        assert fewer["positions"] == every["positions"]
        moved = {a for p in every["postings"] for a in p[:2]} | {p[0] for p in every["positions"]}
        extra = [s for s in every["status"] if s not in fewer["status"]]
        assert all(s[0] not in moved for s in extra)  # only untouched traders' statuses differ
        assert fewer["status"] == [s for s in every["status"] if s not in extra]
        skipped = {s[0] for s in extra}
        assert fewer["records"] == [r for r in every["records"] if not (r[0] == "status" and r[1] in skipped)]
        refreshed_elsewhere += len(extra)
        deleveraged += sum(r[2]["contracts"] > 0 for r in fewer["records"] if r[0] == "adl")
    assert deleveraged >= 3  # the comparison covered liquidations that took from winners
    assert refreshed_elsewhere > 0  # and decisions over fewer traders than every holder


def _ledger_equity(state: VenueState, config: LedgerConfig) -> Callable[[Sequence[str]], FloatArray]:
    """Every trader's equity as the ledger's own risk view gives it on the whole state."""
    sub = _sub(state, config, state.traders)
    view = risk_view(sub, config)
    row = {a: r for r, a in enumerate(view.traders)}
    return lambda names: view.result.equity_usd[[row[a] for a in names]]


@pytest.mark.parametrize("policy", ["queue", "random_start", "pro_rata", "risk_aware"])
def test_adl_with_the_candidates_given_holds_only_the_winners_with_the_same_effects(
    monkeypatch: pytest.MonkeyPatch, policy: str
) -> None:
    """Step 2 with `equity_of` (the venue's whole-book margin): the ledger ranks the market's
    opposite holders from arrays and the sub-state holds the account and the winners ADL picks;
    postings, positions and every record but the statuses of unpicked candidates (refreshed by
    the decision that held them) equal the decision over all opposite holders."""
    state, config, longs = _grown_and_crashed(pairs=12)
    config = dataclasses.replace(config, waterfall=dataclasses.replace(config.waterfall, adl_policy=policy))
    deleveraged = fewer_traders = 0
    held_by: list[int] = []  # traders in the state of each ledger decision, last one last

    def counted(sub: Any, *args: Any, **kwargs: Any) -> Any:
        held_by.append(len(sub.traders))
        return apply(sub, *args, **kwargs)

    monkeypatch.setattr(decide, "apply", counted)
    for long in longs:
        crashed = VenueState.from_dict(state.to_dict())
        crashed.status[long] = AccountStatus.LIQUIDATION
        now = crashed.time_ns + 1
        candidates = AdlCandidates(crashed, _ledger_equity(crashed, config))
        given = liquidation_effects(crashed, config, long, now, candidates_of=candidates)
        given_traders = held_by[-1]
        held = liquidation_effects(crashed, config, long, now)
        fewer_traders += given_traders < held_by[-1]
        assert given["postings"] == held["postings"]
        assert given["positions"] == held["positions"]
        moved = {a for p in held["postings"] for a in p[:2]} | {p[0] for p in held["positions"]}
        extra = [s for s in held["status"] if s not in given["status"]]
        assert all(s[0] not in moved for s in extra)
        assert given["status"] == [s for s in held["status"] if s not in extra]
        skipped = {s[0] for s in extra}
        assert given["records"] == [r for r in held["records"] if not (r[0] == "status" and r[1] in skipped)]
        deleveraged += sum(r[2]["contracts"] > 0 for r in given["records"] if r[0] == "adl")
    assert deleveraged >= 3
    assert fewer_traders >= 3  # decisions over the winners, not every candidate


def test_the_ledger_names_the_winners_a_decision_must_hold() -> None:
    """Given the candidates but holding only the liquidated account, the ledger refuses to go on
    and names the winners (a subset of the candidates); with them added it decides."""
    state, config, longs = _grown_and_crashed(pairs=12)
    state.status[longs[0]] = AccountStatus.LIQUIDATION
    event = ledger_events.Liquidate(account=longs[0], as_of_ns=state.time_ns + 1)
    shorts = tuple(sorted(a for a in state.holders_of(["BTC-USDC-PERP"]) if a.startswith("short-")))
    positions = [state.positions[(a, "BTC-USDC-PERP")] for a in shorts]
    given = Counterparties(
        instrument="BTC-USDC-PERP",
        accounts=np.array(shorts),
        quantity=np.array([p.quantity for p in positions], dtype=np.int64),
        entry_price=np.array([p.entry_price for p in positions]),
        equity_usd=_ledger_equity(state, config)(shorts),
    )
    with pytest.raises(MissingTradersError) as missing:
        apply(_sub(state, config, {longs[0]}), event, config, counterparties={"BTC-USDC-PERP": given})
    winners = missing.value.traders
    assert winners and winners <= set(shorts)
    sub = _sub(state, config, {longs[0], *winners})
    applied = apply(sub, event, config, counterparties={"BTC-USDC-PERP": given})
    adl = [r for r in applied.records if r.kind == "adl"]
    assert adl and set(adl[0].detail["haircut_units"]) == winners


@pytest.mark.parametrize(
    ("accounts", "equity", "field"),
    [(["b", "a"], 2, "accounts"), (["a", "b"], 1, "equity_usd")],  # unsorted; ragged
)
def test_counterparties_refuse_unsorted_accounts_and_ragged_arrays(
    accounts: list[str], equity: int, field: str
) -> None:
    with pytest.raises(InputError, match=rf"counterparties\.{field}"):
        Counterparties(
            instrument="X",
            accounts=np.array(accounts),
            quantity=np.ones(2, np.int64),
            entry_price=np.ones(2),
            equity_usd=np.ones(equity),
        )


def test_the_venue_monitor_equity_has_the_bits_of_the_ledger_view() -> None:
    """ADL ranks on the monitor's equity (`Venue._equity_of`); the decision equals the ledger's
    only if the bits do: after fills and a 30 % BTC drop, for every trader."""
    with Venue.open(
        MemoryEventStore(), desk_genesis(), clock=SystemClock(), settings=VenueSettings()
    ) as venue:
        price = venue.prices()["BTC"]
        _trade_pairs(
            venue,
            6,
            usdc=lambda k: 20_000 + 3_001 * k,
            contracts=lambda k: 1 + k % 2,
            price=lambda k: price * (1 + k / 1000),
        )
        venue.execute(UpdatePrices(idempotency_key="drop", index_prices={"BTC": price * 0.7}))
        with venue._lock:
            traders = sorted(venue._state.traders)
            monitor_equity = venue._equity_of(traders)
            ledger_equity = _ledger_equity(venue._state, venue.config)(traders)
    assert len(traders) > 12
    assert monitor_equity.tobytes() == ledger_equity.tobytes()


def test_adl_candidates_kept_across_a_round_equal_ones_gathered_afresh() -> None:
    """A round of liquidations on one fold: the candidates kept current by `moved` (the accounts
    each liquidation's effects name) equal, array for array, the ones gathered from the fold as
    it is after each."""
    state, config, longs = _grown_and_crashed(pairs=12)

    def equity(names: Sequence[str]) -> FloatArray:
        return _ledger_equity(state, config)(names)

    kept = AdlCandidates(state, equity)
    adl = left = 0
    for n, long in enumerate(longs):
        state.status[long] = AccountStatus.LIQUIDATION
        effects = liquidation_effects(state, config, long, state.time_ns + 1, candidates_of=kept)
        state.apply_effects(
            effects, sequence=state.sequence + 1, record_hash=f"{n:064x}", as_of_ns=state.time_ns + 1
        )
        kept.moved({a for p in effects["postings"] for a in p[:2]} | {p[0] for p in effects["positions"]})
        adl += sum(r[2]["contracts"] > 0 for r in effects["records"] if r[0] == "adl")
        for side in (-1, 1):
            ours, fresh = kept("BTC-USDC-PERP", side), AdlCandidates(state, equity)("BTC-USDC-PERP", side)
            holding = ours.quantity != 0  # who left the side keeps a row with zero contracts
            assert ours.accounts[holding].tolist() == fresh.accounts.tolist()
            left += int((~holding).sum())
            for name in ("quantity", "entry_price", "equity_usd"):
                assert getattr(ours, name)[holding].tobytes() == getattr(fresh, name).tobytes(), name
    assert adl >= 3  # the round moved winners' positions and balances
    assert left > 0  # and closed some out of the side, whose rows stayed (ids not copied)


def _crash_log(from_monitor: bool) -> list[tuple[str, bytes]]:
    """12 pairs around one BTC perpetual, an empty insurance fund, BTC at half its price: every
    record from the crash on (the tick and the liquidations it causes), kind and payload."""
    store = MemoryEventStore()
    settings = VenueSettings(adl_candidates_from_monitor=from_monitor)
    clock = SteppingClock(start_ns=1_767_225_600_000_000_000, step_ns=1_000_000)
    with Venue.open(store, desk_genesis(), clock=clock, settings=settings) as venue:
        price = venue.prices()["BTC"]
        _trade_pairs(
            venue, 12, usdc=lambda k: 25_000 + 7_919 * k, contracts=lambda k: 1 + k % 3, price=lambda k: price
        )
        crash = venue.execute(UpdatePrices(idempotency_key="crash", index_prices={"BTC": price * 0.5}))
        return [(r.kind, r.payload) for r in venue.records(crash.sequence, 10_000)]


def test_a_venue_crash_logs_the_same_records_with_adl_candidates_from_the_monitor() -> None:
    """End to end: the crash tick's liquidations through ADL, decided with the candidates read
    from the monitor (the default) and held in every decision (the reference path): the same log,
    byte for byte."""
    given, held = _crash_log(True), _crash_log(False)
    adl = [p for kind, p in given if kind == "liquidation" and b'"adl"' in p]
    assert len(adl) >= 3
    assert given == held


def test_the_equity_of_an_account_the_monitor_lacks_is_the_ledger_views() -> None:
    """`Venue._equity_of` reads the monitor; an account it does not hold (not expected: every
    trader is in it) is margined by the ledger's own view, with the same bits."""
    with Venue.open(
        MemoryEventStore(), desk_genesis(), clock=SystemClock(), settings=VenueSettings()
    ) as venue:
        price = venue.prices()["BTC"]
        _trade_pairs(venue, 2, usdc=lambda k: 30_000, contracts=lambda k: 1 + k, price=lambda k: price)
        with venue._lock:
            names = ["long-00", "short-01", "long-01"]
            monitor_equity = venue._equity_of(names).copy()
            del venue._ensure_monitor().row_of["short-01"]
            mixed = venue._equity_of(names)
    assert mixed.tobytes() == monitor_equity.tobytes()


def test_candidates_that_are_not_the_states_fall_back_to_the_reference_decision() -> None:
    """Given candidate arrays whose positions are not the state's (every quantity doubled), the
    ledger refuses them (`StaleCounterpartiesError`) and the decision is the reference one."""
    state, config, longs = _grown_and_crashed(pairs=12)
    checked = 0
    for long in longs:
        crashed = VenueState.from_dict(state.to_dict())
        crashed.status[long] = AccountStatus.LIQUIDATION
        kept = AdlCandidates(crashed, _ledger_equity(crashed, config))

        def stale(market: str, side: int, kept: AdlCandidates = kept) -> Counterparties:
            return dataclasses.replace(kept(market, side), quantity=kept(market, side).quantity * 2)

        now = crashed.time_ns + 1
        given = liquidation_effects(crashed, config, long, now, candidates_of=stale)
        if not any(r[0] == "adl" and r[2]["contracts"] > 0 for r in given["records"]):
            continue
        assert given == liquidation_effects(crashed, config, long, now)
        checked += 1
    assert checked >= 3


def _two_market_pairs(venue: Venue, pairs: int) -> list[str]:
    """`pairs` pairs long-k / short-k funded in USDC alone, each pair trading the linear BTC
    perpetual (USDC-settled) and the inverse future (BTC-settled): after a crash a long owes in both
    assets, so its liquidation runs two waterfalls, and each short is a candidate in both."""
    price = venue.prices()["BTC"]
    longs = _trade_pairs(
        venue, pairs, usdc=lambda k: 40_000 + 7_919 * k, contracts=lambda k: 1 + k % 3, price=lambda k: price
    )
    for k, long in enumerate(longs):
        venue.execute(
            Fill(
                idempotency_key=f"inverse-{k}",
                taker=long,
                maker=f"short-{k:02d}",
                instrument="BTC-27MAR26",
                quantity=1_000 * (1 + k % 3),
                price=price,
            )
        )
    return longs


def _two_markets_crashed(pairs: int) -> tuple[VenueState, LedgerConfig, list[str]]:
    with Venue.open(
        MemoryEventStore(), desk_genesis(), clock=SystemClock(), settings=VenueSettings()
    ) as venue:
        longs = _two_market_pairs(venue, pairs)
        state, config = VenueState.from_dict(venue._state.to_dict()), venue.config
    state.prices = frozen_prices({**state.prices, "BTC": state.prices["BTC"] * 0.5})  # a new view
    state.marks = frozen_prices({k: p * 0.5 if k.startswith("BTC") else p for k, p in state.marks.items()})
    for asset in ("USDC", "BTC"):
        state.balances.pop((INSURANCE, asset), None)
    return state, config, longs


# The queue: its BTC leg here ends without socialised loss (under the other policies a unit of
# rounding per winner is left to that stage, which decides over every holder in both paths).
@pytest.mark.parametrize("policy", ["queue"])
def test_adl_in_two_markets_from_arrays_equals_the_decision_holding_every_candidate(
    monkeypatch: pytest.MonkeyPatch, policy: str
) -> None:
    """A liquidation whose waterfalls reach ADL in the linear BTC perpetual and the inverse BTC future: the
    second market's arrays hold the first's winners as they were, the ledger reads them from its
    own state. One ledger pass (unless socialised loss follows, which decides over every holder
    again); the same postings, positions and records (but the statuses of unpicked candidates)
    as the decision holding every opposite holder of both markets."""
    state, config, longs = _two_markets_crashed(pairs=8)
    config = dataclasses.replace(config, waterfall=dataclasses.replace(config.waterfall, adl_policy=policy))
    passes: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        passes.append(1)
        return apply(*args, **kwargs)

    monkeypatch.setattr(decide, "apply", counted)
    two = again = 0
    for long in longs:
        crashed = VenueState.from_dict(state.to_dict())
        crashed.status[long] = AccountStatus.LIQUIDATION
        now = crashed.time_ns + 1
        passes.clear()
        given = liquidation_effects(
            crashed, config, long, now, candidates_of=AdlCandidates(crashed, _ledger_equity(crashed, config))
        )
        socialised = any(
            "socialised_loss" in r[2]["paid_units"] for r in given["records"] if r[0] == "waterfall"
        )
        assert len(passes) == 1 or socialised
        held = liquidation_effects(crashed, config, long, now)
        adl = [r for r in given["records"] if r[0] == "adl" and r[2]["contracts"] > 0]
        if {r[2]["instrument"] for r in adl} != {"BTC-USDC-PERP", "BTC-27MAR26"} or socialised:
            continue
        two += 1
        # A winner of the first market was a candidate in the second, as the decision moved it.
        winners = set(adl[0][2]["haircut_units"])
        again += any(crashed.positions[(w, "BTC-27MAR26")].quantity < 0 for w in winners)
        assert given["postings"] == held["postings"]
        assert given["positions"] == held["positions"]
        extra = [s for s in held["status"] if s not in given["status"]]
        assert given["status"] == [s for s in held["status"] if s not in extra]
        skipped = {s[0] for s in extra}
        assert given["records"] == [r for r in held["records"] if not (r[0] == "status" and r[1] in skipped)]
    assert two >= 1
    assert again >= 1


def test_a_venue_crash_through_adl_in_two_markets_logs_the_same_records_either_way() -> None:
    """End to end over the linear BTC perpetual and the inverse future: the crash tick's liquidations decided with the
    candidates from the monitor and held in every decision log the same bytes."""

    def crash_log(from_monitor: bool) -> list[tuple[str, bytes]]:
        clock = SteppingClock(start_ns=1_767_225_600_000_000_000, step_ns=1_000_000)
        settings = VenueSettings(adl_candidates_from_monitor=from_monitor)
        with Venue.open(MemoryEventStore(), desk_genesis(), clock=clock, settings=settings) as venue:
            _two_market_pairs(venue, 8)
            price = venue.prices()["BTC"]
            crash = venue.execute(UpdatePrices(idempotency_key="crash", index_prices={"BTC": price * 0.5}))
            return [(r.kind, r.payload) for r in venue.records(crash.sequence, 10_000)]

    given, held = crash_log(True), crash_log(False)
    adl = [p for kind, p in given if kind == "liquidation" and b'"BTC-27MAR26"' in p and b'"adl"' in p]
    assert len(adl) >= 3
    assert given == held


def test_winners_are_taken_into_the_decision_without_traders_of_named_as_missing() -> None:
    """The ledger given candidates and `traders_of` takes its winners in (the new state holds
    them, in id order); without `traders_of` it names them (MissingTradersError)."""
    state, config, longs = _grown_and_crashed(pairs=12)
    for long in longs:
        crashed = VenueState.from_dict(state.to_dict())
        crashed.status[long] = AccountStatus.LIQUIDATION
        event = ledger_events.Liquidate(account=long, as_of_ns=crashed.time_ns + 1)
        given = {
            "BTC-USDC-PERP": AdlCandidates(crashed, _ledger_equity(crashed, config))("BTC-USDC-PERP", -1)
        }
        sub = _sub(crashed, config, {long})

        def traders_of(more: frozenset[str], crashed: VenueState = crashed) -> Any:
            return _sub(crashed, config, more)

        applied = apply(sub, event, config, counterparties=given, traders_of=traders_of)
        winners = {w for r in applied.records if r.kind == "adl" for w in r.detail["haircut_units"]}
        if not winners:
            continue
        assert applied.state.traders == tuple(sorted({long, *winners}))
        with pytest.raises(MissingTradersError) as missing:
            apply(sub, event, config, counterparties=given)
        assert missing.value.traders == winners
        return
    raise AssertionError("no liquidation reached ADL")
