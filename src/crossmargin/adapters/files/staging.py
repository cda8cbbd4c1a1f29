"""A directory written whole or not at all: its content goes into a hidden sibling directory
(`.NAME.xxxxxxxx`, the same file system, so the final rename is atomic on POSIX), renamed into
place at the end and removed on any failure. A directory that cannot be written (no permission,
a read-only or full file system) is refused naming `--out`, never a traceback."""

from __future__ import annotations

import tempfile
from pathlib import Path

from crossmargin.errors import InputError


def cannot_write(out: Path, error: OSError) -> InputError:
    """The refusal of an --out that could not be written: its path and the system's reason."""
    return InputError("--out", f"{out}: cannot write: {error.strerror or error}")


def staging_beside(out: Path) -> Path:
    """A new empty sibling directory of `out` (its parent created if missing)."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as error:
        raise cannot_write(out, error) from None
