"""Compare the ADL policies on one shock and write docs/adl.md.

    python bench/adl_compare.py            # prints the table and rewrites docs/adl.md

The shock: a BTC linear perpetual (flat 10 % IM / 5 % MM), three leveraged longs (10, 6 and 4
contracts at 40,000 with 42,000, 25,000 and 17,000 USDC), eight shorts of different sizes and
leverage on the other side, an insurance fund of 2,000 USDC, no impact or fees (so every number
is by hand). BTC falls to 35,000 in one step: the three longs are bankrupt, the fund pays the
first deficit and runs dry, ADL covers the rest. Each policy runs on the same ledger.
"""

from __future__ import annotations

import math
from pathlib import Path

from crossmargin.core.assets import Asset, AssetTable
from crossmargin.core.instruments import Instrument, InstrumentKind, InstrumentTable, MarginSchedule
from crossmargin.core.ledger.events import Deposit, PriceUpdate, TradeFill
from crossmargin.core.ledger.postings import INSURANCE
from crossmargin.core.ledger.state import LedgerConfig, LedgerState, LiquidationParams, WaterfallParams
from crossmargin.core.liquidation.adl import ADL_POLICIES
from crossmargin.engine.simulation import Simulation

T0 = 1_704_067_200 * 10**9
USDC = 10**6
LONGS = {"long-a": (10, 42_000), "long-b": (6, 25_000), "long-c": (4, 17_000)}
SHORTS = {  # contracts, USDC deposit: leverage differs by deposit
    "short-1": (6, 30_000),
    "short-2": (5, 200_000),
    "short-3": (3, 15_000),
    "short-4": (2, 100_000),
    "short-5": (1, 5_000),
    "short-6": (1, 60_000),
    "short-7": (1, 6_000),
    "short-8": (1, 50_000),
}


def run(policy: str) -> dict[str, float]:
    schedule = MarginSchedule.flat(initial_rate=0.10, maintenance_rate=0.05)
    config = LedgerConfig(
        instruments=InstrumentTable.from_instruments(
            [Instrument(id="BTC-PERP", kind=InstrumentKind.PERPETUAL, underlying="BTC", margin=schedule)]
        ),
        assets=AssetTable.from_assets([Asset(symbol="USDC")]),
        decimals={"USDC": 6},
        quote_asset="USDC",
        valuation_ns=T0,
        taker_fee_rate=0.0,
        maker_fee_rate=0.0,
        liquidation=LiquidationParams(fee_rate=0.0, impact_bps=0.0, depth_usd=math.inf),
        waterfall=WaterfallParams(adl_policy=policy, seed=7),
    )
    traders = (*LONGS, *SHORTS)
    sim = Simulation(config=config, state=LedgerState.open(config, traders, {"BTC": 40_000.0, "USDC": 1.0}))
    for who, (_, usdc) in {**LONGS, **SHORTS}.items():
        sim.submit(Deposit(account=who, asset="USDC", amount_units=usdc * USDC, as_of_ns=T0))
    sim.submit(Deposit(account=INSURANCE, asset="USDC", amount_units=2_000 * USDC, as_of_ns=T0))
    shorts = [[who, q] for who, (q, _) in SHORTS.items()]
    for who, (q, _) in LONGS.items():
        left = q
        while left:
            seller = next(s for s in shorts if s[1] > 0)
            take = min(left, seller[1])
            assert sim.submit(
                TradeFill(
                    taker=who,
                    maker=seller[0],
                    instrument="BTC-PERP",
                    quantity=take,
                    price=40_000.0,
                    as_of_ns=T0,
                )
            ), sim.rejected[-1]
            seller[1] -= take
            left -= take
    sim.step(PriceUpdate(index_prices={"BTC": 35_000.0}, as_of_ns=T0 + 1))
    rounds = [r.detail for r in sim.records if r.kind == "adl"]
    waterfalls = [r.detail for r in sim.records if r.kind == "waterfall"]
    haircuts: dict[str, int] = {}
    for r in rounds:
        for who, units in r["haircut_units"].items():
            haircuts[who] = haircuts.get(who, 0) + units
    deficit = sum(r["deficit_units"] for r in rounds) / USDC
    overshoot = sum(r["overshoot_units"] for r in rounds) / USDC
    return {
        "bankrupt_deficit": sum(w["deficit_units"] for w in waterfalls) / USDC,
        "insurance_paid": sum(w["paid_units"].get("insurance", 0) for w in waterfalls) / USDC,
        "adl_deficit": deficit,
        "contracts": sum(r["contracts"] for r in rounds),
        "notional": sum(r["notional_usd"] for r in rounds),
        "haircut_total": sum(haircuts.values()) / USDC,
        "overshoot": overshoot,
        "ratio": (deficit + overshoot) / deficit if deficit else float("nan"),
        "traders_hit": len(haircuts),
        "max_haircut": max(haircuts.values(), default=0) / USDC,
        "bad_debt": -sim.state.balance("@bad_debt", "USDC") / USDC,
        "fund_after": sim.state.balance(INSURANCE, "USDC") / USDC,
    }


def table() -> str:
    head = (
        "| policy | contracts deleveraged | notional USD | deficit to ADL USDC | haircuts USDC | overshoot USDC "
        "| taken / deficit | traders hit | largest haircut USDC | fund after USDC | bad debt USDC |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    rows = []
    for policy in ADL_POLICIES:
        r = run(policy)
        rows.append(
            f"| `{policy}` | {r['contracts']} | {r['notional']:,.0f} | {r['adl_deficit']:,.2f} | {r['haircut_total']:,.2f} "
            f"| {r['overshoot']:,.2f} | {r['ratio']:.2f}× | {r['traders_hit']} | {r['max_haircut']:,.2f} "
            f"| {r['fund_after']:,.2f} | {r['bad_debt']:,.2f} |"
        )
    first = run("queue")
    return (
        head
        + "\n".join(rows)
        + (
            f"\n\nAll policies: bankrupt deficits {first['bankrupt_deficit']:,.2f} USDC in total, "
            f"insurance fund paid {first['insurance_paid']:,.2f} USDC before running dry.\n"
        )
    )


DOC = """# Auto-deleveraging policies side by side

Generated by `python bench/adl_compare.py` (do not edit by hand).

{doc}

## Result

{table}
## Reading it

- *deficit to ADL* is what was left of the bankrupt accounts' deficits after the liquidation fee
  and the insurance fund (stages in `WaterfallParams.stages`).
- *haircuts* is what the deleveraged winners gave up: each slice of x contracts costs x × gap,
  gap = the bankrupt position's deficit per contract (mark to bankruptcy price), capped by the
  winner's profit. *overshoot* = haircuts − deficit, credited back to the insurance fund.
- `queue` (profit % × leverage: Binance, BitMEX, Hyperliquid) and `random_start` (dYdX v4)
  deleverage the whole bankrupt position, as those venues do, so they take the full mark-to-
  bankruptcy loss even when the fund had covered part of it: the overshoot is the fund's share
  (the Hyperliquid October 2025 pattern, where ADL took far more than the bad debt it covered).
  `pro_rata` and `risk_aware` deleverage only ceil(deficit / gap) contracts, so the overshoot is
  under one contract's gap; `risk_aware` puts more of it on the most leveraged winners.
"""


def main() -> None:
    text = table()
    print(text)
    target = Path(__file__).resolve().parents[1] / "docs" / "adl.md"
    target.write_text(DOC.format(doc=(__doc__ or "").split("\n\n", 2)[2].strip(), table=text))


if __name__ == "__main__":
    main()
