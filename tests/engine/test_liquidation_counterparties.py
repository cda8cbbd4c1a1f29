"""A liquidation reads other traders only when its loss waterfall reaches a stage that needs them
(ADL, socialised loss): decided on the account alone otherwise, with the same postings, positions
and records for the account as the decision over every holder of what it holds."""

from __future__ import annotations

from typing import Any

import pytest

from crossmargin.adapters.clock import SystemClock
from crossmargin.core.ledger import events as ledger_events
from crossmargin.core.ledger.apply import apply
from crossmargin.core.ledger.postings import EXTERNAL, INSURANCE
from crossmargin.core.ledger.state import AccountStatus, LedgerConfig
from crossmargin.engine.decide import _effects_of, _sub, liquidation_effects
from crossmargin.engine.memory import MemoryEventStore
from crossmargin.engine.venue import Venue, VenueSettings
from crossmargin.engine.venue_state import VenueState
from tests.adapters.sql.support import desk_genesis

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


def _over_every_holder(state: VenueState, config: LedgerConfig) -> dict[str, Any]:
    """The decision over the account and every holder of what it holds (the path before)."""
    traders = {ACCOUNT} | state.holders_of(state.holdings[ACCOUNT])
    sub = _sub(state, config, traders)
    applied = apply(sub, ledger_events.Liquidate(account=ACCOUNT, as_of_ns=state.time_ns + 1), config)
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
