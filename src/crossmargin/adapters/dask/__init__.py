"""Dask backend for venue-wide stress: the accounts sharded across workers.

Each shard is a `engine.stress.StressShard` living on a worker as a Dask actor (state stays
there: holdings, its RiskEngine); the driver's `run_cascade` calls every shard once per round
with the round's market (the instrument-level inputs, small, broadcast) and reduces the integer
totals the shards return, so a cascade on N shards equals the single-process one exactly
(tests/adapters/dask). Shards are few and large: a task here costs ~2 ms, a 1M-account round
~0.1 s per shard.

`--cluster local` starts a `distributed.LocalCluster`; `--cluster ADDRESS` connects to a running
scheduler (`tcp://host:8786`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from crossmargin.core.margin import MarginModel
from crossmargin.engine.stress import StressShard, StressVenue, split_venue


class _ShardActor:
    """The actor holding one shard (built on the worker from its slice of the venue)."""

    def __init__(self, make: Callable[[], tuple[StressVenue, int]], model: MarginModel) -> None:
        venue, offset = make()
        self.shard = StressShard(venue, model, account_offset=offset)

    def call(self, method: str, args: tuple[Any, ...]) -> Any:
        return getattr(self.shard, method)(*args)


@dataclass(slots=True)
class DaskShards:
    """`engine.stress.ShardRunner` over Dask actors, one per shard, in shard (account) order."""

    client: Any
    actors: list[Any]

    @classmethod
    def of(cls, client: Any, venue: StressVenue, model: MarginModel, *, n_shards: int) -> DaskShards:
        """Ship each contiguous slice of the venue's accounts to a worker as an actor."""
        parts = split_venue(venue, n_shards)
        workers = list(client.scheduler_info()["workers"])
        futures = []
        for n, part in enumerate(parts):
            where = [workers[n % len(workers)]]
            # Scattered to its worker first: a slice of the book is data, not part of a task graph.
            given = client.scatter(_Given(part), workers=where)
            futures.append(client.submit(_ShardActor, given, model, actor=True, workers=where, pure=False))
        return cls(client=client, actors=[f.result() for f in futures])

    @classmethod
    def from_loaders(
        cls, client: Any, loaders: Sequence[Callable[[], tuple[StressVenue, int]]], model: MarginModel
    ) -> DaskShards:
        """Each worker builds its own slice (e.g. reads its accounts' row range from Parquet):
        nothing of the book passes through the driver (out of core)."""
        workers = list(client.scheduler_info()["workers"])
        futures = [
            client.submit(
                _ShardActor, load, model, actor=True, workers=[workers[n % len(workers)]], pure=False
            )
            for n, load in enumerate(loaders)
        ]
        return cls(client=client, actors=[f.result() for f in futures])

    def call(self, method: str, args: Sequence[tuple[Any, ...]]) -> list[Any]:
        pending = [actor.call(method, a) for actor, a in zip(self.actors, args, strict=True)]
        return [p.result() for p in pending]

    @property
    def n_shards(self) -> int:
        return len(self.actors)


@dataclass(frozen=True, slots=True)
class _Given:
    """A loader returning a slice already in hand (pickled to the worker once)."""

    part: tuple[StressVenue, int]

    def __call__(self) -> tuple[StressVenue, int]:
        return self.part


@contextmanager
def dask_client(cluster: str, *, n_workers: int = 2, processes: bool = True) -> Iterator[Any]:
    """A distributed.Client on `cluster`: "local" starts a LocalCluster of `n_workers` (one thread
    each), otherwise the scheduler address."""
    from distributed import Client, LocalCluster

    if cluster == "local":
        # One thread per worker, and numba's own pool at one thread in each: the shards are the
        # parallelism (two workers each running a 2-thread kernel on 2 cores oversubscribe them).
        options: dict[str, Any] = {"env": {"NUMBA_NUM_THREADS": "1"}} if processes else {}
        local = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=n_workers, threads_per_worker=1, processes=processes, dashboard_address=None, **options
        )
        with local, Client(local) as client:  # type: ignore[no-untyped-call]
            yield client
    else:
        with Client(cluster) as client:  # type: ignore[no-untyped-call]
            yield client


__all__ = ["DaskShards", "dask_client"]
