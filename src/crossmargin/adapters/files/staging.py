"""A directory written whole or not at all: its content goes into a hidden sibling directory
(`.NAME.xxxxxxxx`, the same file system, so the final rename is atomic on POSIX), renamed into
place at the end and removed on any failure. A directory that cannot be written (no permission,
a read-only or full file system) is refused naming `--out`, never a traceback."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from crossmargin.errors import InputError


def cannot_write(out: Path, error: OSError, flag: str = "--out") -> InputError:
    """The refusal of a path given by `flag` that could not be written: the system's reason."""
    return InputError(flag, f"{out}: cannot write: {error.strerror or error}")


def check_writable(path: Path, flag: str) -> None:
    """Before any work: refuse (naming `flag`) a file that could not be written at the end. A
    file is created and removed in the nearest directory that exists (nothing is left, no
    directory made: the writer makes the missing ones)."""
    directory = Path(path).parent
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    try:
        if not directory.is_dir():
            raise NotADirectoryError(20, "Not a directory", str(directory))
        handle, probe = tempfile.mkstemp(prefix=".crossmargin-probe.", dir=directory)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise cannot_write(Path(path), error, flag) from None


def staging_beside(out: Path) -> Path:
    """A new empty sibling directory of `out` (its parent created if missing)."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as error:
        raise cannot_write(out, error) from None
