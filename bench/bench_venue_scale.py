"""What one command costs as the venue grows: CPU per fill, transfer, order placement and
withdrawal on a small venue and on a large one, in the same run.

A command touches one or two accounts, so its cost should not depend on how many other accounts,
positions and resting orders the venue holds. Each venue is grown through its own commands
(open, fund, one BTC perpetual fill per pair, one resting order per account:
`bench_service_stress.grow` plus orders), then the same commands are timed between two of its
accounts, one at a time (`Venue.execute`, durable SQLite WAL FULL, CPU of this process). The
baseline is the small venue: `growth_ratio` (large / small CPU per command) near 1 says a
command is O(its accounts); before 2026-12-05 every command walked the venue's positions and
resting orders.

Then a crash: BTC at half its price on a venue of `--crash` accounts, with a funded insurance
fund (the usual case: the fund absorbs each liquidation's loss) and with an empty one (every
loss goes on to ADL over the holders of the market), timed to the tick's ack; the empty-fund
crash twice: ADL's candidates given to the ledger from the monitor (the sub-state holds the
winners) and, the baseline, held in the decision's sub-state (each decision margins them all).

    python bench/bench_venue_scale.py [--small 1000] [--large 40000] [--commands 300] [--crash 2000]

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_engine import cpu_model
from bench_service import command_of
from bench_service_stress import BOOK, grow, wait_all
from crossmargin.adapters.clock import SystemClock
from crossmargin.adapters.sql import SqlEventStore
from crossmargin.adapters.sql.runner import genesis_of_book
from crossmargin.core.ledger.postings import INSURANCE
from crossmargin.engine.venue import (
    CancelOrder,
    Command,
    Deposit,
    OpenAccount,
    PlaceOrder,
    SettleExpiry,
    SettleFunding,
    UpdatePrices,
    Venue,
    VenueSettings,
    Withdraw,
)
from machine import compiled_kernels


def grown(
    directory: str, accounts: int, seed: int, tag: str = "", settings: VenueSettings | None = None
) -> Venue:
    """A durable venue with `accounts` funded traders, a perpetual position each and one resting
    order each (a bid well below the market: reserves margin, never fills)."""
    store = SqlEventStore.connect(f"sqlite:///{Path(directory) / f'venue-{accounts}{tag}.db'}")
    venue = Venue.open(
        store, genesis_of_book(BOOK), clock=SystemClock(), settings=settings or VenueSettings()
    )
    grow(venue, accounts, seed)
    price = venue.prices()["BTC"]
    names = [a for a in venue.accounts() if a.startswith("t")]
    wait_all(
        [
            venue.submit(
                PlaceOrder(
                    idempotency_key=f"order-{a}",
                    account=a,
                    order_id=f"bid-{a}",
                    instrument="BTC-USDC-PERP",
                    quantity=1,
                    price=round(price * 0.5, 1),
                )
            )
            for a in names
        ]
    )
    return venue


def commands_of(kind: str, n: int, a: str, b: str, price: float) -> list[Command]:
    if kind in ("fill", "transfer"):  # bench_service's, between a and b, in turn each way
        return [command_of(kind[0], i, kind, pair=(a, b), price=price) for i in range(n)]
    if kind == "withdraw":
        return [Withdraw(idempotency_key=f"w-{i}", account=a, asset="USDC", amount_units=1) for i in range(n)]
    # place_order: placed and cancelled in turn, so the account keeps one or two resting orders
    # (each order's reservation is its own what-if: the cost grows with the account's orders).
    return [
        PlaceOrder(
            idempotency_key=f"o-{i}",
            account=a,
            order_id=f"extra-{i}",
            instrument="BTC-USDC-PERP",
            quantity=1,
            price=round(price * 0.5, 1),
        )
        if i % 2 == 0
        else CancelOrder(idempotency_key=f"c-{i}", account=a, order_id=f"extra-{i - 1}")
        for i in range(n)
    ]


KINDS = ("fill", "transfer", "withdraw", "place_order")  # place_order: place/cancel in turn
# The desk's options (held by one account each, examples/desk.yaml), expired one by one, and its SOL
# perpetual (two holders) funded: lifecycle commands on instruments few accounts hold.
DESK_OPTIONS = (
    "BTC-30JAN26-100000-C",
    "BTC-30JAN26-105000-C",
    "BTC-30JAN26-80000-P",
    "BTC-30JAN26-85000-P",
    "ETH-30JAN26-2600-P",
    "ETH-30JAN26-3400-C",
)


def lifecycle_wall_us(venue: Venue, n: int) -> dict[str, float]:
    """Wall time to the ack of a SettleFunding of the SOL perpetual (`n` periods) and of a
    SettleExpiry of each of the desk's options (their expiry has passed on the system clock).
    Wall, not CPU: they run the monitor's kernels on their threads (measured: CPU per command
    equals the wall time within a few %, once the first has built the monitor)."""
    out = {}
    # The first lifecycle command builds the monitor's whole-book engine (the venue's first since
    # the accounts were opened: O(accounts), once); untimed, as the first of each kind above.
    venue.execute(SettleFunding(idempotency_key="fund-first", instrument="SOL-USDC-PERP", funding_rate=1e-4))
    t0 = time.perf_counter()
    for i in range(n):
        funding = SettleFunding(idempotency_key=f"fund-{i}", instrument="SOL-USDC-PERP", funding_rate=1e-4)
        venue.execute(funding)
    out["settle_funding"] = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    for name in DESK_OPTIONS:
        venue.execute(SettleExpiry(idempotency_key=f"expire-{name}", instrument=name, settlement_price=1.0))
    out["settle_expiry"] = (time.perf_counter() - t0) / len(DESK_OPTIONS) * 1e6
    return out


def tick_ms(venue: Venue, n: int) -> dict[str, float]:
    """Median wall time to the ack of a BTC price tick (margin cycle, calls, liquidations), `n`
    ticks in a row and `n` each right after an OpenAccount: the venue's sign-ups between ticks."""
    btc = venue.prices()["BTC"]

    def tick(key: str, i: int) -> float:
        t0 = time.perf_counter()
        venue.execute(UpdatePrices(idempotency_key=key, index_prices={"BTC": btc * (1 + 0.001 * (i % 5))}))
        return (time.perf_counter() - t0) * 1e3

    tick("tick-first", 0)  # builds the monitor if no tick did
    plain = [tick(f"tick-{i}", i) for i in range(n)]
    opened = []
    for i in range(n):
        venue.execute(OpenAccount(idempotency_key=f"open-new-{i}", account=f"new-{i:04d}"))
        opened.append(tick(f"tick-open-{i}", i))
    return {"tick": float(np.median(plain)), "tick_after_open_account": float(np.median(opened))}


def per_command_cpu_us(venue: Venue, n: int) -> dict[str, float]:
    names = [a for a in venue.accounts() if a.startswith("t")]
    a, b = names[0], names[1]
    price = venue.prices()["BTC"]
    out = {}
    for kind in KINDS:
        commands = commands_of(kind, n, a, b, price)
        venue.execute(commands[0])  # the first of a kind compiles nothing but warms its path
        cpu0 = time.process_time()
        for command in commands[1:]:
            venue.execute(command)
        out[kind] = (time.process_time() - cpu0) / (n - 1) * 1e6
    return out


def crash_tick(
    directory: str, accounts: int, insurance_usdc: int, seed: int, *, candidates_given: bool = True
) -> dict[str, Any]:
    """A grown venue, its insurance fund holding `insurance_usdc`, then BTC at half its price in
    one UpdatePrices: wall and CPU until that tick's ack (the monitor cycle and every liquidation
    it causes are decided and committed before it), and what the liquidations did.
    `candidates_given=False`: the baseline for ADL, each decision holding every opposite holder
    of the market and margining them itself (the path before ADL read the monitor's equity)."""
    venue = grown(
        directory,
        accounts,
        seed,
        tag=f"-crash-{insurance_usdc}-{candidates_given}",
        settings=VenueSettings(adl_candidates_from_monitor=candidates_given),
    )
    if insurance_usdc:
        wait_all(
            [
                venue.submit(
                    Deposit(
                        idempotency_key="fund",
                        account=INSURANCE,
                        asset="USDC",
                        amount_units=insurance_usdc * 10**6,
                    )
                )
            ]
        )
    btc = venue.prices()["BTC"]
    t0, cpu0 = time.perf_counter(), time.process_time()
    ack = venue.execute(UpdatePrices(idempotency_key="crash", index_prices={"BTC": btc * 0.5}))
    wall_s, cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    liquidations = venue.records(ack.sequence + 1, 1_000_000)
    stages = [r[0] for record in liquidations for r in record.decoded()["effects"].get("records", [])]
    venue.close()
    return {
        "accounts": accounts,
        "insurance_usdc": insurance_usdc,
        "adl_candidates": "given" if candidates_given else "held",
        "tick_s": wall_s,
        "tick_cpu_s": cpu_s,
        "liquidations": len(liquidations),
        "adl_records": stages.count("adl"),
        "ms_per_liquidation": wall_s / max(len(liquidations), 1) * 1e3,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=40_000)
    parser.add_argument("--commands", type=int, default=300)
    parser.add_argument(
        "--crash", type=int, default=2_000, help="accounts of the crash-tick venue (0 skips the crash tick)"
    )
    parser.add_argument("--seed", type=int, default=20250601)
    args = parser.parse_args(argv)
    print(f"CROSSMARGIN_KERNEL={compiled_kernels()}")
    print(f"bench_venue_scale: CPU {cpu_model()}, load {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    results: dict[str, Any] = {"cpu": cpu_model()}
    with tempfile.TemporaryDirectory() as tmp:
        for size in (args.small, args.large):
            t0 = time.perf_counter()
            venue = grown(tmp, size, args.seed)
            built_s = time.perf_counter() - t0
            state = venue._state  # read-only: the figures below say how big the venue is
            shape = {
                "accounts": len(state.traders),
                "positions": len(state.positions),
                "orders": len(state.orders),
            }
            cpu = per_command_cpu_us(venue, args.commands)
            wall = lifecycle_wall_us(venue, 50)
            ticks = tick_ms(venue, 10)
            venue.close()
            results[str(size)] = {
                **shape,
                "grown_s": built_s,
                "cpu_us": cpu,
                "lifecycle_wall_us": wall,
                "tick_ms": ticks,
            }
            print(
                f"{shape['accounts']:>7,} accounts, {shape['positions']:>7,} positions, {shape['orders']:>7,} "
                f"resting orders (grown in {built_s:.1f} s): CPU per command "
                + ", ".join(f"{k} {v:,.0f} us" for k, v in cpu.items())
                + "; wall to the ack of "
                + ", ".join(f"{k} {v:,.0f} us" for k, v in wall.items())
                + f"; tick p50 {ticks['tick']:.1f} ms, right after an OpenAccount {ticks['tick_after_open_account']:.1f} ms"
            )
        runs = [(10**9, True), (0, True), (0, False)] if args.crash else []
        crash = [crash_tick(tmp, args.crash, fund, args.seed, candidates_given=given) for fund, given in runs]
    for c in crash:
        print(
            f"crash tick (BTC -50 %), {c['accounts']:,} accounts, insurance fund {c['insurance_usdc']:,} USDC, "
            f"ADL candidates {c['adl_candidates']}: "
            f"{c['liquidations']:,} liquidations ({c['adl_records']:,} reaching ADL) before the tick's ack, "
            f"{c['tick_s']:.2f} s ({c['ms_per_liquidation']:.1f} ms a liquidation), CPU {c['tick_cpu_s']:.2f} s"
        )
    results["crash_ticks"] = crash
    small, large = (
        results[str(n)]["cpu_us"] | results[str(n)]["lifecycle_wall_us"] | results[str(n)]["tick_ms"]
        for n in (args.small, args.large)
    )
    results["growth_ratio"] = {k: large[k] / small[k] for k in small}
    print(
        "large / small venue, per command (CPU; wall for the lifecycle; 1 = independent of the venue's size): "
        + ", ".join(f"{k} {v:.2f}x" for k, v in results["growth_ratio"].items())
    )
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
