"""Generate docs/stress.md and its figures: venue-wide stresses, a cascade, the policy comparison
and a reverse stress.

    python scripts/stress_docs.py [--accounts 100000] [--seed 1]

Runs on the bundled example book (examples/desk.yaml, its default margin model) and on a seeded
synthetic book (`crossmargin synth`'s generator, cross margin). Needs ../shared/data (or
$CROSSMARGIN_DATA) for the historical windows and the market depth.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from crossmargin.adapters.files import load_book
from crossmargin.adapters.history.stress_windows import historical_moves, market_depth
from crossmargin.cli.stress_render import write_chart
from crossmargin.core.margin import CrossMargin, MarginModel
from crossmargin.core.stress.impact import MarketDepth, SquareRootImpact
from crossmargin.core.synthetic import SynthSpec, synth_book, synth_market
from crossmargin.engine.margin_run import make_model
from crossmargin.engine.stress import (
    CascadeResult,
    LocalShards,
    Policy,
    StressVenue,
    compare_policies,
    forward_stress,
    hypothetical_shock,
    prepare_venue,
    reverse_stress,
    run_cascade,
    split_path,
    window_shock,
)

ROOT = Path(__file__).resolve().parents[1]
POLICY = Policy(name="full/queue")
DESK_FUND_USD = 100_000.0
SYNTH_FUND_USD = 2_000_000.0
VOLUME_SHARE = 0.02  # the venue's share of the data's aggregated daily volume (assumption)
DEPTH_MULTIPLIER = 0.1  # depth down 90 %
OCT10 = {"BTC": -0.12, "ETH": -0.16, "SOL": -0.31}
STEPS = 4  # within the hour: four 15-minute steps


def usd(x: float) -> str:
    return f"{x:,.0f}"


def report_rows(results: Sequence[CascadeResult], *, key: str) -> list[str]:
    lines = [
        f"| {key} | < MM | < 0 | shortfall USD | top-10 share of loss | rounds | liquidated USD | collateral sold USD "
        "| fund in USD | fund used USD | fund left USD | ADL USD | ADL haircut USD | bad debt USD |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        name = r.policy if key == "policy" else r.label
        lines.append(
            f"| `{name}` | {r.under_maintenance:,} | {r.under_zero:,} | {usd(r.shortfall_usd)} | {r.top10_loss_share:.0%} "
            f"| {r.active_rounds} | {usd(r.liquidated_notional_usd)} | {usd(sum(r.collateral_sold_usd().values()))} "
            f"| {usd(r.fund_in_usd)} | {usd(r.fund_used_usd)} | {usd(r.fund_end_usd)} | {usd(r.adl_notional_usd)} | {usd(r.adl_haircut_usd)} "
            f"| {usd(r.bad_debt_usd)} |"
        )
    return lines


def window_rows(venue: StressVenue) -> tuple[list[str], list]:
    lines = [
        "| window | days | BTC | ETH | SOL | USDC | USDT | BTC DVOL | BTC funding | no data (moved with BTC) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    shocks = []
    for move in historical_moves():
        shock, proxied = window_shock(venue, move)
        shocks.append(shock)
        f = dict(zip(shock.factors, shock.price_factor, strict=True))

        def pct(s: str, f: dict[str, float] = f) -> str:
            return f"{f[s] - 1:+.1%}" if s in f else "–"

        vol = (
            f"{move.vol_relative_change:+.0%}"
            if move.vol_relative_change == move.vol_relative_change
            else "–"
        )
        fund = f"{move.funding_sum:+.3%}" if move.funding_sum == move.funding_sum else "–"
        lines.append(
            f"| `{move.window.name}` | {move.window.first_day} .. {move.window.last_day} | {pct('BTC')} | {pct('ETH')} "
            f"| {pct('SOL')} | {pct('USDC')} | {pct('USDT')} | {vol} | {fund} | {', '.join(proxied) or '–'} |"
        )
    return lines, shocks


def historical(venue: StressVenue, model: MarginModel, shocks: list, fund: float) -> list[CascadeResult]:
    return [forward_stress(venue, model, s, policy=POLICY, insurance_fund_usd=fund) for s in shocks]


def path_rows(result: CascadeResult) -> list[str]:
    lines = [
        "| step | round | BTC | ETH | SOL | USDC | accounts | liquidated USD | BTC USD | ETH USD | SOL USD "
        "| collateral sold USD | fund USD | ADL USD | bad debt USD |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result.rounds:
        f = dict(zip(result.factors, r.price_factor, strict=True))
        by = r.notional_by_underlying_usd
        lines.append(
            f"| {r.step + 1} | {r.round} | {f['BTC'] - 1:+.2%} | {f['ETH'] - 1:+.2%} | {f['SOL'] - 1:+.2%} | {f['USDC'] - 1:+.3%} "
            f"| {r.liquidated_accounts:,} | {usd(r.liquidated_notional_usd)} | {usd(by.get('BTC', 0))} | {usd(by.get('ETH', 0))} "
            f"| {usd(by.get('SOL', 0))} | {usd(sum(r.collateral_sold_usd.values()))} | {usd(r.fund_usd)} "
            f"| {usd(r.adl_notional_usd)} | {usd(r.bad_debt_usd)} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.perf_counter()
    img = ROOT / "docs" / "img"
    img.mkdir(parents=True, exist_ok=True)

    loaded = load_book(ROOT / "examples" / "desk.yaml")
    choice = make_model(loaded.default_model, loaded)
    desk = prepare_venue(choice.book, loaded.market)
    desk_windows, desk_shocks = window_rows(desk)
    desk_results = historical(desk, choice.model, desk_shocks, DESK_FUND_USD)

    spec = SynthSpec(n_accounts=args.accounts, seed=args.seed)
    book = synth_book(spec)
    synth = prepare_venue(book, synth_market(book.instruments))
    _, synth_shocks = window_rows(synth)
    synth_results = historical(synth, CrossMargin(), synth_shocks, SYNTH_FUND_USD)
    write_chart(synth_results, img / "stress_historical.png")

    depth = {
        s: MarketDepth(
            daily_volume_usd=d.daily_volume_usd * VOLUME_SHARE, daily_volatility=d.daily_volatility
        )
        for s, d in market_depth().items()
    }
    impact = SquareRootImpact(depth=depth, depth_multiplier=DEPTH_MULTIPLIER)
    shock = hypothetical_shock(synth.book, label="10 Oct 2025-like", moves=OCT10)
    path = split_path(shock, STEPS)
    oct10 = run_cascade(
        LocalShards.of(synth, CrossMargin()),
        synth,
        path,
        policy=POLICY,
        insurance_fund_usd=SYNTH_FUND_USD,
        impact=impact,
    )
    no_impact = run_cascade(
        LocalShards.of(synth, CrossMargin()), synth, path, policy=POLICY, insurance_fund_usd=SYNTH_FUND_USD
    )
    write_chart([oct10], img / "stress_cascade.png")
    comparison = compare_policies(
        synth, CrossMargin(), path, insurance_fund_usd=SYNTH_FUND_USD, impact=impact
    )
    write_chart(comparison, img / "stress_policies.png")
    direction = hypothetical_shock(
        synth.book, label="crypto -10 %", moves={"BTC": -0.1, "ETH": -0.1, "SOL": -0.1}
    )
    reverse = reverse_stress(
        synth,
        CrossMargin(),
        direction,
        policy=Policy(name="full/no-adl", adl_policy=None),
        insurance_fund_usd=SYNTH_FUND_USD,
        impact=impact,
        tolerance=1e-3,
    )
    depeg = forward_stress(
        synth,
        CrossMargin(),
        hypothetical_shock(synth.book, label="USDC -12 %", moves={"USDC": -0.12}),
        policy=POLICY,
        insurance_fund_usd=SYNTH_FUND_USD,
    )
    elapsed = time.perf_counter() - started

    depth_rows = [
        "| asset | daily volume USD (data) | venue share | depth x | V used USD | daily vol σ |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s in ("BTC", "ETH", "SOL", "USDC", "USDT"):
        d = market_depth()[s]
        depth_rows.append(
            f"| {s} | {usd(d.daily_volume_usd)} | {VOLUME_SHARE:.0%} | {DEPTH_MULTIPLIER:g} "
            f"| {usd(d.daily_volume_usd * VOLUME_SHARE * DEPTH_MULTIPLIER)} | {d.daily_volatility:.2%} |"
        )

    s = reverse.search
    text = "\n".join(
        [
            "# Venue-wide stress, cascades and contagion",
            "",
            "Generated by `python scripts/stress_docs.py` (do not edit by hand); "
            f"{args.accounts:,}-account synthetic book seed {args.seed}; ran in {elapsed:.0f} s.",
            "",
            "The question a venue's risk team asks: if the market gaps, who is liquidated, how far do the",
            "liquidations push prices, how much of the insurance fund is left, how much ADL and bad debt remain?",
            "`crossmargin stress` answers it for a scenario, `crossmargin cascade` follows the liquidations",
            "round by round through price impact, `crossmargin synth` writes books to ask it at scale.",
            "",
            "Every table below is the venue-wide report of one scenario: accounts under maintenance and",
            "under zero equity at the shock, their total shortfall, the top 10 accounts' share of the loss,",
            "the rounds the cascade took, notional liquidated and collateral sold, what flowed into the",
            "insurance fund (liquidation fees, collected before it pays, and ADL haircuts beyond the deficit:",
            "`fees_usd` and `adl_surplus_usd` in `--json`), what it paid and what is left (left = given + in",
            "- used), ADL volume and the haircuts winners bore (`--json` lists the ten largest bearers), and",
            "bad debt.",
            "",
            "## How a stress runs",
            "",
            "A stress scenario is a row of a `ScenarioSet` (price factor per risk factor, vol shift per",
            "option, funding paid by perpetuals), put through the engine's one revaluation path:",
            "`engine.stress.screen` revalues a whole set at once (`revalue_scenarios`, the scenario pass of",
            "portfolio margin and VaR) for every account's P&L; a forward stress or cascade re-margins the",
            "venue at the shocked market with the long-lived `RiskEngine` (`on_book`, or `on_holdings` for",
            "the accounts a round changed at unchanged prices); tests hold the two equal.",
            "",
            "Each round, every account below maintenance is liquidated (`core.stress.liquidation`): the",
            "full policy closes everything, the partial one the fraction that restores equity/MM to the",
            "exit coverage (1.25); closed contracts settle at the round's mark, a 0.5 % fee goes to the",
            "insurance fund, negative cash is repaid by selling the account's collateral (its price moves",
            "too: ETH posted against BTC positions, a stablecoin sold in a depeg). A deficit left after",
            "that goes to the waterfall (`core.stress.waterfall`): the fund, then ADL with the ledger's",
            "policies (`core.liquidation.adl`: `queue`, `random_start`, `pro_rata`, `risk_aware`), then bad",
            "debt. Holdings, fees, deficits, fund and haircuts are integers (lots of 1e-8 contract, 1e-6",
            "USD, 1e-8 of an asset); what crosses shards is integer sums, which is why the Dask backend",
            "gives the single-process numbers exactly.",
            "",
            "Price impact (`core.stress.impact`, the square-root law of Almgren et al. 2005 and Tóth et al.",
            "2011): the price after round r is the shocked price × (1 − sign·Y·σ·√(|Q|/V)), Q the cumulative",
            "net liquidation flow (USD, sells negative) on that asset, V its daily volume times the depth",
            "multiplier, σ its daily volatility, Y = 1; or a depth curve when given. The cascade stops at the",
            "fixed point (a round that liquidates nothing).",
            "",
            "Depth used below: the data's 30-day mean daily volume and daily volatility before its last day",
            f"(`adapters.history.stress_windows.market_depth`), times an assumed venue share of {VOLUME_SHARE:.0%},",
            f"times {DEPTH_MULTIPLIER:g} (depth down 90 %):",
            "",
            *depth_rows,
            "",
            "## Historical windows",
            "",
            "Joint close-to-close moves from the day before the window to its last day (Yahoo daily closes;",
            "`--trough` uses each asset's low instead). BTC DVOL (the only implied vol in the data, from",
            "2022-11) moves every option's vol by its relative change; BTC funding (from 2019-09) is paid by",
            "every perpetual. A factor without data moves with BTC (named); a stablecoin without data stays",
            "at par. The three `worst-2d` windows are the data's worst 2-day BTC+ETH moves outside the named ones.",
            "",
            *desk_windows,
            "",
            f"### The bundled desk (`examples/desk.yaml`, {desk.book.n_accounts} accounts, `{choice.name}` margin, fund {usd(DESK_FUND_USD)} USD)",
            "",
            *report_rows(desk_results, key="window"),
            "",
            "A desk of a few accounts is not a venue (the top-10 share is 100 % by construction), but it",
            "shows every column on a book whose positions one can read.",
            "",
            f"### A synthetic venue ({args.accounts:,} accounts, cross margin, fund {usd(SYNTH_FUND_USD)} USD)",
            "",
            "Heavy-tailed equity (Pareto α 1.3 above 500 USD, 5 whales), lognormal leverage (median 3×),",
            "60 % of perpetual positions long, 5 % of accounts selling OTM BTC options, collateral mostly",
            "stablecoins, some BTC and ETH (`core.synthetic`).",
            "",
            *report_rows(synth_results, key="window"),
            "",
            "![historical stresses](img/stress_historical.png)",
            "",
            f"A USDC depeg of 12 % (hypothetical, no price move): {depeg.under_maintenance:,} accounts under MM,",
            f"{usd(depeg.liquidated_notional_usd)} USD liquidated, {usd(sum(depeg.collateral_sold_usd().values()))} USD of collateral sold,",
            f"fund used {usd(depeg.fund_used_usd)} USD, bad debt {usd(depeg.bad_debt_usd)} USD.",
            "",
            "## A cascade: the 10 October 2025-like shock",
            "",
            f"BTC −12 %, ETH −16 %, SOL −31 % reached in {STEPS} steps within the hour, depth down 90 %,",
            f"{args.accounts:,}-account synthetic book, `full/queue`. Each step runs rounds to the fixed point:",
            "",
            *path_rows(oct10),
            "",
            f"Without impact the same path liquidates {usd(no_impact.liquidated_notional_usd)} USD and leaves",
            f"{usd(no_impact.bad_debt_usd)} USD of bad debt; with it, {usd(oct10.liquidated_notional_usd)} USD and",
            f"{usd(oct10.bad_debt_usd)} USD. Final prices: "
            + ", ".join(
                f"{k} {v - 1:+.2%}"
                for k, v in oct10.summary()["final_price_factor"].items()
                if k in ("BTC", "ETH", "SOL", "USDC", "USDT")
            )
            + ".",
            "",
            "![cascade](img/stress_cascade.png)",
            "",
            "## The same shock under every liquidation policy",
            "",
            *report_rows(comparison, key="policy"),
            "",
            "![policies](img/stress_policies.png)",
            "",
            "Reading it: `queue` and `random_start` deleverage the whole bankrupt position (as those venues",
            "do), so their haircuts overshoot the deficit and refill the fund; `pro_rata` and `risk_aware`",
            "take only what the deficit needs; `no-adl` leaves what the fund cannot pay as bad debt; what",
            "remains under ADL is deficit on options (no ADL queue) or beyond the winners' profits. On this",
            f"shock: least liquidated `{min(comparison, key=lambda r: r.liquidated_notional_usd).policy}`,"
            f" least bad debt `{min(comparison, key=lambda r: r.bad_debt_usd).policy}`,"
            f" most of the fund left `{max(comparison, key=lambda r: r.fund_end_usd).policy}`, least ADL volume"
            f" `{min((r for r in comparison if r.adl_notional_usd > 0), key=lambda r: r.adl_notional_usd, default=comparison[0]).policy}`.",
            "",
            "## Reverse stress",
            "",
            'The smallest scale k of the direction "crypto −10 %" (BTC, ETH, SOL each × 0.9^k) whose cascade',
            "(with impact, no ADL) leaves deficits above the insurance fund plus the fees it collects, by",
            "bracketing then Brent's method (`core.stress.reverse`):",
            "",
            f"- k = {s.scale:.4f} (bracket [{s.lower:.4f}, {s.upper:.4f}], {s.evaluations} forward stresses): "
            f"a move of {0.9**s.upper - 1:+.2%} on each exhausts the {usd(SYNTH_FUND_USD)} USD fund;",
            f"- just below, the fund's lowest point along the cascade is {usd(min(r.fund_usd for r in reverse.holds.rounds))} USD"
            f" and no bad debt; at it, {usd(min(r.fund_usd for r in reverse.breaks.rounds))} USD and"
            f" {usd(reverse.breaks.bad_debt_usd)} USD of bad debt (later rounds' fees refill the fund to"
            f" {usd(reverse.breaks.fund_end_usd)} USD).",
            "",
            "## Reproduce",
            "",
            "```",
            "crossmargin stress examples/desk.yaml --fund 100000 --chart stress.png",
            f"crossmargin synth --accounts {args.accounts} --seed {args.seed} --out book/",
            "crossmargin stress book/ --fund 5000000 --json",
            f"crossmargin cascade book/ --shock BTC=-0.12,ETH=-0.16,SOL=-0.31 --steps {STEPS} --depth-multiplier 0.1 "
            f"--volume-share {VOLUME_SHARE} --fund 5000000 --compare-policies",
            "crossmargin cascade book/ --shock BTC=-0.12,ETH=-0.16,SOL=-0.31 --cluster local --shards 2",
            "crossmargin stress book/ --no-historical --shock BTC=-0.1,ETH=-0.1,SOL=-0.1 --reverse fund",
            "```",
            "",
            "Assumptions stated: the venue share of volume and the depth multiplier above; liquidations",
            "execute at the round's mark and move the price for the next round; ADL trades off-market; the",
            "synthetic book's shape parameters; the desk's balances and positions are illustrative (its file",
            "says which market data are real).",
            "",
        ]
    )
    out = ROOT / "docs" / "stress.md"
    handle, tmp = tempfile.mkstemp(prefix=".stress.", suffix=".md", dir=out.parent)
    with os.fdopen(handle, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, out)
    print(f"wrote {out} in {elapsed:.0f} s")


if __name__ == "__main__":
    main()
