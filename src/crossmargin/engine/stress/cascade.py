"""The cascade: rounds of shocked prices times the impact of the liquidation flow so far,
re-margining, liquidation, the insurance fund and ADL, until a round liquidates nothing
(`run_cascade`, `forward_stress`); liquidation policies and their comparison."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from crossmargin.core.instruments import InstrumentKind
from crossmargin.core.margin import MarginModel
from crossmargin.core.pricing import revalue
from crossmargin.core.stress.impact import NO_IMPACT, SquareRootImpact
from crossmargin.core.stress.liquidation import (
    CASH_UNIT,
    COLLATERAL_UNIT,
    LOT,
    LiquidationRule,
)
from crossmargin.core.stress.waterfall import DeficitTotals, deleverage, fund_stage
from crossmargin.engine.stress.prepared import StressVenue, shocked_market
from crossmargin.engine.stress.shards import (
    TOP_N,
    LocalShards,
    RoundMarket,
    ShardRound,
    ShardRunner,
    _concat_candidates,
    _merge_shock_stats,
    _reduce,
)
from crossmargin.engine.stress.shocks import Shock
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """A venue's liquidation policy: the round rule, the ADL policy (None: fund then bad debt)."""

    name: str
    rule: LiquidationRule = field(default_factory=LiquidationRule)
    adl_policy: str | None = "queue"
    seed: int = 0


def policies(*, fee_rate: float = 0.005, exit_coverage: float = 1.25) -> list[Policy]:
    """Every policy the engine has: full or partial close, times each ADL policy or none."""
    out = []
    for partial in (False, True):
        rule = LiquidationRule(partial=partial, exit_coverage=exit_coverage, fee_rate=fee_rate)
        for adl in ("queue", "random_start", "pro_rata", "risk_aware", None):
            name = f"{'partial' if partial else 'full'}/{adl or 'no-adl'}"
            out.append(Policy(name=name, rule=rule, adl_policy=adl))
    return out


def policy_named(name: str, *, fee_rate: float = 0.005, exit_coverage: float = 1.25) -> Policy:
    """'full/queue', 'partial/pro_rata', 'full/no-adl', ... (see `policies`)."""
    for p in policies(fee_rate=fee_rate, exit_coverage=exit_coverage):
        if p.name == name:
            return p
    names = ", ".join(p.name for p in policies())
    raise InputError("policy", f"unknown policy {name!r}; choose one of {names}")


def compare_policies(
    venue: StressVenue,
    model: MarginModel,
    path: Sequence[Shock],
    *,
    insurance_fund_usd: float,
    impact: SquareRootImpact = NO_IMPACT,
    candidates: Sequence[Policy] | None = None,
    n_shards: int = 1,
) -> list[CascadeResult]:
    """The same shock path under each liquidation policy (default: every one, `policies()`)."""
    return [
        run_cascade(
            LocalShards.of(venue, model, n_shards=n_shards),
            venue,
            path,
            policy=p,
            insurance_fund_usd=insurance_fund_usd,
            impact=impact,
        )
        for p in (candidates if candidates is not None else policies())
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundRow:
    """One round of a cascade: prices (F,) it ran at, what it liquidated, and the venue after."""

    step: int
    round: int
    price_factor: FloatArray
    liquidated_accounts: int
    liquidated_notional_usd: float
    notional_by_underlying_usd: dict[str, float]
    collateral_sold_usd: dict[str, float]
    fees_usd: float  # liquidation fees, into the fund (core.stress.waterfall.fund_stage)
    deficit_usd: float
    fund_paid_usd: float
    fund_usd: float  # after the round: the last one's + fees - fund_paid + adl_surplus
    adl_contracts: float
    adl_notional_usd: float
    adl_haircut_usd: float
    adl_surplus_usd: float  # ADL haircuts beyond the deficit (whole lots overshoot): into the fund
    bad_debt_usd: float
    flow_usd: dict[str, float]

    @property
    def active(self) -> bool:
        return self.liquidated_accounts > 0 or self.adl_contracts > 0 or self.deficit_usd > 0


@dataclass(frozen=True, slots=True, kw_only=True)
class CascadeResult:
    """A cascade's path and the venue-wide report (docs/stress.md explains every field)."""

    label: str
    policy: str
    factors: tuple[str, ...]
    n_accounts: int
    rounds: tuple[RoundRow, ...]
    fund_start_usd: float
    under_maintenance: int
    under_zero: int
    shortfall_usd: float
    loss_usd: float
    top_losses: tuple[tuple[str, float], ...]
    adl_bearers: tuple[tuple[str, float], ...]
    converged: bool

    @property
    def active_rounds(self) -> int:
        return sum(r.active for r in self.rounds)

    @property
    def fund_end_usd(self) -> float:
        return self.rounds[-1].fund_usd if self.rounds else self.fund_start_usd

    @property
    def fund_used_usd(self) -> float:
        return sum(r.fund_paid_usd for r in self.rounds)

    @property
    def fees_usd(self) -> float:
        return sum(r.fees_usd for r in self.rounds)

    @property
    def adl_surplus_usd(self) -> float:
        return sum(r.adl_surplus_usd for r in self.rounds)

    @property
    def fund_in_usd(self) -> float:
        """What flowed into the fund: fees and ADL surplus (fund_end = start + in - used)."""
        return self.fees_usd + self.adl_surplus_usd

    @property
    def bad_debt_usd(self) -> float:
        return sum(r.bad_debt_usd for r in self.rounds)

    @property
    def deficit_usd(self) -> float:
        return sum(r.deficit_usd for r in self.rounds)

    @property
    def liquidated_notional_usd(self) -> float:
        return sum(r.liquidated_notional_usd for r in self.rounds)

    @property
    def adl_notional_usd(self) -> float:
        return sum(r.adl_notional_usd for r in self.rounds)

    @property
    def adl_haircut_usd(self) -> float:
        return sum(r.adl_haircut_usd for r in self.rounds)

    @property
    def top10_loss_share(self) -> float:
        return sum(v for _, v in self.top_losses) / self.loss_usd if self.loss_usd > 0 else 0.0

    def notional_by_underlying_usd(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for r in self.rounds:
            for k, v in r.notional_by_underlying_usd.items():
                out[k] = out.get(k, 0.0) + v
        return out

    def collateral_sold_usd(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for r in self.rounds:
            for k, v in r.collateral_sold_usd.items():
                out[k] = out.get(k, 0.0) + v
        return out

    def summary(self) -> dict[str, Any]:
        """The venue-wide report as plain JSON values."""
        return {
            "scenario": self.label,
            "policy": self.policy,
            "accounts": self.n_accounts,
            "under_maintenance": self.under_maintenance,
            "under_zero": self.under_zero,
            "shortfall_usd": self.shortfall_usd,
            "loss_usd": self.loss_usd,
            "top10_loss_share": self.top10_loss_share,
            "top_losses": [{"account": a, "loss_usd": v} for a, v in self.top_losses],
            "rounds": self.active_rounds,
            "converged": self.converged,
            "liquidated_notional_usd": self.liquidated_notional_usd,
            "liquidated_by_underlying_usd": self.notional_by_underlying_usd(),
            "collateral_sold_usd": self.collateral_sold_usd(),
            "deficit_usd": self.deficit_usd,
            "fund_start_usd": self.fund_start_usd,
            "fees_usd": self.fees_usd,
            "adl_surplus_usd": self.adl_surplus_usd,
            "fund_used_usd": self.fund_used_usd,
            "fund_end_usd": self.fund_end_usd,
            "adl_notional_usd": self.adl_notional_usd,
            "adl_haircut_usd": self.adl_haircut_usd,
            "adl_bearers": [{"account": a, "haircut_usd": v} for a, v in self.adl_bearers],
            "bad_debt_usd": self.bad_debt_usd,
            "final_price_factor": dict(zip(self.factors, self.rounds[-1].price_factor.tolist(), strict=True))
            if self.rounds
            else {},
            "path": [
                {
                    "step": r.step,
                    "round": r.round,
                    "price_factor": dict(zip(self.factors, r.price_factor.tolist(), strict=True)),
                    "liquidated_accounts": r.liquidated_accounts,
                    "liquidated_notional_usd": r.liquidated_notional_usd,
                    "fund_usd": r.fund_usd,
                    "adl_notional_usd": r.adl_notional_usd,
                    "bad_debt_usd": r.bad_debt_usd,
                }
                for r in self.rounds
            ],
        }


Progress = Callable[[int, int], None]


def run_cascade(
    runner: ShardRunner,
    venue: StressVenue,
    path: Sequence[Shock],
    *,
    policy: Policy,
    insurance_fund_usd: float,
    impact: SquareRootImpact = NO_IMPACT,
    max_rounds: int = 50,
    progress: Progress | None = None,
) -> CascadeResult:
    """Run a shock path through rounds to the fixed point (module docstring).

    `path`: one Shock, or steps of a price path (each relative to today; e.g. the hour of a crash in
    four steps); every step runs rounds until one liquidates nothing (at most `max_rounds`). The
    first round of the first step settles the funding carry and records the venue-wide report.
    A runner is used by one cascade: its shards' holdings change as it runs. The driver reads only
    the venue's instruments, assets and market (`venue.book` may hold no account: out of core)."""
    if not path:
        raise InputError("path", "needs at least one shock")
    if max_rounds < 1:
        raise InputError("max_rounds", "must be >= 1")
    if not (math.isfinite(insurance_fund_usd) and insurance_fund_usd >= 0.0):
        raise InputError("insurance_fund_usd", f"must be finite and >= 0, got {insurance_fund_usd!r}")
    book = venue.book
    instruments = book.instruments
    factors = venue.factors
    for shock in path:
        if shock.factors != factors:
            raise InputError("shock.factors", "must be the venue's risk factors (risk_factors(book))")
    fund = int(np.floor(insurance_fund_usd / CASH_UNIT))
    fund_start = fund
    flow = np.zeros(len(factors))
    rows: list[RoundRow] = []
    bearer_rows: list[IntArray] = []
    bearer_units: list[IntArray] = []
    shock_stats: dict[str, Any] = {}
    rng = np.random.default_rng(policy.seed)
    converged = True
    factor_of_instrument = np.array([factors.index(u) for u in instruments.underlyings], dtype=np.int64)[
        instruments.underlying_index
    ]
    factor_of_asset = np.array([factors.index(s) for s in book.assets.symbols], dtype=np.int64)
    spot_today = revalue(instruments, venue.market).spot_usd
    today_asset_usd = venue.market.asset_prices(venue.book.assets)
    n = runner.n_shards
    total_rounds = len(path) * max_rounds
    for step, shock in enumerate(path):
        step_converged = False
        for round_number in range(1, max_rounds + 1):
            first = step == 0 and round_number == 1
            factor = shock.price_factor * impact.factor(factors, flow)
            market, asset_price = shocked_market(
                venue.market, today_asset_usd, book, factors, factor, shock.vol_shift
            )
            round_market = RoundMarket(
                market=market,
                asset_price_usd=asset_price,
                funding_carry=shock.funding_carry if first and np.any(shock.funding_carry) else None,
                record_shock=first,
            )
            parts: list[ShardRound] = runner.call("liquidate", [(round_market, policy.rule)] * n)
            totals = _reduce(parts)
            if first:
                shock_stats = _merge_shock_stats(parts)
            stage = fund_stage(
                fund,
                DeficitTotals(
                    fee_units=totals.fee_units,
                    instrument_deficit_units=totals.instrument_deficit_units,
                    unattributed_deficit_units=totals.unattributed_deficit_units,
                    bankrupt_closed_lots=totals.bankrupt_closed_lots,
                ),
            )
            fund = stage.fund_units
            valuation = revalue(instruments, market)
            bad_debt = stage.unattributed_bad_debt_units
            adl_lots = 0
            adl_notional = 0.0
            adl_haircut = 0
            adl_surplus = 0
            todo = [
                int(i)
                for i in np.flatnonzero(stage.remaining_units > 0)
                if totals.bankrupt_closed_lots[i] != 0 and _deleverageable(instruments.kind[i])
            ]
            bad_debt += int(stage.remaining_units.sum()) - sum(int(stage.remaining_units[i]) for i in todo)
            if todo and policy.adl_policy is None:
                bad_debt += sum(int(stage.remaining_units[i]) for i in todo)
            elif todo and policy.adl_policy is not None:
                requests = [(i, -int(np.sign(totals.bankrupt_closed_lots[i]))) for i in todo]
                found = runner.call("candidates", [(requests,)] * n)
                assignments: list[list[tuple[IntArray, IntArray, IntArray]]] = [[] for _ in range(n)]
                for r, instrument in enumerate(todo):
                    per_shard = [shard_found[r] for shard_found in found]
                    merged = _concat_candidates([c for c, _ in per_shard])
                    outcome = deleverage(
                        merged,
                        remaining_units=int(stage.remaining_units[instrument]),
                        deficit_units=int(totals.instrument_deficit_units[instrument]),
                        bankrupt_lots=abs(int(totals.bankrupt_closed_lots[instrument])),
                        policy=policy.adl_policy,
                        rng=rng,
                    )
                    fund += outcome.overshoot_units
                    adl_surplus += outcome.overshoot_units
                    bad_debt += outcome.bad_debt_units
                    adl_lots += int(outcome.lots.sum())
                    adl_notional += (
                        float(outcome.lots.sum()) * LOT * float(valuation.notional_usd[instrument])
                    )
                    adl_haircut += outcome.covered_units
                    start = 0
                    for s, (cands, slots) in enumerate(per_shard):
                        size = cands.lots.size
                        lots = outcome.lots[start : start + size]
                        haircut = outcome.haircut_units[start : start + size]
                        assignments[s].append((slots, lots, haircut))
                        start += size
                    hit = outcome.haircut_units > 0
                    bearer_rows.append(merged.account_row[hit])
                    bearer_units.append(outcome.haircut_units[hit])
                runner.call("apply_adl", [(a,) for a in assignments])
            # Flow into the market: closing a long sells (negative), collateral sold sells too. Q is
            # a quantity of the asset (contracts × delta in units, collateral units) valued at today's
            # price, like V: the law's Q/V is a ratio of quantities. Valued at the crashed price
            # instead, a larger shock would sell the same coins as fewer dollars and move the price
            # less (a non-monotone cascade hypothesis found).
            closed_quantity = totals.closed_lots * LOT
            round_flow = np.zeros(len(factors))
            np.add.at(round_flow, factor_of_instrument, -closed_quantity * valuation.delta_usd * spot_today)
            traded_usd = totals.collateral_traded_units * COLLATERAL_UNIT * asset_price
            traded_today = totals.collateral_traded_units * COLLATERAL_UNIT * today_asset_usd
            np.add.at(round_flow, factor_of_asset, -traded_today)
            gross = totals.closed_abs_lots * LOT * valuation.notional_usd
            by_under = np.bincount(
                instruments.underlying_index, weights=gross, minlength=len(instruments.underlyings)
            )
            row = RoundRow(
                step=step,
                round=round_number,
                price_factor=factor,
                liquidated_accounts=totals.liquidated_accounts,
                liquidated_notional_usd=float(gross.sum()),
                notional_by_underlying_usd={
                    u: float(v) for u, v in zip(instruments.underlyings, by_under, strict=True) if v > 0
                },
                collateral_sold_usd={
                    s: float(v) for s, v in zip(book.assets.symbols, traded_usd, strict=True) if v != 0
                },
                fees_usd=totals.fee_units * CASH_UNIT,
                deficit_usd=(int(totals.instrument_deficit_units.sum()) + totals.unattributed_deficit_units)
                * CASH_UNIT,
                fund_paid_usd=stage.fund_paid_units * CASH_UNIT,
                fund_usd=fund * CASH_UNIT,
                adl_contracts=adl_lots * LOT,
                adl_notional_usd=adl_notional,
                adl_haircut_usd=adl_haircut * CASH_UNIT,
                adl_surplus_usd=adl_surplus * CASH_UNIT,
                bad_debt_usd=bad_debt * CASH_UNIT,
                flow_usd={f: float(v) for f, v in zip(factors, round_flow, strict=True) if v != 0.0},
            )
            rows.append(row)
            flow = flow + round_flow
            if progress is not None:
                progress(step * max_rounds + round_number, total_rounds)
            if not row.active:
                step_converged = True
                break
        converged = converged and step_converged
    if progress is not None:
        progress(total_rounds, total_rounds)
    top_losses = tuple((a, v * CASH_UNIT) for v, a in shock_stats.get("top_losses", ()))
    n_accounts = sum(runner.call("size", [()] * n))
    bearers = _top_bearers(runner, bearer_rows, bearer_units, n_accounts)
    return CascadeResult(
        label=path[0].label if len(path) == 1 else f"{path[0].label} .. {path[-1].label}",
        policy=policy.name,
        factors=factors,
        n_accounts=n_accounts,
        rounds=tuple(rows),
        fund_start_usd=fund_start * CASH_UNIT,
        under_maintenance=shock_stats.get("under_maintenance", 0),
        under_zero=shock_stats.get("under_zero", 0),
        shortfall_usd=shock_stats.get("shortfall_units", 0) * CASH_UNIT,
        loss_usd=shock_stats.get("loss_units", 0) * CASH_UNIT,
        top_losses=top_losses,
        adl_bearers=bearers,
        converged=converged,
    )


def _top_bearers(
    runner: ShardRunner, rows: Sequence[IntArray], units: Sequence[IntArray], n_accounts: int
) -> tuple[tuple[str, float], ...]:
    """The TOP_N accounts by total ADL haircut (USD), ties by global row."""
    if not rows:
        return ()
    total = np.zeros(n_accounts, dtype=np.int64)
    np.add.at(total, np.concatenate(rows), np.concatenate(units))
    k = min(TOP_N, int(np.count_nonzero(total)))
    if k == 0:
        return ()
    top = np.argpartition(-total, k - 1)[:k]
    account = top[np.lexsort((top, -total[top]))]
    wanted = [int(a) for a in account]
    ids: dict[int, str] = {}
    for part in runner.call("account_ids_of", [(wanted,)] * runner.n_shards):
        ids.update(part)
    return tuple((ids[a], int(total[a]) * CASH_UNIT) for a in wanted)


def _deleverageable(kind: int) -> bool:
    """ADL trades futures and perpetuals (options and spot have no ADL queue)."""
    return kind not in (InstrumentKind.OPTION, InstrumentKind.SPOT)


def forward_stress(
    venue: StressVenue,
    model: MarginModel,
    shock: Shock,
    *,
    policy: Policy,
    insurance_fund_usd: float,
    n_shards: int = 1,
) -> CascadeResult:
    """A forward stress: the shock's cascade without price impact, on fresh shards."""
    runner = LocalShards.of(venue, model, n_shards=n_shards)
    return run_cascade(runner, venue, [shock], policy=policy, insurance_fund_usd=insurance_fund_usd)
