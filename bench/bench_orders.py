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

Then, at the deepest depth, order entry through the venue (`venue_run`): new orders and their
cancels alternating, one command per call, 128 in flight, SQLite, beside deposits in the same
venue (its cheapest command) in the same run: commands/s and CPU per command.

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
    from crossmargin.engine.memory import MemoryEventStore
    from crossmargin.engine.venue import Deposit, Fill, PlaceOrder, Venue, VenueSettings, Withdraw
    from crossmargin.engine.venue.decide import _sub, decide, reserved_usd
    from crossmargin.engine.venue.fill_lane import fill_effects

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
            venue.execute(_resting_order(k, instruments))
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


def venue_run(depth: int, n: int, in_flight: int = 128) -> dict[str, Any]:
    """Order entry through the venue, durable: the maker rests `depth` orders, then `n` commands
    alternate a new order and its cancel, one command per call (`Venue.submit_with_callback`),
    `in_flight` in flight, SQLite (WAL, synchronous=FULL) in a temporary directory; beside them,
    in the same venue, `n` deposits the same way (the cheapest command: the venue's own floor in
    this run). Commands/s and this process's CPU per command."""
    import queue
    import tempfile
    import threading

    from crossmargin.adapters.clock import SystemClock
    from crossmargin.adapters.sql import SqlEventStore
    from crossmargin.adapters.sql.runner import genesis_of_book
    from crossmargin.engine.venue import CancelOrder, Deposit, PlaceOrder, Venue, VenueSettings

    def stream(venue: Venue, commands: list[Any]) -> tuple[float, float]:
        slots: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(in_flight):
            slots.put(None)
        done, answered, refused = threading.Event(), [0], []

        def told(answer: object) -> None:
            if isinstance(answer, BaseException):
                refused.append(answer)
            slots.put(None)
            answered[0] += 1
            if answered[0] == len(commands):
                done.set()

        start, cpu = time.perf_counter(), time.process_time()
        for command in commands:
            slots.get()
            venue.submit_with_callback(command, told)
        done.wait()
        if refused:
            raise SystemExit(f"{len(refused)} commands refused, first: {refused[0]!r}")
        return len(commands) / (time.perf_counter() - start), (time.process_time() - cpu) / len(commands)

    with tempfile.TemporaryDirectory() as tmp:
        store = SqlEventStore.connect(f"sqlite:///{Path(tmp) / 'orders.db'}")
        genesis = genesis_of_book(str(BOOK))
        venue = Venue.open(store, genesis, clock=SystemClock(), settings=VenueSettings(snapshot_every=10**9))
        try:
            venue.execute(Deposit(idempotency_key="fund", account=MAKER, asset="USDC", amount_units=10**14))
            instruments = list(PRICE_USD)
            rest = [_resting_order(k, instruments) for k in range(depth)]
            stream(venue, rest)
            orders: list[Any] = []
            for k in range(n // 2):
                orders.append(
                    PlaceOrder(
                        idempotency_key=f"new-{k}",
                        account=MAKER,
                        order_id=f"n{k:06d}",
                        instrument="BTC-USDC-PERP",
                        quantity=1 + k % 3,
                        price=87_900.0,
                    )
                )
                orders.append(CancelOrder(idempotency_key=f"cancel-{k}", account=MAKER, order_id=f"n{k:06d}"))
            orders_per_s, order_cpu_s = stream(venue, orders)
            deposits = [
                Deposit(idempotency_key=f"d-{k}", account=TAKER, asset="USDC", amount_units=1 + k % 97)
                for k in range(n)
            ]
            deposits_per_s, deposit_cpu_s = stream(venue, deposits)
        finally:
            venue.close()
    return {
        "depth": depth,
        "in_flight": in_flight,
        "order_commands_per_s": orders_per_s,
        "order_cpu_us": order_cpu_s * 1e6,
        "deposits_per_s": deposits_per_s,
        "deposit_cpu_us": deposit_cpu_s * 1e6,
    }


def _resting_order(k: int, instruments: list[str]) -> Any:
    from crossmargin.engine.venue import PlaceOrder

    instrument = instruments[k % len(instruments)]
    side = 1 if k % 2 else -1
    return PlaceOrder(
        idempotency_key=f"rest-{k}",
        account=MAKER,
        order_id=f"o{k:05d}",
        instrument=instrument,
        quantity=side * (1 + k % 3),
        price=PRICE_USD[instrument] * (1.0 - side * 0.001 * (1 + k % 7)),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--depths", default="1,10,100,1000", help="resting orders of the account, comma-separated"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--venue-commands", type=int, default=6_000, help="order commands through the venue (0 skips)"
    )
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
    through: dict[str, Any] = {}
    if args.venue_commands > 0:
        through = venue_run(max(int(d) for d in args.depths.split(",")), args.venue_commands)
        print(
            f"through the venue at {through['depth']} resting orders (SQLite, one command per call, "
            f"{through['in_flight']} in flight): new order + cancel {through['order_commands_per_s']:,.0f} commands/s "
            f"({through['order_cpu_us']:.0f} us CPU each); deposits in the same venue "
            f"{through['deposits_per_s']:,.0f}/s ({through['deposit_cpu_us']:.0f} us CPU each)"
        )
    print(json.dumps({"benchmark": "orders", "runs": runs, "venue": through, "cpu": cpu_model()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
