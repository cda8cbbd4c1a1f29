"""The Dask backend equals the single process exactly (select with `pytest -k dask`): a cascade
with impact, collateral sales and ADL on a synthetic book, sharded over a real LocalCluster."""

from __future__ import annotations

import numpy as np
import pytest

from crossmargin.core.margin import CrossMargin
from crossmargin.core.stress.impact import MarketDepth, SquareRootImpact
from crossmargin.core.synthetic import SynthSpec, synth_book, synth_market
from crossmargin.engine.stress import LocalShards, Policy, hypothetical_shock, prepare_venue, run_cascade

distributed = pytest.importorskip("distributed")

IMPACT = SquareRootImpact(
    depth={
        "BTC": MarketDepth(daily_volume_usd=2e8, daily_volatility=0.03),
        "ETH": MarketDepth(daily_volume_usd=1e8, daily_volatility=0.04),
        "SOL": MarketDepth(daily_volume_usd=3e7, daily_volatility=0.05),
        "USDC": MarketDepth(daily_volume_usd=5e7, daily_volatility=0.002),
    },
    depth_multiplier=0.1,
)


def test_dask_cascade_equals_single_process_exactly() -> None:
    from crossmargin.adapters.dask import DaskShards, dask_client

    book = synth_book(SynthSpec(n_accounts=3_000, seed=7))
    venue = prepare_venue(book, synth_market(book.instruments))
    shock = hypothetical_shock(venue.book, label="oct-10", moves={"BTC": -0.12, "ETH": -0.16, "SOL": -0.31})
    policy = Policy(name="full/queue")
    single = LocalShards.of(venue, CrossMargin())
    expected = run_cascade(single, venue, [shock], policy=policy, insurance_fund_usd=2e5, impact=IMPACT)
    assert expected.active_rounds >= 2 and expected.adl_notional_usd > 0  # the test exercises ADL and rounds
    with dask_client("local", n_workers=2, processes=False) as client:
        runner = DaskShards.of(client, venue, CrossMargin(), n_shards=2)
        got = run_cascade(runner, venue, [shock], policy=policy, insurance_fund_usd=2e5, impact=IMPACT)
        finals = runner.call("final_equity_units", [()] * 2)
    assert got.summary() == expected.summary()
    assert np.array_equal(np.concatenate(finals), single.shards[0].final_equity_units())
