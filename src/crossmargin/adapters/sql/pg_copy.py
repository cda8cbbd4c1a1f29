"""PostgreSQL: a statement and binary COPY FROM STDIN streams in one simple-query message, so one
implicit transaction in 1 + n round trips.

psycopg's `Cursor.copy` runs one COPY per statement: an append of a group (the counter's
conditional UPDATE, then the event rows and the posting rows, then COMMIT, with BEGIN sent beside
the UPDATE) took 6 round trips. A simple Query message may carry several statements, executed as
one transaction unless they say otherwise, each COPY FROM STDIN among them taking its data when
the server reaches it ("Multiple Statements in a Simple Query" and "COPY Operations",
https://www.postgresql.org/docs/current/protocol-flow.html). So: send
`UPDATE ...; COPY events ... FROM STDIN; COPY postings ... FROM STDIN`, read the UPDATE's result
and the first CopyInResponse (round trip 1), send the event rows and CopyDone and read up to the
next CopyInResponse (2), send the posting rows and CopyDone and read to the end, the commit
included (3). Measured standalone (128 deposits a group, loopback, AMD Zen 5): 1.24-1.51 ->
1.11-1.13 ms a group, client CPU 309-341 -> 195-199 us.

The `first_check` looks at the first statement's result before any row is sent: a refusal there
(the counter did not move: another writer) ends the COPY with an error message (CopyFail), which
rolls the whole transaction back. Any error result is raised as psycopg's error for it, after
the rest of the exchange is read, so the session is idle and usable again (the server rolled the
transaction back). The rows are formatted by psycopg's own binary COPY formatter (C-accelerated,
the one `Copy.write_row` uses; a psycopg module of its own, `psycopg._copy_base`, in the psycopg
versions pinned in pyproject.toml).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Sequence
from typing import Any

import psycopg
from psycopg import errors, generators, pq
from psycopg._copy_base import BinaryFormatter
from psycopg.adapt import Transformer
from psycopg.waiting import Ready, Wait

# COPY data goes to libpq in pieces of at most this (psycopg's Copy writes its buffers so: a
# nonblocking put_copy_data of one huge buffer can wait forever, psycopg issue #255).
SEND_CHUNK_BYTES = 128 * 1024
_COPY_IN = pq.ExecStatus.COPY_IN
_OK = pq.ExecStatus.COMMAND_OK
_FAILED = (pq.ExecStatus.FATAL_ERROR, pq.ExecStatus.NONFATAL_ERROR, pq.ExecStatus.BAD_RESPONSE)


class CopyRefusedError(Exception):
    """`first_check` refused the first statement's result: nothing was written."""


class BinaryRows:
    """Rows of one table in PostgreSQL's binary COPY format, the column types given by name."""

    def __init__(self, connection: psycopg.Connection[Any], type_names: Sequence[str]) -> None:
        self._transformer = Transformer(connection)
        oids = [connection.adapters.types[name].oid for name in type_names]
        self._transformer.set_dumper_types(oids, pq.Format.BINARY)

    def payload(self, rows: Sequence[Sequence[Any]]) -> bytes:
        formatter = BinaryFormatter(self._transformer)
        parts = [formatter.write_row(row) for row in rows]
        parts.append(formatter.end())
        return b"".join(parts)


def run_with_copies(
    connection: psycopg.Connection[Any],
    statement: str,
    copies: Sequence[tuple[str, bytes]],
    first_check: Callable[[pq.abc.PGresult], str | None],
) -> None:
    """Run `statement; copy_1; ...; copy_n` as one simple query (one implicit transaction), each
    COPY FROM STDIN (`copies`: its SQL and its binary payload) fed its payload. `first_check`
    sees the statement's result first: None goes on, a message ends it all (CopyRefusedError, nothing
    written). A failed statement raises psycopg's error for it. The connection must be idle and
    in autocommit mode; it is idle again after any outcome but a dead connection."""
    pgconn = connection.pgconn
    query = "; ".join([statement, *(sql for sql, _ in copies)])
    with connection.lock:  # as psycopg's own cursors hold it for an exchange
        pgconn.send_query(query.encode())
        try:
            results = connection.wait(generators.execute(pgconn))
            _raise_failed(connection, results)
            refusal = first_check(results[0])
            for _, payload in copies:
                if results[-1].status != _COPY_IN:
                    raise errors.ProgrammingError(f"expected a COPY to start, got {results[-1].status.name}")
                if refusal is not None:
                    connection.wait(_end_copy(pgconn, refusal.encode()))  # CopyFail: rolled back
                    _drain(connection)
                    raise CopyRefusedError(refusal)
                _send_copy_data(connection, payload)
                results = connection.wait(generators.fetch_many(pgconn))
                _raise_failed(connection, results)
            if [r.status for r in results] != [_OK]:  # the last COPY's, read to the end: committed
                raise errors.ProgrammingError(f"unexpected results {[r.status.name for r in results]}")
        except BaseException:
            _abandon(connection)
            raise


def _send_copy_data(connection: psycopg.Connection[Any], payload: bytes) -> None:
    """`payload` in pieces of at most SEND_CHUNK_BYTES (psycopg's Copy splits so too), then
    CopyDone."""
    data = memoryview(payload)
    for start in range(0, len(data), SEND_CHUNK_BYTES):
        connection.wait(generators.copy_to(connection.pgconn, data[start : start + SEND_CHUNK_BYTES]))
    connection.wait(_end_copy(connection.pgconn, None))


def _end_copy(pgconn: pq.abc.PGconn, error: bytes | None) -> Generator[Wait, Ready | int, None]:
    """CopyDone (error None) or CopyFail(error), flushed (psycopg's `copy_end` without its read
    of exactly one result: here the next COPY's start may follow)."""
    while pgconn.put_copy_end(error) == 0:  # would block
        while not (yield Wait.W):
            continue
    yield from generators.send(pgconn)


def _raise_failed(connection: psycopg.Connection[Any], results: Sequence[pq.abc.PGresult]) -> None:
    """Raise psycopg's error for the first failed result, once the exchange is read to its end."""
    for result in results:
        if result.status in _FAILED:
            _drain(connection)
            raise errors.error_from_result(result, encoding=connection.info.encoding)


def _drain(connection: psycopg.Connection[Any]) -> None:
    """Read what is left of the current query (a COPY still waiting for data is refused)."""
    pgconn = connection.pgconn
    while pgconn.transaction_status == pq.TransactionStatus.ACTIVE:
        results = connection.wait(generators.fetch_many(pgconn))
        if results and results[-1].status == _COPY_IN:
            connection.wait(_end_copy(pgconn, b"abandoned"))
        elif not results:
            return


def _abandon(connection: psycopg.Connection[Any]) -> None:
    """After a failure mid-exchange: read the rest (`_drain` refuses a COPY still waiting, as
    libpq reports one for each read in copy mode), so that the session is idle and the server
    has rolled the implicit transaction back; a dead session is left to fail the next call."""
    with contextlib.suppress(Exception):
        _drain(connection)
