"""Manipulation scenarios: each asserts the accepted price stays within a stated tolerance of the
honest price (Mango Markets, October 2022: one manipulated price, about 100 M USD lost).

One asset, five sources quoting every second around an honest random walk (seeded); the
attack is applied to some sources for some ticks; the oracle runs with the default parameters
unless a scenario says otherwise. The real-data scenario (USDC depeg, March 2023) is in
tests/adapters/feeds/test_oracle_depeg.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pytest

from crossmargin.core.oracle import (
    NS_PER_SECOND,
    Action,
    OracleParams,
    OraclePolicy,
    OracleState,
    OracleUpdate,
    ParamTable,
    PriceStatus,
    QuoteMatrix,
    liquidation_pauses,
    require_valid,
    update,
    valid_for,
)
from crossmargin.errors import StaleOracleError, UntrustedOracleError

SEED = 20221011  # the Mango exploit date
N_SOURCES = 5
N_TICKS = 60
HONEST_START_USD = 100.0
HONEST_STEP_SIGMA = 0.0005  # 5 bps per second
SOURCE_NOISE_SIGMA = 0.0002  # 2 bps between venues
# The accepted price is a median of honest quotes: within a few source-noise sigmas of honest.
HONEST_TOLERANCE = 0.001  # 10 bps

Attack = Callable[[int, np.ndarray], tuple[np.ndarray, np.ndarray]]


def honest_path(seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """(honest price per tick (T,), honest source quotes (T, N_SOURCES))."""
    rng = np.random.default_rng(seed)
    honest = HONEST_START_USD * np.exp(np.cumsum(rng.normal(0.0, HONEST_STEP_SIGMA, N_TICKS)))
    quotes = honest[:, None] * (1.0 + rng.normal(0.0, SOURCE_NOISE_SIGMA, (N_TICKS, N_SOURCES)))
    return honest, quotes


def run(
    attack: Callable[[int, np.ndarray, np.ndarray], None],
    *,
    params: OracleParams | None = None,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, list[OracleUpdate]]:
    """Run the oracle over the ticks; `attack(tick, prices (S,), times (S,))` edits a tick's quotes
    in place. Returns the honest path and every update."""
    honest, quotes = honest_path()
    table = ParamTable.uniform(params or OracleParams(), 1)
    state = OracleState.initial(1)
    updates = []
    for tick in range(N_TICKS):
        now_ns = (tick + 1) * NS_PER_SECOND
        prices = quotes[tick].copy()
        times = np.full(N_SOURCES, now_ns, dtype=np.int64)
        attack(tick, prices, times)
        matrix = QuoteMatrix.build(
            prices[None, :], times[None, :], None if weights is None else weights[None, :]
        )
        state, result = update(state, matrix, now_ns=now_ns, params=table)
        updates.append(result)
    return honest, updates


def assert_tracks_honest(honest: np.ndarray, updates: list[OracleUpdate], ticks: range) -> None:
    for tick in ticks:
        price = updates[tick].price_usd[0]
        assert abs(price / honest[tick] - 1.0) <= HONEST_TOLERANCE, (tick, price, honest[tick])


def test_oracle_one_of_five_spikes_tenfold() -> None:
    def spike(tick: int, prices: np.ndarray, times: np.ndarray) -> None:
        if 20 <= tick < 30:
            prices[2] *= 10.0

    honest, updates = run(spike)
    assert_tracks_honest(honest, updates, range(N_TICKS))
    for tick in range(20, 30):
        assert updates[tick].status[0] == PriceStatus.VALID
        assert not updates[tick].accepted[0, 2]  # the spiking source is rejected by MAD
        assert updates[tick].band_high_usd[0] < honest[tick] * (1 + HONEST_TOLERANCE)


def test_oracle_two_of_five_collude_thirty_percent() -> None:
    def collude(tick: int, prices: np.ndarray, times: np.ndarray) -> None:
        if 15 <= tick < 45:
            prices[[0, 4]] *= 1.30

    honest, updates = run(collude)
    assert_tracks_honest(honest, updates, range(N_TICKS))
    for tick in range(15, 45):
        assert updates[tick].status[0] == PriceStatus.VALID
        assert updates[tick].n_sources[0] == 3
        assert updates[tick].uncertainty_addon[0] < HONEST_TOLERANCE  # the band holds honest only


def test_oracle_thin_source_moves_fifty_percent_for_one_tick() -> None:
    weights = np.array([10.0, 10.0, 10.0, 10.0, 0.1])  # volume weights: source 4 is thin

    def thin(tick: int, prices: np.ndarray, times: np.ndarray) -> None:
        if tick == 30:
            prices[4] *= 1.5

    honest, updates = run(thin, params=OracleParams(use_weights=True), weights=weights)
    assert_tracks_honest(honest, updates, range(N_TICKS))
    assert not updates[30].accepted[0, 4]
    assert updates[30].status[0] == PriceStatus.VALID


def test_oracle_thin_source_alone_cannot_move_weighted_median_even_if_accepted() -> None:
    # A MAD threshold so loose that nothing is rejected: the weighted median still ignores the
    # thin source (its weight is far below half the total).
    weights = np.array([10.0, 10.0, 10.0, 10.0, 0.1])

    def thin(tick: int, prices: np.ndarray, times: np.ndarray) -> None:
        if tick == 30:
            prices[4] *= 1.5

    honest, updates = run(thin, params=OracleParams(use_weights=True, mad_threshold=1e6), weights=weights)
    assert updates[30].accepted[0, 4]
    assert_tracks_honest(honest, updates, range(N_TICKS))


def test_oracle_majority_collusion_is_held_by_the_circuit_breaker() -> None:
    # Three of five (a majority) push +30 % for two ticks: the median moves, but the move exceeds
    # the 5 % limit, fewer than confirm_sources (5) agree and two ticks < confirm_updates (3).
    def majority(tick: int, prices: np.ndarray, times: np.ndarray) -> None:
        if 30 <= tick < 32:
            prices[[0, 1, 2]] *= 1.30

    honest, updates = run(majority)
    for tick in (30, 31):
        assert updates[tick].status[0] == PriceStatus.HELD
        assert not valid_for(Action.LIQUIDATE, updates[tick], OraclePolicy())[0]
        assert not valid_for(Action.OPEN, updates[tick], OraclePolicy())[0]
        # The reported price is the last accepted one (tick 29): within a few honest steps.
        assert updates[tick].price_usd[0] == updates[29].price_usd[0]
        assert abs(updates[tick].price_usd[0] / honest[tick] - 1.0) <= 2 * HONEST_TOLERANCE
    assert_tracks_honest(honest, updates, range(32, N_TICKS))
    with pytest.raises(UntrustedOracleError, match="held"):
        require_valid(Action.WITHDRAW, updates[30], OraclePolicy(), asset_index=0, asset_name="X")


def test_oracle_sustained_majority_move_is_followed_after_confirmation() -> None:
    # The same +30 % held for long enough is a real move: accepted on the third update.
    def move(tick: int, prices: np.ndarray, times: np.ndarray) -> None:
        if tick >= 30:
            prices[[0, 1, 2]] *= 1.30

    honest, updates = run(move)
    assert [updates[t].status[0] for t in (30, 31, 32)] == [
        PriceStatus.HELD,
        PriceStatus.HELD,
        PriceStatus.VALID,
    ]
    assert abs(updates[32].price_usd[0] / (1.3 * honest[32]) - 1.0) <= HONEST_TOLERANCE


def test_oracle_all_sources_stale_flags_price_and_pauses_liquidations() -> None:
    last_live_tick = 20

    def silence(tick: int, prices: np.ndarray, times: np.ndarray) -> None:
        if tick > last_live_tick:  # every source stops quoting; its last quote ages
            times[:] = (last_live_tick + 1) * NS_PER_SECOND
            prices[:] = np.nan

    params = OracleParams(max_age_ns=5 * NS_PER_SECOND)
    honest, updates = run(silence, params=params)
    policy = OraclePolicy()
    for tick in range(last_live_tick + 1, N_TICKS):
        result = updates[tick]
        assert result.status[0] == PriceStatus.STALE
        # The last good price is kept with its age.
        assert result.price_usd[0] == updates[last_live_tick].price_usd[0]
        assert result.age_ns[0] == (tick - last_live_tick) * NS_PER_SECOND
        assert abs(result.price_usd[0] / honest[last_live_tick] - 1.0) <= HONEST_TOLERANCE
        assert not valid_for(Action.LIQUIDATE, result, policy)[0]
        (event,) = liquidation_pauses(result, policy, asset_names=("BTC",))
        assert (event.asset, event.reason, event.status) == ("BTC", "stale", "stale")
        assert valid_for(Action.MARGIN, result, policy)[0] == (result.age_ns[0] <= policy.margin.max_age_ns)
    # The uncertainty add-on grows with the age once past the grace period.
    addons = [updates[t].uncertainty_addon[0] for t in range(last_live_tick, N_TICKS)]
    assert addons[-1] > addons[0]
    assert all(b >= a for a, b in itertools.pairwise(addons))
    with pytest.raises(StaleOracleError) as caught:
        require_valid(Action.OPEN, updates[-1], policy, asset_index=0, asset_name="BTC")
    assert caught.value.asset == "BTC"
    assert caught.value.age_ms == (N_TICKS - 1 - last_live_tick) * 1000.0
    assert caught.value.limit_ms == 5_000.0


def test_oracle_sources_dropping_below_minimum_is_stale_even_if_some_are_fresh() -> None:
    def two_left(tick: int, prices: np.ndarray, times: np.ndarray) -> None:
        if tick >= 40:
            prices[[0, 1, 2]] = np.nan

    _honest, updates = run(two_left)
    assert all(updates[t].status[0] == PriceStatus.STALE for t in range(40, N_TICKS))
    assert updates[-1].price_usd[0] == updates[39].price_usd[0]
