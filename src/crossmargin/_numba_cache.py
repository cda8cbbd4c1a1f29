"""Where numba keeps crossmargin's compiled kernels: on disk, always.

Every kernel is `numba.njit(cache=True)`, so a process loads machine code from disk instead of
compiling it again (seconds per kernel). numba writes that code next to the source
(`<package>/core/__pycache__`) unless `NUMBA_CACHE_DIR` is set; a package installed read-only
(a system site-packages, a container layer, a wheel unpacked by another user) has no writable
`__pycache__`. Then, and only when the user has not set `NUMBA_CACHE_DIR` themselves, this module
points it at the user's cache directory:

    $XDG_CACHE_HOME/crossmargin/numba      (XDG_CACHE_HOME defaults to ~/.cache)

Imported by `crossmargin/__init__.py` before anything imports numba: numba reads the variable
once, when `numba.core.config` is first imported. If numba is already imported, its live
`config.CACHE_DIR` is set as well (the cache locator reads it at each compile).

`NUMBA_CACHE_DIR` is process-wide: once set here, other packages' cached kernels in the same
process also go to this directory (numba keys them by source path, so they do not collide).
This module imports no numba and no numpy: `import crossmargin` stays cheap.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

ENV_VARIABLE = "NUMBA_CACHE_DIR"
# The package directories whose __pycache__ numba would write kernels to.
KERNEL_DIRECTORIES = ("core", "core/margin", "core/var", "adapters/files")


def package_directory() -> Path:
    return Path(__file__).resolve().parent


def package_writable(package: Path) -> bool:
    """True when numba can cache next to every kernel's source: each kernel directory's
    `__pycache__` is writable (or, if absent, the directory that would hold it)."""
    for relative in KERNEL_DIRECTORIES:
        directory = package / relative
        pycache = directory / "__pycache__"
        target = pycache if pycache.is_dir() else directory
        if not os.access(target, os.W_OK):
            return False
    return True


def user_cache_directory(environ: Mapping[str, str]) -> Path:
    """$XDG_CACHE_HOME/crossmargin/numba, XDG_CACHE_HOME defaulting to ~/.cache (an empty
    or relative XDG_CACHE_HOME is ignored, as the XDG base-directory spec says)."""
    base = environ.get("XDG_CACHE_HOME", "")
    root = (
        Path(base) if base and os.path.isabs(base) else Path(environ.get("HOME", "~")).expanduser() / ".cache"
    )
    return root / "crossmargin" / "numba"


def cache_directory(environ: Mapping[str, str], *, writable: bool) -> Path | None:
    """The directory to set NUMBA_CACHE_DIR to, or None to leave numba's default (in-tree).

    None when the user set NUMBA_CACHE_DIR (their choice wins) or the package is writable."""
    if environ.get(ENV_VARIABLE):
        return None
    if writable:
        return None
    return user_cache_directory(environ)


def configure() -> Path | None:
    """Apply `cache_directory` to this process; return the directory set, if any."""
    directory = cache_directory(os.environ, writable=package_writable(package_directory()))
    if directory is None:
        return None
    os.environ[ENV_VARIABLE] = str(directory)
    config = sys.modules.get("numba.core.config")
    if config is not None:  # numba imported before crossmargin: its config already read the env
        config.CACHE_DIR = str(directory)  # type: ignore[attr-defined]
    return directory
