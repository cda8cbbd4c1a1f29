"""The numbers each page shows, taken from the engine: no margin is computed here.

Every requirement comes from the venue's `RiskEngine` (its `result`, `breakdown`) or from the
engine's own report functions run on the engine's current book and market: `build_margin_report`
(positions, collateral with haircuts), `compare_report` (every model side by side),
`explain_report` (the portfolio grid: driving scenario, per-position P&L, the scenario grid),
`price_levels` (liquidation and bankruptcy prices). What is added here is aggregation for display
(sums, a histogram, a queue sorted by coverage) and the liquidation curve, whose every point is one
whole-book evaluation of the venue's own model at a moved market (`core.liquidation.model_prices.
moved_market`, the same move the liquidation-price search makes). Money is float64 USD (risk maths
and display); the ledger's exact units arrive already converted in the `VenueView`.

The dicts returned are JSON-ready: the pages render them and `/dashboard/api/...` serves them, so
a test compares the page with the API number for number.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from crossmargin.core.collateral import value_collateral
from crossmargin.core.liquidation.model_prices import moved_market
from crossmargin.core.margin.portfolio import PortfolioMargin
from crossmargin.core.oracle.policy import OraclePolicy
from crossmargin.core.pricing import revalue
from crossmargin.dashboard.source import QUEUE_FROM, STATUS_NAMES, VenueView
from crossmargin.engine.backtest import COMPARISON_MODELS, run_backtest
from crossmargin.engine.inputs import LoadedBook
from crossmargin.engine.margin_run import MarginRun, account_price_levels, build_margin_report, price_levels
from crossmargin.engine.portfolio_run import compare_report, explain_report
from crossmargin.engine.ports import PriceHistorySource
from crossmargin.engine.reports import to_json
from crossmargin.engine.venue import PriceState
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]

# Margin ratio (MM / equity) histogram: tenths up to 1 (at 1 the account is at maintenance), then
# one bin for >= 1 (under maintenance: liquidation territory); bankrupt accounts are counted apart.
RATIO_EDGES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, math.inf)
# The liquidation curve's moves of one underlying, fractions (-50 % .. +50 %).
CURVE_MOVES = (
    -0.5,
    -0.4,
    -0.3,
    -0.25,
    -0.2,
    -0.15,
    -0.1,
    -0.05,
    0.0,
    0.05,
    0.1,
    0.15,
    0.2,
    0.25,
    0.3,
    0.4,
    0.5,
)
# A position whose notional is within this fraction below its next risk-limit tier floor is "near".
TIER_NEAR_FRACTION = 0.10
# An oracle band (accepted sources' high − low) wider than this fraction of the price: the sources
# disagree enough that the oracle policy refuses withdrawals on it (core.oracle.policy, 2 %).
ORACLE_DISAGREE_FRACTION = OraclePolicy().withdraw.max_band_fraction
NO_PRICES = "this source keeps no index prices of its own: no price-age checks run"


def iso_time(as_of_ns: int) -> str:
    return datetime.fromtimestamp(as_of_ns / 1e9, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def live_loaded(view: VenueView) -> LoadedBook:
    """The book file's parameters over the engine's current book and market (what compare and
    explain evaluate)."""
    return dataclasses.replace(view.loaded, book=view.engine.book, market=view.engine.market)


def headline(view: VenueView) -> dict[str, Any]:
    """Venue totals (USD), the as-of time and sequence number."""
    result = view.engine.result
    return {
        "sequence": view.sequence,
        "as_of": iso_time(view.as_of_ns),
        "model": result.model,
        "accounts": int(result.equity_usd.size),
        "equity_usd": float(result.equity_usd.sum()),
        "initial_margin_usd": float(result.initial_margin_usd.sum()),
        "maintenance_margin_usd": float(result.maintenance_margin_usd.sum()),
        "insurance_fund_usd": view.insurance_fund_usd,
        "bad_debt_usd": float(view.bad_debt_usd),
        "below_maintenance": int(np.count_nonzero(result.below_maintenance)),
    }


def ratio_histogram(view: VenueView) -> dict[str, Any]:
    """Accounts by margin ratio MM / equity (RATIO_EDGES), bankrupt accounts apart."""
    result = view.engine.result
    ratio = result.margin_ratio[~result.bankrupt]
    counts, _ = np.histogram(ratio, bins=np.array(RATIO_EDGES))
    labels = [f"{lo:.0%}–{hi:.0%}" for lo, hi in itertools.pairwise(RATIO_EDGES[:-1])]
    labels.append("≥ 100 %")
    return {
        "labels": labels,
        "counts": counts.tolist(),
        "bankrupt": int(np.count_nonzero(result.bankrupt)),
    }


def call_queue(view: VenueView) -> list[dict[str, Any]]:
    """Accounts in margin call, liquidation or bankrupt (the ledger's state machine), lowest
    coverage (equity / MM) first: the order the venue liquidates in. Vectorised: only the queue's
    rows become Python values."""
    engine = view.engine
    result = engine.result
    rows = np.flatnonzero(view.status_code >= QUEUE_FROM)
    equity = result.equity_usd[rows]
    maintenance = result.maintenance_margin_usd[rows]
    with np.errstate(divide="ignore", invalid="ignore"):
        covered = np.where(maintenance > 0.0, equity / maintenance, np.where(equity >= 0.0, np.inf, -np.inf))
    ids = np.asarray(tuple(engine.book.account_ids), dtype=object)[rows]
    order = np.lexsort((ids.astype(str), covered))
    queue = [
        {
            "account_id": account,
            "status": STATUS_NAMES[code],
            "equity_usd": e,
            "maintenance_margin_usd": m,
            "coverage": c,
        }
        for account, code, e, m, c in zip(
            ids[order].tolist(),
            view.status_code[rows][order].tolist(),
            equity[order].tolist(),
            maintenance[order].tolist(),
            covered[order].tolist(),
            strict=True,
        )
    ]
    return to_json(queue)  # type: ignore[no-any-return]


def collateral_exposure(view: VenueView) -> list[dict[str, Any]]:
    """Per collateral asset, over every account: balance (asset units, borrowings negative), value
    before and after haircut (USD), the haircut taken (USD)."""
    book = view.engine.book
    price_usd = view.engine.market.asset_prices(book.assets)
    valued = value_collateral(book.balances, book.assets, price_usd)
    balance = book.balances.sum(axis=0)
    gross = (np.maximum(book.balances, 0.0) * price_usd).sum(axis=0)
    debt = (np.minimum(book.balances, 0.0) * price_usd).sum(axis=0)
    after = valued.value_usd.sum(axis=0)
    return [
        {
            "asset": symbol,
            "balance": b,
            "price_usd": p,
            "value_usd": g + d,
            "value_after_haircut_usd": a,
            "haircut_usd": g + d - a,
        }
        for symbol, b, p, g, d, a in zip(
            book.assets.symbols,
            balance.tolist(),
            price_usd.tolist(),
            gross.tolist(),
            debt.tolist(),
            after.tolist(),
            strict=True,
        )
    ]


def liquidation_curve(view: VenueView, moves: tuple[float, ...] = CURVE_MOVES) -> dict[str, Any]:
    """For each underlying u and move m: the accounts that would be under maintenance if u alone
    moved by m (its index, marks, forwards and the collateral asset named u; options repriced),
    each point one evaluation of the venue's model on the whole moved book, and the notional they
    hold there (Σ |q| · notional per contract, USD, at the moved prices): what the liquidation
    engine would have to work through."""
    engine = view.engine
    book = engine.book
    base = engine.valuation
    model = engine.model
    series = []
    for u, name in enumerate(book.instruments.underlyings):
        counts: list[int] = []
        values: list[float] = []
        for move in moves:  # one whole-book evaluation per point (a loop over moves, not accounts)
            moved = moved_market(book, engine.market, base, underlying=u, factor=1.0 + move)
            result = model.evaluate(book, moved)
            under = result.below_maintenance
            notional = revalue(book.instruments, moved).notional_usd
            per_account = abs(book.positions.to_scipy()) @ notional
            counts.append(int(np.count_nonzero(under)))
            values.append(float(per_account[under].sum()))
        series.append({"underlying": name, "accounts": counts, "notional_usd": values})
    return {"moves": list(moves), "series": series}


def overview(view: VenueView) -> dict[str, Any]:
    """Everything the overview page shows except the liquidation curve (a page of its own cost)."""
    return {
        "headline": headline(view),
        "histogram": ratio_histogram(view),
        "queue": call_queue(view),
        "exposure": collateral_exposure(view),
    }


# -- one account -------------------------------------------------------------------------------


def account_report(view: VenueView, account_id: str, *, with_levels: bool = True) -> dict[str, Any]:
    """The engine's margin report of one account under the venue's model: positions, collateral
    with haircuts, and its liquidation and bankruptcy prices against today's index."""
    engine = view.engine
    engine.account_row(account_id)  # an unknown account is an InputError naming it
    loaded = live_loaded(view)
    run = MarginRun(
        loaded=loaded,
        model=engine.result.model,
        result=engine.result,
        breakdown=engine.breakdown([account_id]),
        margin_model=engine.model,
        model_book=engine.book,
    )
    levels = price_levels(run) if with_levels else None
    report = build_margin_report(run)
    account = to_json(report.accounts[0])
    account["status"] = view.status_of(account_id)
    index = dict(zip(engine.market.underlyings, engine.market.index_price_usd.tolist(), strict=True))
    if levels is not None:
        (per_account,) = account_price_levels(levels)
        account["levels"] = [
            {
                "underlying": u,
                "index_price_usd": index[u],
                "liquidation_price_usd": per_account.liquidation_price[u],
                "bankruptcy_price_usd": per_account.bankruptcy_price[u],
                "liquidation_distance": _distance(per_account.liquidation_price[u], index[u]),
            }
            for u in levels.underlyings
            if per_account.liquidation_price[u] is not None or per_account.bankruptcy_price[u] is not None
        ]
    return account  # type: ignore[no-any-return]


def _distance(price: float | None, index: float) -> float | None:
    return None if price is None else price / index - 1.0


def compare(view: VenueView, account_id: str) -> dict[str, Any]:
    """The engine's compare: the account under every model and venue preset, side by side."""
    return compare_report(live_loaded(view), account_id, history=view.history)


def explain(view: VenueView, account_id: str) -> dict[str, Any]:
    """The engine's portfolio explanation (the venue's own methodology when it runs portfolio
    margin, else the book's), plus the scenario grid as a heatmap: price move × vol shift per
    underlying, as Deribit shows its PM grid."""
    loaded = live_loaded(view)
    model = view.engine.model
    preset = model.params.name if isinstance(model, PortfolioMargin) else None
    report = explain_report(loaded, account_id, preset=preset)
    report["heatmap"] = scenario_heatmap(report["scenarios"])
    return report


def scenario_heatmap(scenarios: list[dict[str, Any]]) -> dict[str, Any]:
    """Scenario labels "<UNDERLYING> <move>[, vol up|down]" arranged as rows (underlying, vol) ×
    columns (move); other rows (depeg, extreme, joint) are left to the table."""
    cells: dict[tuple[str, str], dict[str, float]] = {}
    moves: list[str] = []
    for s in scenarios:
        head, _, vol = s["label"].partition(", ")
        parts = head.split(" ")
        if len(parts) != 2 or not parts[1].endswith("%") or parts[1][0] not in "+-" or "," in vol:
            continue  # depeg, joint and extreme rows (weighted) stay in the scenario table
        underlying, move = parts
        row = (underlying, vol or "vol flat")
        cells.setdefault(row, {})[move] = s["pnl_usd"]
        if move not in moves:
            moves.append(move)
    moves.sort(key=lambda m: float(m.rstrip("%")))
    rows = sorted(cells)
    values = [[cells[r].get(m) for m in moves] for r in rows]
    return {"columns": moves, "rows": [f"{u} {v}" for u, v in rows], "pnl_usd": values}


def what_if(
    view: VenueView, account_id: str, *, instrument_id: str, quantity: float, price: float | None
) -> dict[str, Any]:
    """The account's requirement under the venue's model if it traded `quantity` contracts of
    `instrument_id` at `price` (settlement units; None: today's mark): the trade merged into its
    position at the average entry (1/E averaged for inverse delta-one, where P&L is linear in
    1/E), then the model's own evaluate on that one account. Before and after, USD."""
    engine = view.engine
    book = engine.book
    row = engine.account_row(account_id)
    instrument = book.instruments.position(instrument_id, field_name="instrument")
    if not math.isfinite(quantity) or quantity == 0.0:
        raise InputError("quantity", f"must be a non-zero finite number of contracts, got {quantity!r}")
    valuation = engine.valuation
    trade_price = float(valuation.mark_price[instrument]) if price is None else price
    if not (math.isfinite(trade_price) and trade_price > 0.0):
        raise InputError("price", f"must be > 0 (settlement units), got {price!r}")
    one = book.select([row])
    start, end = one.positions.indptr[0], one.positions.indptr[1]
    instruments = one.positions.indices[start:end].astype(np.int64)
    quantities = one.positions.data[start:end].astype(np.float64)
    entries = one.entry_price[start:end].astype(np.float64)
    inverse = bool(book.instruments.reciprocal_entry[instrument])
    at = np.flatnonzero(instruments == instrument)
    if at.size:
        k = int(at[0])
        held = float(quantities[k])
        total = held + quantity
        if total == 0.0:
            raise InputError(
                "quantity", "closes the position exactly: the what-if needs a position after the trade"
            )
        if inverse:
            entries[k] = total / (held / entries[k] + quantity / trade_price)
        else:
            entries[k] = (held * entries[k] + quantity * trade_price) / total
        quantities[k] = total
    else:
        instruments = np.append(instruments, instrument)
        quantities = np.append(quantities, quantity)
        entries = np.append(entries, trade_price)
    traded = type(book).from_arrays(
        account_ids=[account_id],
        assets=book.assets,
        instruments=book.instruments,
        account_index=np.zeros(instruments.size, dtype=np.int64),
        instrument_index=instruments,
        quantity=quantities,
        entry_price=entries,
        balances=one.balances,
    )
    after = engine.model.evaluate(traded, engine.market, valuation)
    before = engine.result
    return {
        "account_id": account_id,
        "instrument_id": instrument_id,
        "quantity": quantity,
        "price": trade_price,
        "before": {
            "equity_usd": float(before.equity_usd[row]),
            "initial_margin_usd": float(before.initial_margin_usd[row]),
            "maintenance_margin_usd": float(before.maintenance_margin_usd[row]),
            "available_usd": float(before.available_usd[row]),
        },
        "after": {
            "equity_usd": float(after.equity_usd[0]),
            "initial_margin_usd": float(after.initial_margin_usd[0]),
            "maintenance_margin_usd": float(after.maintenance_margin_usd[0]),
            "available_usd": float(after.available_usd[0]),
        },
    }


# -- warnings ----------------------------------------------------------------------------------


def warnings(view: VenueView) -> list[dict[str, Any]]:
    """What a venue's users ask about: stale index prices, a move the oracle's circuit breaker
    holds, and sources that disagree (the venue's own price states, as `Venue.price_states`
    reports them from what the oracle sent), withdrawals gated (venue-wide for bad debt; per account
    from margin call on) and why, and positions near their next risk-limit tier. Each: kind,
    severity, subject, message."""
    prices = view.prices()
    out = [_stale_warning(p) for p in prices if p.status == "stale"]
    out += [_held_warning(p) for p in prices if p.status == "held"]
    out += [_disagree_warning(p) for p in prices if p.band_fraction > ORACLE_DISAGREE_FRACTION]
    if not prices:
        out.append(_warning("prices_absent", "moderate", "venue", NO_PRICES))
    if view.withdrawals_gated_reason is not None:
        out.append(_warning("withdrawals_gated", "critical", "venue", view.withdrawals_gated_reason))
    for queued in call_queue(view):
        status = queued["status"].replace("_", " ")
        gated = f"withdrawals gated and trading reduce-only: account in {status}"
        out.append(_warning("withdrawals_gated", "serious", queued["account_id"], gated))
    out.extend(_tier_warnings(view))
    return out


def _stale_warning(price: PriceState) -> dict[str, Any]:
    """A stale price said to be stale: its value, when it was last quoted and how long ago."""
    when = iso_time(price.quoted_ns)
    since = (
        f"last quoted {when}"
        if price.exact
        else f"quoted no later than {when} (held since before the venue last opened)"
    )
    message = (
        f"stale: {price.price_usd:,.2f} USD, {since}, {_age(price.age_s)} ago (limit "
        f"{_age(price.max_age_s)}); margin and liquidations still use it"
    )
    return _warning("price_stale", "critical", price.symbol, message)


def _held_warning(price: PriceState) -> dict[str, Any]:
    """The oracle's circuit breaker holds a large move of this asset for confirmation."""
    message = (
        f"circuit breaker tripped: the oracle holds a large move for confirmation; the venue keeps "
        f"{price.price_usd:,.2f} USD, set {_age(price.age_s)} ago"
    )
    return _warning("oracle_held", "critical", price.symbol, message)


def _disagree_warning(price: PriceState) -> dict[str, Any]:
    """The oracle's accepted sources span more than ORACLE_DISAGREE_FRACTION of the price."""
    message = (
        f"sources disagree: their band is {price.band_fraction:.2%} of the price "
        f"(above {ORACLE_DISAGREE_FRACTION:.0%})"
    )
    return _warning("oracle_disagree", "serious", price.symbol, message)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86_400.0), ("h", 3_600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:,.1f} s"


def _warning(kind: str, severity: str, subject: str, message: str) -> dict[str, Any]:
    return {"kind": kind, "severity": severity, "subject": subject, "message": message}


def _tier_warnings(view: VenueView) -> list[dict[str, Any]]:
    """Positions whose notional (|q| · contract value, USD) is within TIER_NEAR_FRACTION below the
    floor of their instrument's next risk-limit tier, where the margin rate steps up."""
    engine = view.engine
    book = engine.book
    table = book.instruments
    instrument = book.positions.indices.astype(np.int64)
    notional = np.abs(book.positions.data) * engine.valuation.notional_usd[instrument]
    floors = table.tier_floor_usd[instrument]  # (nnz, T), +inf padded
    above = np.where(floors > notional[:, None], floors, np.inf)
    next_floor = above.min(axis=1)
    near = np.isfinite(next_floor) & (notional >= (1.0 - TIER_NEAR_FRACTION) * next_floor)
    owner = book.position_account
    return [
        _warning(
            "limit_near",
            "moderate",
            book.account_ids[int(owner[p])],
            f"{table.ids[int(instrument[p])]}: notional {notional[p]:,.0f} USD is "
            f"{1 - notional[p] / next_floor[p]:.1%} below the next risk-limit tier at "
            f"{next_floor[p]:,.0f} USD (higher margin rate)",
        )
        for p in np.flatnonzero(near).tolist()
    ]


# -- back-test ---------------------------------------------------------------------------------

BACKTEST_MODELS = ("cross", "portfolio:deribit-pm", "var:hs-var99")
BACKTEST_CHOICES = COMPARISON_MODELS


def backtest(
    loaded: LoadedBook,
    history: PriceHistorySource,
    *,
    account_id: str,
    models: tuple[str, ...],
    first_day: str,
    last_day: str,
    horizon_days: int = 2,
) -> dict[str, Any]:
    """`engine.backtest.run_backtest` of one account: per model the margin (IM, USD) each day and
    the realised `horizon_days` loss, exceedances (loss > margin) marked, and the statistics."""
    run = run_backtest(
        loaded,
        models,
        history=history,
        first_day=first_day,
        last_day=last_day,
        horizon_days=horizon_days,
        account_ids=[account_id],
    )
    days = [str(d) for d in run.days]
    series = []
    for model in run.models:
        s = run.get(account_id, model)
        stats = s.stats
        series.append(
            {
                "model": model,
                "margin_usd": s.margin_usd.tolist(),
                "exceeded": np.flatnonzero(s.exceeded).tolist(),
                "exceedances": stats.exceedances,
                "exceedance_rate": stats.exceedance_rate,
                "expected_rate": stats.expected_rate,
                "kupiec_p_value": stats.kupiec_p_value,
                "worst_shortfall_usd": stats.worst_shortfall_usd,
                "mean_margin_usd": stats.mean_margin_usd,
            }
        )
    loss = run.get(account_id, run.models[0]).loss_usd.tolist()
    return to_json(  # type: ignore[no-any-return]
        {
            "account_id": account_id,
            "book": run.book,
            "horizon_days": run.horizon_days,
            "days": days,
            "loss_usd": loss,
            "series": series,
        }
    )
