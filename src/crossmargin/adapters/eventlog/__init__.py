"""Event log files: the ledger's audit trail as JSON lines or Parquet, so any run replays.

write_events(path, events)   .jsonl: one event per line ({"type": ..., fields});
                             .parquet: columns sequence, type, as_of_ns, payload (the same JSON)
read_events(path)            the events back, in order (a bad line names its number)
write_table(path, rows)      postings or audit records as CSV or Parquet
JsonLinesEventSink(path)     the engine's `EventSink` port: each accepted event written as it
                             happens, one JSON line (the same lines as write_events)
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from crossmargin.core.ledger.events import Event, event_from_dict, event_to_dict
from crossmargin.errors import InputError


def write_events(path: str | Path, events: Iterable[Event]) -> None:
    target = Path(path)
    lines = [json.dumps(event_to_dict(e), sort_keys=True) for e in events]
    if target.suffix == ".parquet":
        table = pa.table(
            {
                "sequence": pa.array(range(len(lines)), type=pa.int64()),
                "type": [json.loads(x)["type"] for x in lines],
                "as_of_ns": pa.array([json.loads(x)["as_of_ns"] for x in lines], type=pa.int64()),
                "payload": lines,
            }
        )
        pq.write_table(table, target)
        return
    target.write_text("".join(x + "\n" for x in lines))


class JsonLinesEventSink:
    """`engine.ports.EventSink` writing one JSON line per event as it is accepted (the file
    `write_events` writes for .jsonl). Nothing half-written: lines go to `<path>.partial`, renamed
    to `path` when the context exits cleanly and removed when it exits with an error, so a failed
    run leaves no log that looks complete. A context manager."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.partial_path = self.path.with_name(self.path.name + ".partial")
        self._handle: IO[str] = self.partial_path.open("w", encoding="utf-8")

    def append(self, event: Event) -> None:
        self._handle.write(json.dumps(event_to_dict(event), sort_keys=True) + "\n")

    def close(self, *, complete: bool = True) -> None:
        """Close; publish the log at `path` when `complete`, else discard it."""
        self._handle.close()
        if complete:
            self.partial_path.replace(self.path)
        else:
            self.partial_path.unlink(missing_ok=True)

    def __enter__(self) -> JsonLinesEventSink:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close(complete=kind is None)


def read_events(path: str | Path) -> list[Event]:
    source = Path(path)
    if source.suffix == ".parquet":
        payloads = [str(x) for x in pq.read_table(source, columns=["payload"]).column("payload").to_pylist()]
    else:
        payloads = [x for x in source.read_text().splitlines() if x.strip()]
    events: list[Event] = []
    for n, payload in enumerate(payloads, start=1):
        try:
            data = json.loads(payload)
        except json.JSONDecodeError as error:
            raise InputError(f"{source}:{n}", f"not JSON: {error.msg}") from None
        if not isinstance(data, dict):
            raise InputError(f"{source}:{n}", "an event must be a JSON object")
        try:
            events.append(event_from_dict(data))
        except InputError as error:
            raise InputError(f"{source}:{n}: {error.field}", error.problem) from None
    return events


def write_table(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Rows of flat dicts (nested values as JSON strings) to .csv or .parquet."""
    target = Path(path)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    flat = [{k: _cell(row.get(k)) for k in columns} for row in rows]
    if target.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(flat), target)
        return
    with target.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(flat)


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, sort_keys=True)
    return value
