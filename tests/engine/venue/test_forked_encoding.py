"""A forked child encodes what the parent held at the fork, delivers every byte, and never
outlives a failure or a hang silently (`engine.venue.forked_encoding`): real forks of this process."""

from __future__ import annotations

import json
import os
import resource
import socket
import sys
import time
from collections.abc import Iterator

import pytest

from crossmargin.engine.venue.forked_encoding import FAILED, ChildEncodingError, fork_encoding

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")


def test_every_byte_arrives_beyond_the_pipe_buffer() -> None:
    """8 MB in pieces of uneven size (the pipe holds 1 MB at most): the same bytes in order."""
    pieces = [bytes([n % 251]) * (1 + n * 104_729 % 400_000) for n in range(60)]
    assert sum(map(len, pieces)) > 8_000_000
    assert fork_encoding(lambda: pieces).collect(timeout_s=60) == b"".join(pieces)


def test_the_child_encodes_the_state_as_it_was_at_the_fork() -> None:
    """The parent changes the state right after the fork; the child's copy-on-write image does
    not see it, whenever it runs."""
    balances = {f"t{n}": n for n in range(10_000)}
    before = json.dumps(balances, sort_keys=True).encode()
    child = fork_encoding(lambda: [json.dumps(balances, sort_keys=True).encode()])
    for account in balances:
        balances[account] += 1
    balances["late"] = 1
    assert child.collect(timeout_s=60) == before


def test_a_raising_encoder_is_an_error_with_its_exit_code() -> None:
    def pieces() -> Iterator[bytes]:
        yield b"partial"
        raise ValueError("cannot encode")

    with pytest.raises(ChildEncodingError, match=f"exit code {FAILED}"):
        fork_encoding(pieces).collect(timeout_s=60)


def test_a_hung_child_is_killed_and_reaped_after_the_timeout() -> None:
    def pieces() -> Iterator[bytes]:
        time.sleep(600)
        yield b"never"

    child = fork_encoding(pieces)
    with pytest.raises(ChildEncodingError, match=r"no end after 0\.5 s: child \d+ killed"):
        child.collect(timeout_s=0.5)
    with pytest.raises(ProcessLookupError):  # killed and reaped: no such process, not a zombie
        os.kill(child.pid, 0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/fd")
def test_the_child_holds_no_inherited_descriptor_but_its_pipe() -> None:
    """A listening socket (the server's) must not live on in a child that outlives a killed
    parent: the child sees only stdin, stdout, stderr and its pipe (and the directory it lists)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listening_fd = listener.fileno()
        child = fork_encoding(lambda: [json.dumps(os.listdir("/proc/self/fd")).encode()])
        open_fds = {int(fd) for fd in json.loads(child.collect(timeout_s=60))}
    assert listening_fd not in open_fds
    assert len(open_fds - {0, 1, 2}) <= 2  # the pipe's write end and listdir's own descriptor


def test_a_pipe_numbered_past_fd_setsize_is_read() -> None:
    """A server holding a thousand connections gives the pipe a descriptor above 1023, which
    select() refuses; the bytes still arrive."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < 2048")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        child = fork_encoding(lambda: [b"past FD_SETSIZE"])
        assert child.read_fd >= 1024
        assert child.collect(timeout_s=60) == b"past FD_SETSIZE"
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
