"""Encode bytes in a forked child process: the child holds a copy-on-write image of the parent's
memory at the fork, so an O(state) encoding (a snapshot of the venue) runs there, on another CPU,
while the parent's threads go on without sharing the GIL with it. The way Redis writes its RDB
snapshots (BGSAVE: https://redis.io/docs/latest/operate/oss_and_stack/management/persistence/).

Forking a multi-threaded process is safe only if the child touches nothing another thread may
have held at the fork (a lock, a database connection): the child here runs one function over
objects the forking thread owns and writes its bytes to a pipe, then leaves by `os._exit`
(no finalizers, no flush of inherited buffers). It first closes every inherited descriptor but
the pipe (a listening socket or a database file must not outlive the parent in a child), turns
the cyclic collector off (a collection could finalize inherited objects: a database connection
closed in the child) and ignores SIGINT (Ctrl-C reaches the whole process group; the parent
decides when to stop and waits for the child). POSIX only (`os.fork`).
"""

from __future__ import annotations

import contextlib
import gc
import os
import select
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NoReturn

# The pipe's buffer, when the kernel grants it (Linux F_SETPIPE_SZ): fewer wake-ups of the reader.
PIPE_BYTES = 1 << 20
# Exit code of a child whose function raised (the parent reports it; the child cannot log safely).
FAILED = 3


class ChildEncodingError(RuntimeError):
    """The child did not deliver its bytes: it exited with an error or a signal, or was killed
    after the timeout."""


@dataclass(frozen=True, slots=True)
class ChildEncoding:
    """A forked child writing its bytes to `read_fd`'s pipe; `collect` reads and reaps it."""

    pid: int
    read_fd: int

    def collect(self, *, timeout_s: float) -> bytes:
        """All the child's bytes, once it has exited with 0. No end within `timeout_s`: the child
        is killed and ChildEncodingError raised (a hung child must not hold the venue's close)."""
        chunks: list[bytes] = []
        deadline = time.monotonic() + timeout_s
        readable = select.poll()  # not select(): a busy server's descriptors pass FD_SETSIZE
        readable.register(self.read_fd, select.POLLIN)
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not readable.poll(remaining * 1e3):
                    os.kill(self.pid, signal.SIGKILL)
                    os.waitpid(self.pid, 0)
                    raise ChildEncodingError(f"no end after {timeout_s:g} s: child {self.pid} killed")
                chunk = os.read(self.read_fd, PIPE_BYTES)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(self.read_fd)
        code = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        if code != 0:
            cause = f"signal {-code}" if code < 0 else f"exit code {code}"
            raise ChildEncodingError(f"child {self.pid} ended with {cause}")
        return b"".join(chunks)


def fork_encoding(pieces: Callable[[], Iterable[bytes]]) -> ChildEncoding:
    """Fork; the child writes `pieces()` to a pipe and exits. Called by the thread that owns what
    `pieces` reads, at a point where it is consistent: the child sees it as it is at the fork,
    whatever the parent does next."""
    read_fd, write_fd = os.pipe()
    with contextlib.suppress(OSError, AttributeError):  # a larger pipe where the kernel allows
        import fcntl  # POSIX only: imported here so that the venue imports everywhere

        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)  # type: ignore[attr-defined,unused-ignore]
    try:
        pid = os.fork()
    except OSError:
        os.close(read_fd)
        os.close(write_fd)
        raise
    if pid == 0:
        _write_and_exit(pieces, read_fd, write_fd)
    os.close(write_fd)
    return ChildEncoding(pid=pid, read_fd=read_fd)


def _write_and_exit(pieces: Callable[[], Iterable[bytes]], read_fd: int, write_fd: int) -> NoReturn:
    code = FAILED
    try:
        gc.disable()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        os.close(read_fd)
        os.closerange(3, write_fd)
        os.closerange(write_fd + 1, os.sysconf("SC_OPEN_MAX"))
        for piece in pieces():
            view = memoryview(piece)
            while view:
                view = view[os.write(write_fd, view) :]
        code = 0
    except BaseException:  # the exit code is the child's only safe report (it cannot log)
        code = FAILED
    finally:
        os._exit(code)
