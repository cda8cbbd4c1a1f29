"""POST /v1/stress: the venue's committed book through the stress engine (`engine.stress`).

    1. check the request (cheap, before any snapshot): at most `MAX_STRESS_SCENARIOS` scenarios,
       a known liquidation policy, known historical windows, a price history when windows are asked;
    2. snapshot: `Venue.ledger_snapshot` copies the committed ledger between two commits (the
       venue's lock is held for shallow dictionary copies only); the Book, the market, the
       venue's margin model (cross margin with the parameters in force) and its insurance fund
       in USD are built from that copy, off the writer's path;
    3. each scenario becomes an `engine.stress.Shock` (`hypothetical_shock`, or `window_shock` of a
       historical window's joint close-to-close move) and runs through `run_cascade`:
       - the figures at the shock (accounts under maintenance and under zero, shortfall, loss)
         are the cascade's first round, which margins every account at the shocked market before
         it liquidates anything;
       - with `cascade`: the rounds to the fixed point (no price impact), the fund, ADL and bad
         debt under the chosen policy; `steps` > 1 reaches the shock as a price path, and the
         figures at the shock then come from a one-round run of the whole shock;
       - without: no liquidation; the fund left is max(fund - shortfall, 0), what would remain
         if every account under zero were closed at the shocked prices without fees.

Everything runs in a worker thread of the `compute` request class (one in flight; the rest 503),
never on the event loop, holding the venue's lock only for the snapshot's dictionary copies (1.7 ms
at 5,004 accounts). Its Python work still shares the interpreter with the venue's writer thread:
bench/bench_service_stress.py measures deposit acknowledgements while stresses run back to back
(p50 about unchanged; p99 noisy on a shared 2-core machine, 1x to 9x; a worker process was tried
and was no better there: pickling the snapshot and a third busy process on two cores).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from crossmargin.core.ledger.money import to_float
from crossmargin.core.ledger.postings import INSURANCE
from crossmargin.core.ledger.state import book_of, market_of
from crossmargin.core.margin import CrossMargin
from crossmargin.core.stress.historical import NAMED_WINDOWS, window_move
from crossmargin.engine.ports import PriceHistorySource
from crossmargin.engine.stress import (
    CascadeResult,
    LocalShards,
    Policy,
    Shock,
    StressVenue,
    hypothetical_shock,
    policy_named,
    prepare_venue,
    run_cascade,
    split_path,
    window_shock,
)
from crossmargin.engine.venue import Venue
from crossmargin.errors import InputError
from crossmargin.service import models
from crossmargin.service.problems import Problem

WINDOWS = {w.name: w for w in NAMED_WINDOWS}
# The policy used only to reach the first round's figures when no cascade is asked for (the
# figures at the shock are taken before any liquidation, so any policy gives the same ones).
SCREEN_POLICY = "full/queue"
_SHOCK_FIELD = re.compile(r"^shock\.(moves|vol_shift)\[(.+)\]$")


@dataclass(frozen=True, slots=True)
class StressInputs:
    """The venue as the stress sees it, as of `sequence`."""

    sequence: int
    venue: StressVenue
    model: CrossMargin
    insurance_fund_usd: float


@dataclass(frozen=True, slots=True)
class Scenario:
    shock: Shock
    kind: str
    notes: tuple[str, ...] = ()


def check(body: models.StressRequest, history: PriceHistorySource | None) -> Policy | None:
    """Refuse a bad request before any work: too many or no scenarios, an unknown policy or
    window, windows without a price history. Returns the cascade's policy (None: no cascade)."""
    count = len(body.shocks) + len(body.windows)
    if count > models.MAX_STRESS_SCENARIOS:
        raise Problem(
            422,
            "too-many-scenarios",
            f"{count} shocks and windows; at most {models.MAX_STRESS_SCENARIOS} per request",
            field="body.shocks",
        )
    if count == 0:
        raise Problem(422, "invalid-request", "nothing to run: name shocks or windows", field="body.shocks")
    for n, name in enumerate(body.windows):
        if name not in WINDOWS:
            raise Problem(
                422,
                "unknown-window",
                f"unknown window {name!r}; one of {', '.join(WINDOWS)}",
                field=f"body.windows[{n}]",
            )
    if body.windows and history is None:
        raise Problem(
            409,
            "no-price-history",
            "historical windows need the service's daily price history, and none is configured "
            "(the shared data directory, $CROSSMARGIN_DATA); hypothetical shocks work without it",
            field="body.windows",
        )
    if body.cascade is None:
        return None
    try:
        return policy_named(body.cascade.policy)
    except InputError as error:
        raise Problem(422, "unknown-policy", error.problem, field="body.cascade.policy") from None


def inputs_of(venue: Venue) -> StressInputs:
    """The committed book, market, model and fund (module docstring, step 2)."""
    sequence, ledger, config = venue.ledger_snapshot()
    book = book_of(ledger, config)
    market = market_of(ledger, config)
    fund_usd = sum(
        to_float(units, config.decimals[asset]) * ledger.prices[asset]
        for (holder, asset), units in ledger.balances.items()
        if holder == INSURANCE
    )
    return StressInputs(
        sequence=sequence,
        venue=prepare_venue(book, market),
        model=CrossMargin(config.margin),
        insurance_fund_usd=float(fund_usd),
    )


def scenarios(
    body: models.StressRequest, venue: StressVenue, history: PriceHistorySource | None
) -> list[Scenario]:
    """The request's shocks, then its windows, as engine Shocks (InputErrors as 422 problems)."""
    out = []
    for n, spec in enumerate(body.shocks):
        label = spec.label or ", ".join(f"{s} {m:+.0%}" for s, m in spec.moves.items()) or f"shock {n + 1}"
        try:
            shock = hypothetical_shock(venue.book, label=label, moves=spec.moves, vol_shift=spec.vol_shift)
        except InputError as error:
            raise Problem(422, "rejected", error.problem, field=_shock_field(error.field, n)) from None
        out.append(Scenario(shock=shock, kind="hypothetical"))
    if body.windows:
        assert history is not None  # check() refused windows without a history
        daily = history.price_history()
        for n, name in enumerate(body.windows):
            try:
                move = window_move(
                    WINDOWS[name],
                    days=daily.days,
                    symbols=daily.symbols,
                    close_usd=daily.close_usd,
                    low_usd=daily.close_usd,  # a price history has closes only
                )
                shock, proxied = window_shock(venue, move)
            except InputError as error:
                raise Problem(422, "rejected", error.problem, field=f"body.windows[{n}]") from None
            notes = ["joint close-to-close move of daily closes; implied vols and funding unchanged"]
            if proxied:
                notes.append(f"no data for {', '.join(proxied)}: moved with BTC (stablecoins held at par)")
            out.append(Scenario(shock=shock, kind="historical", notes=tuple(notes)))
    return out


def _shock_field(engine_field: str, n: int) -> str:
    """shock.moves[DOGE] -> body.shocks[n].moves.DOGE (the form request validation uses)."""
    found = _SHOCK_FIELD.match(engine_field)
    if found is None:
        return f"body.shocks[{n}]"
    return f"body.shocks[{n}].{found.group(1)}.{found.group(2)}"


def run(
    body: models.StressRequest,
    inputs: StressInputs,
    policy: Policy | None,
    history: PriceHistorySource | None,
) -> models.StressResponse:
    """Every scenario through the engine (module docstring, step 3)."""
    venue = inputs.venue
    fund = (
        inputs.insurance_fund_usd
        if body.cascade is None or body.cascade.insurance_fund_usd is None
        else body.cascade.insurance_fund_usd
    )
    results = []
    for scenario in scenarios(body, venue, history):
        shock = scenario.shock
        at_shock = cascade = None
        if policy is not None and body.cascade is not None:
            cascade = run_cascade(
                LocalShards.of(venue, inputs.model),
                venue,
                split_path(shock, body.cascade.steps),
                policy=policy,
                insurance_fund_usd=fund,
            )
            if body.cascade.steps == 1:
                at_shock = cascade
        if at_shock is None:
            at_shock = run_cascade(
                LocalShards.of(venue, inputs.model),
                venue,
                [shock],
                policy=policy_named(SCREEN_POLICY),
                insurance_fund_usd=fund,
                max_rounds=1,
            )
        results.append(_result(scenario, at_shock, cascade, fund, body))
    return models.StressResponse(
        sequence=inputs.sequence, model="cross", accounts=venue.book.n_accounts, results=results
    )


def _result(
    scenario: Scenario,
    at_shock: CascadeResult,
    cascade: CascadeResult | None,
    fund_usd: float,
    body: models.StressRequest,
) -> models.StressResult:
    shock = scenario.shock
    moves = {
        f: float(x - 1.0) for f, x in zip(shock.factors, shock.price_factor.tolist(), strict=True) if x != 1.0
    }
    return models.StressResult(
        label=shock.label,
        kind="historical" if scenario.kind == "historical" else "hypothetical",
        price_moves=moves,
        under_maintenance=at_shock.under_maintenance,
        under_zero=at_shock.under_zero,
        shortfall_usd=at_shock.shortfall_usd,
        loss_usd=at_shock.loss_usd,
        insurance_fund_usd=fund_usd,
        insurance_fund_left_usd=(
            cascade.fund_end_usd if cascade is not None else max(fund_usd - at_shock.shortfall_usd, 0.0)
        ),
        cascade=None
        if cascade is None
        else _outcome(cascade, steps=body.cascade.steps if body.cascade else 1),
        notes=list(scenario.notes),
    )


def _outcome(result: CascadeResult, *, steps: int) -> models.CascadeOutcome:
    return models.CascadeOutcome(
        policy=result.policy,
        steps=steps,
        rounds=result.active_rounds,
        converged=result.converged,
        liquidated_notional_usd=result.liquidated_notional_usd,
        collateral_sold_usd=sum(result.collateral_sold_usd().values()),
        deficit_usd=result.deficit_usd,
        fees_usd=sum(r.fees_usd for r in result.rounds),
        fund_used_usd=result.fund_used_usd,
        fund_left_usd=result.fund_end_usd,
        adl_notional_usd=result.adl_notional_usd,
        adl_haircut_usd=result.adl_haircut_usd,
        bad_debt_usd=result.bad_debt_usd,
        path=[
            models.CascadeRoundModel(
                step=r.step + 1,
                round=r.round,
                liquidated_accounts=r.liquidated_accounts,
                liquidated_notional_usd=r.liquidated_notional_usd,
                fees_usd=r.fees_usd,
                deficit_usd=r.deficit_usd,
                fund_paid_usd=r.fund_paid_usd,
                fund_usd=r.fund_usd,
                adl_notional_usd=r.adl_notional_usd,
                adl_haircut_usd=r.adl_haircut_usd,
                bad_debt_usd=r.bad_debt_usd,
            )
            for r in result.rounds
        ],
    )
