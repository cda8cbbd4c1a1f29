"""Where a report file goes: the suffix chooses the format, checked before any work; written to
temporary files beside the target and renamed into place, so a failed run leaves nothing behind
and never half a report.

    report.json      compact JSON, one account per line (`report_json`)
    report.parquet   three tables: report.parquet, report.positions.parquet,
                     report.collateral.parquet (`report_parquet`); the accounts table is renamed
                     last, so its presence means the side tables are complete

An unknown suffix, a target that is a directory, or a directory that does not exist is an
`InputError("--out", ...)` (exit code 2 at the command line) before the book is even read.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossmargin.adapters.files.staging import cannot_write
from crossmargin.engine.report_columns import MarginColumns
from crossmargin.errors import InputError

FORMATS = {".json": "json", ".parquet": "parquet"}
Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class ReportTarget:
    """A checked `--out` path and the format its suffix chose."""

    path: Path
    format: str  # "json" | "parquet"

    @property
    def paths(self) -> tuple[Path, ...]:
        """Every file the report writes, the main one last."""
        if self.format == "parquet":
            from crossmargin.adapters.files.report_parquet import side_paths

            return (*side_paths(self.path), self.path)
        return (self.path,)


def report_target(path: Path) -> ReportTarget:
    """Check `path` for a report (module docstring); raise InputError("--out", ...) if unusable."""
    if path.is_dir():
        raise InputError("--out", f"{path}: is a directory; name a file")
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        choices = " or ".join(FORMATS)
        shown = f"suffix {path.suffix!r}" if path.suffix else "no suffix"
        raise InputError("--out", f"{path}: {shown}; the suffix chooses the format: {choices}")
    target = ReportTarget(path=path, format=kind)
    for file in target.paths:
        if file.is_dir():
            raise InputError("--out", f"{file}: is a directory; name a file")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError("--out", f"{path}: directory {str(parent)!r} does not exist")
    return target


@contextlib.contextmanager
def replaced_atomically(paths: Sequence[Path]) -> Iterator[tuple[Path, ...]]:
    """Temporary files beside `paths` (same directory, so the rename is atomic); renamed over
    `paths` in order when the block succeeds, all removed when it raises."""
    temporaries: list[Path] = []
    try:
        for path in paths:
            handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(handle)
            temporaries.append(Path(name))
            os.chmod(name, 0o666 & ~_umask())  # as open() would create it (mkstemp makes it 0600)
        yield tuple(temporaries)
        for temporary, path in zip(temporaries, paths, strict=True):
            os.replace(temporary, path)
    except BaseException:
        for temporary in temporaries:
            temporary.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _parquet_order(temporaries: Sequence[Path]) -> tuple[Path, Path, Path]:
    """`ReportTarget.paths` order (positions, collateral, accounts) -> the writer's (accounts,
    positions, collateral)."""
    positions, collateral, accounts = temporaries
    return accounts, positions, collateral


def write_report(columns: MarginColumns, target: ReportTarget, *, progress: Progress | None = None) -> None:
    """Write the report in the target's format, atomically; an OSError becomes
    InputError("--out", ...) with nothing left behind."""
    try:
        with replaced_atomically(target.paths) as temporaries:
            if target.format == "parquet":
                from crossmargin.adapters.files.report_parquet import write_margin_parquet

                write_margin_parquet(columns, _parquet_order(temporaries), progress=progress)
            else:
                from crossmargin.adapters.files.report_json import write_margin_json

                with temporaries[0].open("wb") as stream:
                    write_margin_json(columns, stream, indent=False, progress=progress)
    except OSError as error:
        raise cannot_write(Path(target.path), error) from None


def write_json_data(data: Any, target: ReportTarget) -> None:
    """A report that is already JSON-ready data (`--levels`, `--prices` reports) to a .json
    target, atomically, compact."""
    import json

    if target.format != "json":
        raise InputError(
            "--out", f"{target.path}: this report (--levels or --prices) is written as .json only"
        )
    try:
        with replaced_atomically(target.paths) as temporaries:
            temporaries[0].write_text(
                json.dumps(data, separators=(",", ":"), allow_nan=False, ensure_ascii=False) + "\n",
                encoding="utf-8",
            )
    except OSError as error:
        raise cannot_write(Path(target.path), error) from None
