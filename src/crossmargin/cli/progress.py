"""A Rich progress bar for long runs, on stderr and only when stderr is a terminal.

`stages()` yields a `Stages`: `stage(name)` starts a step (a spinner and the elapsed time),
`stage(name, total=n)` one that counts (`advance_to(done)`, e.g. accounts written). When stderr is
not a terminal (a pipe, a file, CI, a test runner) nothing is drawn and nothing is written: stdout
stays the report alone and stderr stays for errors. The bar is transient: it is erased when the
run ends, leaving the terminal as it was.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


class Stages:
    """The steps of one run on one progress bar (a no-op when `progress` is None)."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress
        self._task: TaskID | None = None

    @property
    def shown(self) -> bool:
        return self._progress is not None

    def stage(self, name: str, *, total: int | None = None) -> None:
        if self._progress is None:
            return
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(name, total=total)

    def advance_to(self, completed: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=completed)


@contextlib.contextmanager
def stages(stream: TextIO | None = None) -> Iterator[Stages]:
    """A `Stages` drawing on `stream` (default stderr) if it is a terminal, else drawing nothing."""
    stream = sys.stderr if stream is None else stream
    if not stream.isatty():
        yield Stages(None)
        return
    console = Console(file=stream)
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    with progress:
        yield Stages(progress)
