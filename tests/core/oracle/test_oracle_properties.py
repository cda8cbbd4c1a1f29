"""Hypothesis invariants of the oracle aggregation and update.

- the aggregate lies within [min, max] of the accepted sources (the band), which lie within the
  fresh ones;
- permuting sources changes nothing (price, band, counts; the accepted mask permutes along);
- with fewer than ⌈n/2⌉ corrupted sources the price stays inside the honest range;
- the vectorised update equals the scalar per-asset reference (core.oracle.reference) step by step.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import example, given
from hypothesis import strategies as st

from crossmargin.core.oracle import (
    NS_PER_SECOND,
    OracleParams,
    OracleState,
    ParamTable,
    QuoteMatrix,
    aggregate,
    update,
)
from crossmargin.core.oracle.reference import AssetState, update_scalar

# Relative slack for comparing medians computed in a different order (one rounding of a midpoint).
REL_TOLERANCE = 1e-12
NOW_NS = 100 * NS_PER_SECOND

prices_strategy = st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False)
weights_strategy = st.floats(min_value=1e-3, max_value=1e3, allow_nan=False, allow_infinity=False)


@st.composite
def quote_rows(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, OracleParams]:
    n_assets = draw(st.integers(1, 6))
    n_sources = draw(st.integers(1, 9))
    prices = np.array(
        draw(st.lists(prices_strategy, min_size=n_assets * n_sources, max_size=n_assets * n_sources))
    ).reshape(n_assets, n_sources)
    # Some quotes missing, some too old.
    missing = np.array(draw(st.lists(st.booleans(), min_size=prices.size, max_size=prices.size))).reshape(
        prices.shape
    )
    prices[missing & (np.arange(prices.size).reshape(prices.shape) % 3 == 0)] = np.nan
    ages_s = np.array(draw(st.lists(st.integers(0, 20), min_size=prices.size, max_size=prices.size)))
    times = NOW_NS - ages_s.reshape(prices.shape).astype(np.int64) * NS_PER_SECOND
    weights = np.array(draw(st.lists(weights_strategy, min_size=prices.size, max_size=prices.size))).reshape(
        prices.shape
    )
    params = OracleParams(
        use_weights=draw(st.booleans()),
        mad_threshold=draw(st.floats(1.0, 10.0)),
        min_sources=draw(st.integers(1, 4)),
    )
    return prices, times, weights, params


@given(quote_rows())
def test_oracle_aggregate_lies_within_accepted_sources(
    case: tuple[np.ndarray, np.ndarray, np.ndarray, OracleParams],
) -> None:
    prices, times, weights, params = case
    table = ParamTable.uniform(params, prices.shape[0])
    agg = aggregate(QuoteMatrix.build(prices, times, weights), now_ns=NOW_NS, params=table)
    for i in range(prices.shape[0]):
        accepted = prices[i][agg.accepted[i]]
        assert agg.accepted[i].sum() == agg.n_accepted[i] <= agg.n_fresh[i]
        if agg.n_fresh[i] == 0:
            assert math.isnan(agg.price_usd[i])
            continue
        assert accepted.size >= 1
        assert accepted.min() == agg.band_low_usd[i]
        assert accepted.max() == agg.band_high_usd[i]
        assert agg.band_low_usd[i] <= agg.price_usd[i] <= agg.band_high_usd[i]


@given(quote_rows(), st.randoms(use_true_random=False))
def test_oracle_aggregate_is_permutation_invariant(
    case: tuple[np.ndarray, np.ndarray, np.ndarray, OracleParams], random: object
) -> None:
    prices, times, weights, params = case
    permutation = np.random.default_rng(random.getrandbits(32)).permutation(prices.shape[1])  # type: ignore[attr-defined]
    table = ParamTable.uniform(params, prices.shape[0])
    base = aggregate(QuoteMatrix.build(prices, times, weights), now_ns=NOW_NS, params=table)
    permuted = aggregate(
        QuoteMatrix.build(prices[:, permutation], times[:, permutation], weights[:, permutation]),
        now_ns=NOW_NS,
        params=table,
    )
    np.testing.assert_array_equal(base.price_usd, permuted.price_usd)
    np.testing.assert_array_equal(base.band_low_usd, permuted.band_low_usd)
    np.testing.assert_array_equal(base.band_high_usd, permuted.band_high_usd)
    np.testing.assert_array_equal(base.n_accepted, permuted.n_accepted)
    np.testing.assert_array_equal(base.accepted[:, permutation], permuted.accepted)


@given(
    honest=st.lists(prices_strategy, min_size=1, max_size=12),
    corrupted_values=st.lists(
        st.one_of(prices_strategy, st.sampled_from([1e-300, 1e300])), min_size=0, max_size=11
    ),
)
@example(honest=[1.0, 2.0, 1000.0], corrupted_values=[1001.0, 1002.0])  # breaks a re-median after MAD
def test_oracle_median_stays_in_honest_range_with_a_corrupted_minority(
    honest: list[float], corrupted_values: list[float]
) -> None:
    n_total = len(honest) + len(corrupted_values)
    # Keep the corrupted sources a strict minority: fewer than ⌈n/2⌉.
    limit = math.ceil(n_total / 2) - 1
    corrupted = corrupted_values[: max(0, min(len(corrupted_values), limit, len(honest) - 1))]
    prices = np.array([honest + corrupted])
    table = ParamTable.uniform(OracleParams(min_sources=1), 1)
    agg = aggregate(QuoteMatrix.build(prices, np.full(prices.shape, NOW_NS)), now_ns=NOW_NS, params=table)
    assert min(honest) <= agg.price_usd[0] <= max(honest)


@st.composite
def quote_paths(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, OracleParams]:
    """T ticks × A assets × S sources of quotes around a jumpy path, some missing."""
    n_ticks, n_assets, n_sources = draw(st.integers(1, 12)), draw(st.integers(1, 4)), draw(st.integers(1, 7))
    shape = (n_ticks, n_assets, n_sources)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    level = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.08, (n_ticks, n_assets)), axis=0))
    prices = level[:, :, None] * np.exp(rng.normal(0.0, 0.02, shape))
    prices[rng.random(shape) < 0.1] *= 10.0
    prices[rng.random(shape) < 0.15] = np.nan
    params = OracleParams(
        min_sources=draw(st.integers(1, 4)),
        confirm_updates=draw(st.integers(1, 4)),
        confirm_sources=draw(st.integers(1, 7)),
        max_move_fraction=draw(st.sampled_from([0.01, 0.05, 0.2])),
        breaker_interval_ns=NS_PER_SECOND,
        max_age_ns=2 * NS_PER_SECOND,
        smoothing_ns=3 * NS_PER_SECOND,
    )
    return prices, rng.integers(0, 3, shape).astype(np.int64), params


@given(quote_paths())
def test_oracle_update_equals_scalar_reference(case: tuple[np.ndarray, np.ndarray, OracleParams]) -> None:
    prices, delays_s, params = case
    n_ticks, n_assets, n_sources = prices.shape
    table = ParamTable.uniform(params, n_assets)
    state = OracleState.initial(n_assets)
    reference = [AssetState() for _ in range(n_assets)]
    for tick in range(n_ticks):
        now_ns = (tick + 1) * NS_PER_SECOND
        times = now_ns - delays_s[tick] * NS_PER_SECOND
        state, result = update(state, QuoteMatrix.build(prices[tick], times), now_ns=now_ns, params=table)
        for a in range(n_assets):
            reference[a] = update_scalar(
                reference[a],
                list(prices[tick, a]),
                [int(t) for t in times[a]],
                [1.0] * n_sources,
                now_ns=now_ns,
                params=params,
            )
            expected = reference[a]
            assert result.status[a] == expected.status
            np.testing.assert_allclose(result.price_usd[a], expected.price_usd, rtol=REL_TOLERANCE)
            np.testing.assert_allclose(result.smoothed_usd[a], expected.smoothed_usd, rtol=REL_TOLERANCE)
            np.testing.assert_allclose(result.band_low_usd[a], expected.band_low_usd, rtol=REL_TOLERANCE)
            assert state.pending_count[a] == expected.pending_count


def test_oracle_state_is_immutable_and_update_pure() -> None:
    table = ParamTable.uniform(OracleParams(min_sources=1), 2)
    state = OracleState.initial(2)
    quotes = QuoteMatrix.build([[1.0, 1.1], [2.0, 2.1]], [[1, 1], [1, 1]])
    first, result_a = update(state, quotes, now_ns=5, params=table)
    _second, result_b = update(state, quotes, now_ns=5, params=table)
    np.testing.assert_array_equal(result_a.price_usd, result_b.price_usd)
    assert np.isnan(state.price_usd).all()  # the input state is untouched
    assert not first.price_usd.flags.writeable
