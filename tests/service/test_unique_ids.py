"""Ids from service.unique_ids, as the keys of commands sent without an Idempotency-Key
(routes.common.key_or_new) use them: never issued twice, in one process, across processes, or in
a forked child."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from crossmargin.service.routes.common import key_or_new


def _keys_in_child(connection: multiprocessing.connection.Connection) -> None:
    connection.send([key_or_new(None) for _ in range(3)])
    connection.close()


def test_auto_keys_are_unique_and_fit_the_header_limit() -> None:
    keys = [key_or_new(None) for _ in range(10_000)]
    assert len(set(keys)) == len(keys)
    assert all(k.startswith("auto-") and len(k) <= 128 for k in keys)
    prefix = keys[0].rsplit("-", 1)[0]
    assert len(prefix) - len("auto-") == 32  # 128 random bits
    assert key_or_new("client-key") == "client-key"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_a_forked_child_draws_its_own_prefix() -> None:
    """The counter alone would repeat in a child forked from a serving process: it inherits the
    parent's prefix and count, so the child draws a prefix of its own."""
    mine = key_or_new(None)
    receiving, sending = multiprocessing.get_context("fork").Pipe(duplex=False)
    child = multiprocessing.get_context("fork").Process(target=_keys_in_child, args=(sending,))
    child.start()
    theirs = receiving.recv()
    child.join(timeout=30)
    assert child.exitcode == 0
    mine_after = [key_or_new(None) for _ in range(3)]
    assert {k.rsplit("-", 1)[0] for k in theirs}.isdisjoint({mine.rsplit("-", 1)[0]})
    assert set(theirs).isdisjoint(mine_after)
