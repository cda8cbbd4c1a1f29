"""VaR/ES definitions and the blockwise kernel against a dense reference (float64 exact, float32
never below float64 and within its stated bound)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossmargin.core.collateral import value_collateral
from crossmargin.core.margin.var import VarMargin, VarParams, tail_measures
from crossmargin.core.pricing import entry_term, revalue
from crossmargin.core.scenarios import revalue_scenarios
from crossmargin.core.var.measures import book_tail_measures, tail_count, tail_scenarios, var_es
from crossmargin.errors import InputError
from tests.core.var.synthetic import synthetic_history, var_book

TOLERANCE_REL = 1e-9
FLOAT32_TOLERANCE_REL = 1e-3  # the stated bound: (n + 2)·2^-24 of the gross, well under 0.1 % here


def test_tail_count_is_the_ceiling_of_the_tail_fraction() -> None:
    assert tail_count(0.99, 1000) == 10
    assert tail_count(0.975, 1000) == 25
    assert tail_count(0.995, 1000) == 5
    assert tail_count(0.99, 250) == 3
    assert tail_count(0.99, 50) == 1
    with pytest.raises(InputError):
        tail_count(1.0, 100)


def test_var_and_es_of_a_known_vector() -> None:
    loss = np.arange(1.0, 101.0)  # 1..100
    assert var_es(loss, 0.95) == (96.0, 98.0)  # k = 5: 100..96
    assert var_es(loss, 0.99) == (100.0, 100.0)
    assert list(tail_scenarios(loss, 0.97)) == [99, 98, 97]


def _dense_losses(book, market, reval):  # type: ignore[no-untyped-def]
    inst = book.positions.indices
    term = entry_term(book.entry_price, book.instruments.reciprocal_entry[inst])
    positions = book.positions.to_scipy()
    weighted = positions.copy()
    weighted.data = book.positions.data * term
    collateral = value_collateral(book.balances, book.assets, market.asset_prices(book.assets)).value_usd
    pnl = positions @ reval.d_unit_value_usd + weighted @ reval.d_entry_coefficient_usd
    return -(pnl + collateral @ reval.d_asset_factor)


@pytest.mark.parametrize("confidence", [0.95, 0.975, 0.99, 0.995])
def test_kernel_equals_dense_reference_and_orders_levels(confidence: float) -> None:
    book, market = var_book()
    model = VarMargin(
        VarParams(method="historical", confidence=confidence, window_days=700), synthetic_history()
    )
    valuation = revalue(book.instruments, market)
    scenarios = model.scenarios(book, market)
    reval = revalue_scenarios(book.instruments, book.assets, market, valuation, scenarios)
    k = model.tail_counts(scenarios)
    prices = market.asset_prices(book.assets)
    tails = tail_measures(book, reval, scenarios.group, k, asset_price_usd=prices)
    loss = _dense_losses(book, market, reval)
    for a in range(book.n_accounts):
        if np.diff(book.positions.indptr)[a] == 0:
            assert tails.var_usd[a, 0] == 0.0 and tails.es_usd[a, 0] == 0.0
            continue
        var, es = var_es(loss[a], confidence)
        assert tails.var_usd[a, 0] == pytest.approx(var, rel=TOLERANCE_REL, abs=1e-6)
        assert tails.es_usd[a, 0] == pytest.approx(es, rel=TOLERANCE_REL, abs=1e-6)
        assert es >= var
    single = tail_measures(book, reval, scenarios.group, k, asset_price_usd=prices, dtype=np.float32)
    assert np.all(single.es_usd >= tails.es_usd)
    assert np.all(single.var_usd >= tails.var_usd)
    assert np.all(
        single.es_usd - tails.es_usd <= FLOAT32_TOLERANCE_REL * np.maximum(np.abs(tails.es_usd), 1.0)
    )


def test_higher_confidence_never_lowers_var_or_es() -> None:
    book, market = var_book()
    history = synthetic_history()
    results = {}
    for level in (0.95, 0.99, 0.995):
        model = VarMargin(VarParams(method="historical", confidence=level, measure="var"), history)
        _, tails = model.measures(book, market, revalue(book.instruments, market))
        results[level] = tails
    assert np.all(results[0.99].var_usd >= results[0.95].var_usd)
    assert np.all(results[0.995].var_usd >= results[0.99].var_usd)
    assert np.all(results[0.99].es_usd >= results[0.99].var_usd)


def test_kernel_handles_many_blocks_and_two_groups() -> None:
    """More scenarios than one block, split into two groups: each group's measures are its own."""
    from crossmargin.core.var import measures

    rng = np.random.default_rng(3)
    n_acc, n_inst, n_scen = 40, 5, measures.SCENARIO_BLOCK * 2 + 37
    counts = rng.integers(0, 4, n_acc)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    indices = rng.integers(0, n_inst, indptr[-1]).astype(np.int32)
    quantity = rng.normal(size=indptr[-1])
    d_unit = rng.normal(size=(n_inst, n_scen))
    d_coef = np.zeros_like(d_unit)
    collateral = rng.normal(size=(n_acc, 2))
    d_asset = rng.normal(size=(2, n_scen)) * 0.1
    split = 1500
    group = np.where(np.arange(n_scen) < split, 0, 1)
    k = np.array([tail_count(0.99, split), tail_count(0.99, n_scen - split)])
    out = measures.book_tail_measures(
        indptr=indptr, indices=indices, quantity=quantity, entry_term=np.ones_like(quantity),
        d_unit=d_unit, d_coef=d_coef, has_coefficient=np.zeros(n_inst, dtype=bool),
        collateral_usd=collateral, d_asset=d_asset, group=group, tail_counts=k,
    )  # fmt: skip
    for a in range(n_acc):
        pnl = collateral[a] @ d_asset
        for p in range(indptr[a], indptr[a + 1]):
            pnl = pnl + quantity[p] * d_unit[indices[p]]
        for g, rows in enumerate((slice(0, split), slice(split, n_scen))):
            expected = var_es(-pnl[rows], 0.99) if counts[a] else (0.0, 0.0)
            assert out.var_usd[a, g] == pytest.approx(expected[0], rel=TOLERANCE_REL, abs=1e-12)
            assert out.es_usd[a, g] == pytest.approx(expected[1], rel=TOLERANCE_REL, abs=1e-12)


def test_ties_and_flat_losses() -> None:
    """All scenarios equal (a position whose instrument does not move): VaR = ES = that loss."""
    from crossmargin.core.var import measures

    n_scen = 300
    out = measures.book_tail_measures(
        indptr=np.array([0, 1, 2], dtype=np.int64), indices=np.array([0, 1], dtype=np.int32),
        quantity=np.array([2.0, -1.0]), entry_term=np.ones(2), d_unit=np.vstack([np.zeros(n_scen), np.full(n_scen, 3.0)]),
        d_coef=np.zeros((2, n_scen)), has_coefficient=np.zeros(2, dtype=bool), collateral_usd=np.zeros((2, 1)),
        d_asset=np.zeros((1, n_scen)), group=np.zeros(n_scen, dtype=np.int64), tail_counts=np.array([tail_count(0.99, n_scen)]),
    )  # fmt: skip
    assert out.var_usd[:, 0] == pytest.approx([0.0, 3.0])
    assert out.es_usd[:, 0] == pytest.approx([0.0, 3.0])


@pytest.mark.parametrize("seed", range(5))
def test_many_ties_match_the_sorted_reference(seed: int) -> None:
    """Integer-valued P&L (many equal losses at the floor) over several blocks."""
    from crossmargin.core.var import measures

    rng = np.random.default_rng(seed)
    n_acc, n_scen = 30, measures.SCENARIO_BLOCK + 411
    d_unit = rng.integers(-3, 4, size=(3, n_scen)).astype(np.float64)
    indptr = np.arange(0, 2 * n_acc + 1, 2, dtype=np.int64)
    indices = rng.integers(0, 3, 2 * n_acc).astype(np.int32)
    quantity = rng.integers(1, 3, 2 * n_acc).astype(np.float64)
    k = tail_count(0.975, n_scen)
    out = measures.book_tail_measures(
        indptr=indptr, indices=indices, quantity=quantity, entry_term=np.ones(2 * n_acc), d_unit=d_unit,
        d_coef=np.zeros_like(d_unit), has_coefficient=np.zeros(3, dtype=bool), collateral_usd=np.zeros((n_acc, 1)),
        d_asset=np.zeros((1, n_scen)), group=np.zeros(n_scen, dtype=np.int64), tail_counts=np.array([k]),
    )  # fmt: skip
    for a in range(n_acc):
        pnl = quantity[2 * a] * d_unit[indices[2 * a]] + quantity[2 * a + 1] * d_unit[indices[2 * a + 1]]
        var, es = var_es(-pnl, 0.975)
        assert out.var_usd[a, 0] == var and out.es_usd[a, 0] == pytest.approx(es, rel=1e-12)


@pytest.mark.parametrize(
    ("n_scenarios", "k"),
    [(7, 3), (40, 25), (250, 3), (1000, 25), (1000, 1), (3000, 60), (5000, 500)],
)
def test_kernel_top_k_is_exact_with_ties_every_bucket_count_and_both_merges(n_scenarios: int, k: int) -> None:
    """One position per account whose losses are small integers (many ties, so the floor, the
    bucket maxima and the rank merge all meet equal values), at scenario counts below 8k buckets,
    at one block, across blocks, and with more candidates than the rank merge takes (a sort)."""
    rng = np.random.default_rng(n_scenarios + k)
    n_acc = 12
    d_unit = rng.integers(-20, 21, size=(n_acc, n_scenarios)).astype(np.float64)
    d_unit[0] = 3.0  # every scenario the same loss
    indptr = np.arange(n_acc + 1, dtype=np.int64)
    indices = np.arange(n_acc, dtype=np.int64)
    quantity = -np.ones(n_acc)  # loss = d_unit row
    tails = book_tail_measures(
        indptr=indptr,
        indices=indices,
        quantity=quantity,
        entry_term=np.ones(n_acc),
        d_unit=d_unit,
        d_coef=np.zeros_like(d_unit),
        has_coefficient=np.zeros(n_acc, dtype=bool),
        collateral_usd=np.zeros((n_acc, 1)),
        d_asset=np.zeros((1, n_scenarios)),
        group=np.zeros(n_scenarios, dtype=np.int64),
        tail_counts=np.array([k]),
    )
    for a in range(n_acc):
        worst = np.sort(d_unit[a])[::-1][:k]
        assert tails.var_usd[a, 0] == worst[-1]
        assert tails.es_usd[a, 0] == worst.sum() / k


@pytest.mark.parametrize("seed", range(4))
def test_every_count_of_summed_rows_matches_the_dense_reference(seed: int) -> None:
    """Accounts of 0-9 positions, some with entry-coefficient rows, and 0-3 balances: every
    remainder of the four-rows-per-pass sum (0-3 rows left after the fours) against the dense P&L."""
    rng = np.random.default_rng(100 + seed)
    n_acc, n_inst, n_assets, n_scen = 60, 10, 3, 517
    counts = rng.integers(0, 10, n_acc)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    nnz = int(indptr[-1])
    indices = np.concatenate([rng.choice(n_inst, c, replace=False) for c in counts]).astype(np.int64)
    quantity = rng.normal(size=nnz)
    term = rng.uniform(0.5, 2.0, nnz)
    d_unit = rng.normal(size=(n_inst, n_scen))
    d_coef = rng.normal(size=(n_inst, n_scen))
    has_coefficient = np.arange(n_inst) % 3 == 0
    d_coef[~has_coefficient] = 0.0
    collateral = rng.normal(size=(n_acc, n_assets)) * (rng.random((n_acc, n_assets)) < 0.6)
    d_asset = rng.normal(size=(n_assets, n_scen)) * 0.1
    k = tail_count(0.975, n_scen)
    out = book_tail_measures(
        indptr=indptr, indices=indices, quantity=quantity, entry_term=term, d_unit=d_unit, d_coef=d_coef,
        has_coefficient=has_coefficient, collateral_usd=collateral, d_asset=d_asset,
        group=np.zeros(n_scen, dtype=np.int64), tail_counts=np.array([k]),
    )  # fmt: skip
    for a in range(n_acc):
        if counts[a] == 0:
            assert out.var_usd[a, 0] == 0.0 and out.es_usd[a, 0] == 0.0
            continue
        pnl = collateral[a] @ d_asset
        for p in range(indptr[a], indptr[a + 1]):
            pnl = pnl + quantity[p] * (d_unit[indices[p]] + term[p] * d_coef[indices[p]])
        var, es = var_es(-pnl, 0.975)
        assert out.var_usd[a, 0] == pytest.approx(var, rel=TOLERANCE_REL, abs=1e-12)
        assert out.es_usd[a, 0] == pytest.approx(es, rel=TOLERANCE_REL, abs=1e-12)


class BucketLayout(NamedTuple):
    """Strided buckets of losses[lo:hi]: bucket j is every n_buckets-th loss from lo + j."""

    n_buckets: int
    lo: int
    hi: int
    dtype: type[np.floating]


@st.composite
def bucket_layouts(draw: st.DrawFn) -> BucketLayout:
    """1-9 full rows of 1-40 buckets, then a short last row or none, from an offset lo."""
    n_buckets = draw(st.integers(1, 40))
    rows, short, lo = draw(st.integers(1, 9)), draw(st.integers(0, 39)), draw(st.integers(0, 5))
    hi = lo + rows * n_buckets + min(short, n_buckets - 1)
    return BucketLayout(n_buckets, lo, hi, draw(st.sampled_from([np.float32, np.float64])))


def bucket_maxima(loss: np.ndarray, layout: BucketLayout) -> np.ndarray:
    n_buckets, lo, hi, _ = layout
    return np.array([loss[lo + j : hi : n_buckets].max() for j in range(n_buckets)])


@settings(max_examples=60, deadline=None)
@given(data=st.data(), layout=bucket_layouts())
def test_strided_maxima_is_each_buckets_maximum(data: st.DataObject, layout: BucketLayout) -> None:
    """Bucket j's maximum, every m-th loss from lo + j, over an odd or even number of rows (the
    ping-pong between `maxima` and `scratch` must end in `maxima`) and a short last row; in the
    interpreter and compiled."""
    from crossmargin.core.var import measures

    n_buckets, lo, hi, dtype = layout
    values = data.draw(st.lists(st.floats(-1e6, 1e6, width=32), min_size=hi + 3, max_size=hi + 3))
    loss = np.array(values, dtype=dtype)
    expected = bucket_maxima(loss, layout)
    for run in (measures._strided_maxima.python, measures._strided_maxima.compiled()):
        maxima = np.full(n_buckets + 2, np.nan, dtype=dtype)
        scratch = np.full(n_buckets + 2, np.nan, dtype=dtype)
        run(loss, lo, hi, n_buckets, maxima, scratch)
        np.testing.assert_array_equal(maxima[:n_buckets], expected)


@settings(max_examples=80, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 80),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_floor_of_maxima_has_k_maxima_at_or_above_it(data: st.DataObject, n: int, dtype: type[np.floating]) -> None:
    """The floor under the k-th largest maximum: at least k maxima reach it, it is no higher than
    their k-th largest, and it is a value of the maxima's dtype (the bisection's counts compare in
    it); small integers and wide floats, interpreted and compiled."""
    from crossmargin.core.var import measures

    k = data.draw(st.integers(1, n))
    values = data.draw(
        st.lists(st.one_of(st.integers(-4, 4).map(float), st.floats(-1e6, 1e6, width=32)), min_size=n, max_size=n)
    )
    maxima = np.array(values, dtype=dtype)
    kth = float(np.sort(maxima)[::-1][k - 1])
    for run in (measures._floor_of_maxima.python, measures._floor_of_maxima.compiled()):
        floor = run(maxima, n, k, np.full(n, np.nan, dtype=dtype), np.full(n, np.nan, dtype=dtype))
        assert int(np.count_nonzero(maxima >= floor)) >= k
        assert floor <= kth
        assert float(dtype(floor)) == floor


@settings(max_examples=80, deadline=None)
@given(data=st.data(), layout=bucket_layouts())
def test_gather_candidates_keeps_the_reaching_buckets_losses_at_or_above_the_floor(
    data: st.DataObject, layout: BucketLayout
) -> None:
    """Every loss >= floor in a bucket whose maximum reaches the floor, each once and in scenario
    order (full rows and a short last row); small integers make ties and losses equal to the
    floor common. Interpreted and compiled."""
    from crossmargin.core.var import measures

    n_buckets, lo, hi, dtype = layout
    values = data.draw(st.lists(st.integers(-6, 6), min_size=hi + 2, max_size=hi + 2))
    loss = np.array(values, dtype=dtype)
    maxima = bucket_maxima(loss, layout).astype(dtype)
    floor = float(data.draw(st.integers(-7, 7)))
    reaching = [s for j in range(n_buckets) if maxima[j] >= floor for s in range(lo + j, hi, n_buckets)]
    expected = [float(loss[s]) for s in sorted(reaching) if loss[s] >= floor]  # in scenario order
    first = data.draw(st.integers(0, 3))  # after the kept ones, in group 1's row
    for run in (measures._gather_candidates.python, measures._gather_candidates.compiled()):
        kept = np.full((2, first + hi + 1), np.nan)
        end = run(loss, lo, hi, n_buckets, maxima, dtype(floor), np.empty(n_buckets, np.uint64), kept, 1, first)
        assert kept[1, first:end].tolist() == expected
        assert np.isnan(kept[1, :first]).all() and np.isnan(kept[0]).all()


def test_the_sums_alone_are_the_same_losses_without_the_tails() -> None:
    """select=False (a benchmark's arithmetic floor) still sums every account's P&L: its last
    scenario's loss, equal to the dense reference's; no tail measure."""
    book, market = var_book()
    model = VarMargin(VarParams(method="historical", confidence=0.99, window_days=700), synthetic_history())
    valuation = revalue(book.instruments, market)
    scenarios = model.scenarios(book, market)
    reval = revalue_scenarios(book.instruments, book.assets, market, valuation, scenarios)
    prices = market.asset_prices(book.assets)
    k = model.tail_counts(scenarios)
    sums = tail_measures(book, reval, scenarios.group, k, asset_price_usd=prices, select=False)
    loss = _dense_losses(book, market, reval)
    held = np.diff(book.positions.indptr) > 0
    assert held.sum() >= 2
    np.testing.assert_allclose(sums.var_usd[held, 0], loss[held, -1], rtol=TOLERANCE_REL, atol=1e-9)
    assert not sums.var_usd[~held].any() and not sums.es_usd.any()


def _k_largest_in_order(values: list[float], k: int) -> list[float]:
    """The k largest of values in their order: those above the k-th largest v, then of those
    equal to v the earliest (all of them when there are k or fewer)."""
    if len(values) <= k:
        return values
    v = sorted(values, reverse=True)[k - 1]
    above = sum(x > v for x in values)
    kept, equal_left = [], k - above
    for x in values:
        if x > v or (x == v and equal_left > 0):
            equal_left -= x == v
            kept.append(x)
    return kept


@settings(max_examples=120, deadline=None)
@given(
    kept=st.lists(st.integers(-5, 5), max_size=30),
    candidates=st.lists(st.integers(-5, 5), max_size=120),
    k=st.integers(1, 30),
)
def test_keep_largest_keeps_the_k_largest_in_scenario_order(kept: list[int], candidates: list[int], k: int) -> None:
    """The running top k (in scenario order) and new candidates (later scenarios): the k largest
    of both, in order, of equal values the earliest, and their least; dropped one by one up to
    DROP_LIMIT extra values and through `_keep_by_sort` beyond (candidates up to 120). Small
    integers make ties common. In the interpreter and compiled."""
    from crossmargin.core.var import measures

    kept_values = _k_largest_in_order([float(x) for x in kept], k)
    combined = kept_values + [float(v) for v in candidates]
    expected = _k_largest_in_order(combined, k)
    for run in (measures._keep_largest.python, measures._keep_largest.compiled()):
        kept_rows = np.full((2, len(combined) + 1), np.nan)  # group 1's row: kept, then candidates
        kept_rows[1, : len(combined)] = combined
        n, least = run(kept_rows, 1, len(combined), k)
        assert n == len(expected)
        assert kept_rows[1, :n].tolist() == expected
        assert np.isnan(kept_rows[0]).all()
        if n:
            assert least == min(expected)
