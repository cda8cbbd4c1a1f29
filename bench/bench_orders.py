"""A market maker's resting orders: what every check of its account costs as its book deepens.

    python bench/bench_orders.py [--depths 1,10,100,1000] [--repeats 5]

A resting order that would increase risk reserves the IM it would add if filled
(`core.ledger.reservation`); every command that checks the account (a new order, a withdrawal, a
fill against one of its orders) and its margin row read that reservation. On the desk venue
(examples/desk.yaml) one trader rests N orders on four instruments (linear and inverse
perpetuals, an inverse future; buys and sells of 1-3 contracts at spread prices: at most 24
distinct sizes, a market maker's quotes), then, per depth N, CPU of:

    reserved_us        `decide.reserved_usd` of the account (one few-accounts kernel call over the
                       positions now and one position set per distinct order size)
    reserved_distinct_us  the same reservation when every order has a size of its own (N + 1
                       position sets: the worst case, what every depth cost before sizes were
                       counted)
    reference_us       the same sum by the per-order reference in the same run
                       (`reservation.im_with_order_by_risk_view`: a ledger transaction and a risk
                       view per order, summed exactly; what the venue ran two rounds before)
    place_order_us     deciding one more order (`decide.decide`, pure: nothing applied)
    withdraw_us        deciding a withdrawal of the account
    fill_us            deciding a fill against its first order (the generic path, `decide.decide`)
    fill_lane_us       the same fill decided by the fill lane (`fill_lane.fill_effects`, what the
                       venue runs for it; checked equal to the generic effects)

Best of `--repeats`, CROSSMARGIN_KERNEL=simd (compiled kernels). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import compiled_kernels, cpu_model

BOOK = Path(__file__).resolve().parents[1] / "examples" / "desk.yaml"
MAKER, TAKER = "basis-trader", "vol-seller"
PRICE_USD = {
    "BTC-USDC-PERP": 88_000.0,
    "ETH-USDC-PERP": 3_000.0,
    "BTC-PERPETUAL": 88_000.0,
    "BTC-27MAR26": 89_000.0,
}


def best_us(call: Callable[[], object], repeats: int) -> float:
    """Best CPU microseconds of one call over `repeats` timed rounds (each of enough calls to last
    ~20 ms)."""
    call()
    start = time.process_time()
    call()
    one = max(time.process_time() - start, 1e-6)
    number = max(1, int(0.02 / one))
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(number):
            call()
        best = min(best, (time.process_time() - start) / number)
    return best * 1e6


def depth_run(depth: int, repeats: int) -> dict[str, Any]:
    from crossmargin.adapters.clock import SystemClock
    from crossmargin.adapters.sql.runner import genesis_of_book
    from crossmargin.core.ledger.reservation import im_with_order_by_risk_view, reserved_im_usd
    from crossmargin.core.ledger.state import risk_view
    from crossmargin.engine.decide import _sub, decide, reserved_usd
    from crossmargin.engine.fill_lane import fill_effects
    from crossmargin.engine.memory import MemoryEventStore
    from crossmargin.engine.venue import Deposit, Fill, PlaceOrder, Venue, VenueSettings, Withdraw

    venue = Venue.open(
        MemoryEventStore(),
        genesis_of_book(str(BOOK)),
        clock=SystemClock(),
        settings=VenueSettings(snapshot_every=10**9),
    )
    try:
        venue.execute(Deposit(idempotency_key="fund", account=MAKER, asset="USDC", amount_units=10**14))
        instruments = list(PRICE_USD)
        for k in range(depth):
            instrument = instruments[k % len(instruments)]
            side = 1 if k % 2 else -1
            venue.execute(
                PlaceOrder(
                    idempotency_key=f"rest-{k}",
                    account=MAKER,
                    order_id=f"o{k:05d}",
                    instrument=instrument,
                    quantity=side * (1 + k % 3),
                    price=PRICE_USD[instrument] * (1.0 - side * 0.001 * (1 + k % 7)),
                )
            )
        state, config = venue._state, venue.config
        now = state.time_ns + 1
        orders = state.orders_of(MAKER)
        assert len(orders) == depth
        sub = _sub(state, config, [MAKER])

        def reference() -> float:
            now_im = float(risk_view(sub, config, (MAKER,)).result.initial_margin_usd[0])
            return math.fsum(
                max(
                    im_with_order_by_risk_view(sub, config, MAKER, (o.instrument, o.quantity, o.price))
                    - now_im,
                    0.0,
                )
                for o in orders
            )

        reserved = reserved_usd(state, config, MAKER, sub)
        # Every order a size of its own (k + 1 contracts each side): N distinct rows.
        distinct = [
            (o.instrument, (k + 1) * (1 if o.quantity > 0 else -1), o.price) for k, o in enumerate(orders)
        ]
        if reserved != reference():
            raise SystemExit(f"depth {depth}: one-call reservation {reserved!r} != reference {reference()!r}")
        first = orders[0]
        place = PlaceOrder(
            idempotency_key="p",
            account=MAKER,
            order_id="new",
            instrument="BTC-USDC-PERP",
            quantity=1,
            price=87_500.0,
        )
        withdraw = Withdraw(idempotency_key="w", account=MAKER, asset="USDC", amount_units=10**6)
        fill = Fill(
            idempotency_key="f",
            taker=TAKER,
            maker=MAKER,
            instrument=first.instrument,
            quantity=-1 if first.quantity > 0 else 1,
            price=first.price,
            order_id=first.order_id,
        )
        if fill_effects(state, config, fill, now) != decide(state, config, fill, now):
            raise SystemExit(f"depth {depth}: the fill lane's effects differ from the generic path's")
        return {
            "depth": depth,
            "reserved_usd": reserved,
            "distinct_sizes": len(state.order_sizes_of(MAKER)),
            "reserved_us": best_us(lambda: reserved_usd(state, config, MAKER, sub), repeats),
            "reserved_distinct_us": best_us(lambda: reserved_im_usd(sub, config, MAKER, distinct), repeats),
            "reference_us": best_us(reference, repeats),
            "place_order_us": best_us(lambda: decide(state, config, place, now), repeats),
            "withdraw_us": best_us(lambda: decide(state, config, withdraw, now), repeats),
            "fill_us": best_us(lambda: decide(state, config, fill, now), repeats),
            "fill_lane_us": best_us(lambda: fill_effects(state, config, fill, now), repeats),
        }
    finally:
        venue.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--depths", default="1,10,100,1000", help="resting orders of the account, comma-separated"
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"CROSSMARGIN_KERNEL={compiled_kernels()} (steady state: compiled kernels, bench/machine.py)")
    runs = []
    for depth in (int(d) for d in args.depths.split(",")):
        run = depth_run(depth, args.repeats)
        runs.append(run)
        print(
            f"{depth:5d} resting orders ({run['distinct_sizes']} sizes): reservation {run['reserved_us']:9.0f} us "
            f"(all sizes distinct {run['reserved_distinct_us']:9.0f} us) "
            f"(per-order reference {run['reference_us']:9.0f} us, x{run['reference_us'] / run['reserved_us']:.1f}); "
            f"decide place_order {run['place_order_us']:8.0f} us, withdraw {run['withdraw_us']:8.0f} us, "
            f"fill of its order {run['fill_us']:8.0f} us (by the fill lane {run['fill_lane_us']:8.0f} us)"
        )
    print(json.dumps({"benchmark": "orders", "runs": runs, "cpu": cpu_model()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
