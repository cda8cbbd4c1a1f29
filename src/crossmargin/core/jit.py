"""Kernels written once as plain Python, run two ways: compiled by numba for large work,
interpreted by CPython for small work.

    @kernel(parallel=True, nogil=True)
    def _book_kernel(...): ... for a in prange(n): ...

    _book_kernel.for_work(n_positions)(*arrays)     # picks the way by the work and the mode

A `Kernel` keeps the Python function. `compiled()` builds it with numba the first time it is asked
for (`numba.njit(cache=True, **options)`, machine code cached on disk, see `_numba_cache`), on a
copy of the function whose globals have `prange` bound to `numba.prange` and every other `Kernel`
it calls bound to that kernel's own compiled build. Called directly (`kernel(...)`), or when the
work is small, the Python function runs as it is: `prange` is `range`, the kernels it calls run
as Python too, and numba is never imported. The same source in the same order of operations:
the interpreted run is IEEE float64 arithmetic step for step like the compiled one (numba
compiles without fastmath, so no fused multiply-add), so the two give the same numbers
(tests/core/test_jit.py and the backend-agreement property tests check it).

Why: a small book needs microseconds of arithmetic, but the first compiled kernel of a process
costs `import numba` and its CPU-target set-up (~1.3 s here, measured by bench/bench_startup.py's
cached-kernel floor), and a kernel not yet in numba's disk cache costs seconds of LLVM compile
(a cold `margin --model portfolio` of examples/desk.yaml: ~14 s). Interpreted Python does roughly
5-10 M of the kernels' inner-loop steps per second (measured by bench/bench_startup.py), so below
`INTERPRET_BELOW` steps the interpreter finishes before numba would have started.

The mode, read once per process from the environment:

    CROSSMARGIN_KERNEL=auto|python|simd|numba   (unset or empty: auto)

    auto    interpreted below INTERPRET_BELOW steps of work, compiled above (the portfolio kernel
            then with core.simd's intrinsics)
    python  always interpreted (no numba import at all; slow on big books)
    simd    always compiled, the portfolio kernel with core.simd's intrinsics
    numba   always compiled, the portfolio kernel with the plain-numba scenario pass

Anything else is refused with an InputError naming the variable. This module imports neither
numba nor numpy.
"""

from __future__ import annotations

import functools
import os
import types
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from crossmargin.errors import InputError

KERNEL_VARIABLE = "CROSSMARGIN_KERNEL"
MODES = ("auto", "python", "simd", "numba")
# Inner-loop steps (a call site's `work`: e.g. positions x scenario columns) below which `auto`
# interprets. ~0.05-0.1 s of interpreted Python, against the ~1.3 s floor of a process's first
# cached compiled kernel (bench/bench_startup.py measures both).
INTERPRET_BELOW = 500_000

prange = range  # numba.prange in compiled builds (`compiled_copy` rebinds it)

F = TypeVar("F", bound=Callable[..., Any])


def mode_from_environment(environ: Mapping[str, str]) -> str:
    """The mode CROSSMARGIN_KERNEL names ("auto" when unset or empty); InputError naming the
    variable for anything else."""
    name = environ.get(KERNEL_VARIABLE, "").strip().lower() or "auto"
    if name not in MODES:
        raise InputError(KERNEL_VARIABLE, f"unknown kernel {name!r}: choose auto, python, simd or numba")
    return name


@functools.cache
def environment_mode() -> str:
    # The one read of the environment, cached: the choice cannot change under a running process.
    return mode_from_environment(os.environ)


def interpret(work: int, mode: str | None = None) -> bool:
    """True when a kernel call of `work` inner-loop steps runs as Python under `mode` (None: the
    environment's)."""
    chosen = environment_mode() if mode is None else mode
    if chosen == "python":
        return True
    return chosen == "auto" and work < INTERPRET_BELOW


class Kernel:
    """A Python function that numba can compile (see the module docstring)."""

    def __init__(self, function: Callable[..., Any], options: Mapping[str, Any]) -> None:
        self.python = function
        self.options = dict(options)
        self.__name__ = function.__name__
        self.__doc__ = function.__doc__
        self._compiled: Any = None

    def __call__(self, *args: Any) -> Any:
        return self.python(*args)

    def compiled(self) -> Any:
        """The numba build (a dispatcher), built on the first call, loaded from the disk cache
        when it is there."""
        if self._compiled is None:
            self._compiled = compiled_copy(self.python, self.python.__qualname__, {}, **self.options)
        return self._compiled

    def for_work(self, work: int, mode: str | None = None) -> Callable[..., Any]:
        """The Python function or the compiled build, as `interpret(work, mode)` says."""
        return self.python if interpret(work, mode) else self.compiled()


def kernel(**options: Any) -> Callable[[Callable[..., Any]], Kernel]:
    """Decorator: a `Kernel` compiled with numba.njit(cache=True, **options) when compiled."""

    def wrap(function: Callable[..., Any]) -> Kernel:
        return Kernel(function, options)

    return wrap


def compiled_copy(
    function: Callable[..., Any], name: str, rebound: Mapping[str, Any], **options: Any
) -> Any:
    """numba.njit(cache=True, **options) of a copy of `function` named `name` (numba's cache
    files are named by it), whose globals bind `prange` to numba.prange, every `Kernel` it names
    to that kernel's compiled build, and then `rebound`'s names to their values. Imports numba."""
    import numba  # noqa: PLC0415 - the one place crossmargin imports numba for its kernels

    scope = dict(function.__globals__)
    for global_name in function.__code__.co_names:
        value = scope.get(global_name)
        if isinstance(value, Kernel):
            scope[global_name] = value.compiled()
    scope["prange"] = numba.prange
    scope.update(rebound)
    copy = types.FunctionType(function.__code__, scope, name, function.__defaults__, function.__closure__)
    copy.__qualname__ = name
    copy.__doc__ = function.__doc__
    return numba.njit(cache=True, **options)(copy)


def python_copy(function: F, rebound: Mapping[str, Any]) -> F:
    """A copy of `function` with `rebound`'s names replacing its globals, to run as Python."""
    copy = types.FunctionType(
        function.__code__, {**function.__globals__, **rebound}, function.__name__, function.__defaults__
    )
    return copy  # type: ignore[return-value]
