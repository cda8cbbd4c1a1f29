"""Kernels written once as plain Python, run two ways: compiled by numba for large work,
interpreted by CPython for small work.

    @kernel(parallel=True, nogil=True)
    def _book_kernel(...): ... for a in prange(n): ...

    _book_kernel.for_work(10 * n_positions)(*arrays)   # work: estimated us interpreted

A `Kernel` keeps the Python function. `compiled()` builds it with numba the first time it is asked
for (`numba.njit(cache=True, **options)`, machine code cached on disk, see `_numba_cache`), on a
copy of the function whose globals have `prange` bound to `numba.prange` and every other `Kernel`
it calls bound to that kernel's own compiled build. Called directly (`kernel(...)`), or when the
work is small, the Python function runs as it is: `prange` is `range`, the kernels it calls run
as Python too, and numba is never imported. The same source in the same order of operations:
the interpreted run is IEEE float64 arithmetic step for step like the compiled one (numba
compiles without fastmath, so no fused multiply-add), so the two give the same bits, except where
a kernel calls a transcendental function: CPython's `log` and numba's differ in the last ulp on
some arguments (Black-76 prices move by ~1e-16 of the forward). tests/core/test_jit.py and the
backend-agreement property tests check both.

Why: a small book needs microseconds of arithmetic, but the first compiled kernel of a process
costs `import numba` and its CPU-target set-up (~1.3 s here, bench/bench_startup.py's cached-kernel
floor), and a kernel not yet in numba's disk cache costs seconds of LLVM compile (a cold
`margin --model portfolio` of examples/desk.yaml: ~14 s on an Intel Xeon, 24-26 s on an AMD EPYC).

When to compile is the ski-rental problem (rent skis until the rent paid equals the price, then
buy: never more than twice the cost of the best choice made knowing the future;
https://en.wikipedia.org/wiki/Ski_rental_problem). Each call site
states its `work` as the microseconds the interpreter would take (its natural count times a cost
per item, CPU time measured on an Intel Xeon: bench/bench_startup.py `--calibrate`). Under
`auto` a process interprets while the interpreted work it has done, this call included, stays
within INTERPRET_BUDGET_US, about what numba's start-up costs; a call bigger than the rest of the
budget, and every call after it, runs compiled. A one-shot command on a small book never imports
numba; a big book, or a long loop over a small one, compiles once and stays compiled.

The mode, read once per process from the environment:

    CROSSMARGIN_KERNEL=auto|python|simd|numba   (unset or empty: auto)

    auto    interpreted within the process's INTERPRET_BUDGET_US, compiled after (the portfolio
            kernel then with core.simd's intrinsics)
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
from typing import Any, Generic, ParamSpec, TypeVar

from crossmargin.errors import InputError

KERNEL_VARIABLE = "CROSSMARGIN_KERNEL"
MODES = ("auto", "python", "simd", "numba")
# Microseconds of interpreted kernel work a process does under `auto` before it compiles: about
# the ~1.3 s floor of a process's first cached compiled kernel (bench/bench_startup.py).
INTERPRET_BUDGET_US = 1_000_000
# Below this much estimated interpreted work (~10,000 positions), a parallel kernel runs its
# serial build (`Kernel.for_work`).
PARALLEL_MIN_WORK_US = 30_000

prange = range  # numba.prange in compiled builds (`compiled_copy` rebinds it)

F = TypeVar("F", bound=Callable[..., Any])
P = ParamSpec("P")
R = TypeVar("R")


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


class _Budget:
    """The interpreted work done so far in this process, microseconds (estimated)."""

    spent_us = 0


def prefer_compiled() -> None:
    """From now on `auto` runs every kernel call compiled, as if the interpreter budget were
    spent. For a long-lived process (`crossmargin serve`): under `auto` it would otherwise pay
    numba's start-up (~1.3 s with a warm disk cache, seconds of LLVM without) on whichever request
    happens to cross the budget; calling this and then running its hot path once at start (a
    warm-up) pays it before the first request. Process-wide, so only a process's owner calls
    it; `python` mode still interprets."""
    _Budget.spent_us = INTERPRET_BUDGET_US


def interpret(work: int, mode: str | None = None) -> bool:
    """True when a kernel call of `work` estimated microseconds runs as Python under `mode` (None:
    the environment's); under auto, counted against the process's INTERPRET_BUDGET_US."""
    chosen = environment_mode() if mode is None else mode
    if chosen != "auto":
        return chosen == "python"
    if _Budget.spent_us + work > INTERPRET_BUDGET_US:
        return False
    _Budget.spent_us += work
    return True


class Kernel(Generic[P, R]):
    """A Python function that numba can compile (see the module docstring)."""

    def __init__(self, function: Callable[P, R], options: Mapping[str, Any], *, suffix: str = "") -> None:
        self.python = function
        self.options = dict(options)
        self.__name__ = function.__name__
        self.__doc__ = function.__doc__
        self._suffix = suffix  # names a variant's numba cache files apart from the kernel's own
        self._compiled: Callable[P, R] | None = None
        self._serial: Kernel[P, R] | None = None

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.python(*args, **kwargs)

    def compiled(self) -> Callable[P, R]:
        """The numba build (a dispatcher), built on the first call, loaded from the disk cache
        when it is there."""
        if self._compiled is None:
            name = self.python.__qualname__ + self._suffix
            self._compiled = compiled_copy(self.python, name, {}, **self.options)
        return self._compiled

    def serial(self) -> Kernel[P, R]:
        """This kernel built without `parallel` (its prange a plain loop; the same operations in
        the same order, so the same bits): for calls over a handful of accounts, where waking a
        thread pool costs more than the work, and where numba's OpenMP layer would make the
        process unsafe to fork (a child of a process that ran a parallel region is terminated
        at its own first one)."""
        if not self.options.get("parallel"):
            return self
        if self._serial is None:
            options = {k: v for k, v in self.options.items() if k != "parallel"}
            self._serial = Kernel(self.python, options, suffix="_serial")
        return self._serial

    def for_work(self, work: int, mode: str | None = None) -> Callable[P, R]:
        """The Python function or a compiled build, as `interpret(work, mode)` says (`work`:
        estimated microseconds interpreted). A kernel already compiled in this process stays
        compiled (outside `python` mode): its price is paid, and interpreting a small call beside
        it would only add the interpreter's cost (a stress round re-margining a few accounts
        after a whole-book pass). A parallel kernel runs its serial build below
        PARALLEL_MIN_WORK_US (the same bits): the thread pool's wake-up costs more than the split
        saves there, and its workers spin on the other cores after every region (a venue's
        crash tick, re-margining a few accounts per liquidation, burnt a second core: process
        CPU twice its wall time)."""
        chosen = environment_mode() if mode is None else mode
        if chosen == "python" or (not self._any_compiled() and interpret(work, chosen)):
            return self.python
        if self.options.get("parallel") and work < PARALLEL_MIN_WORK_US:
            return self.serial().compiled()
        return self.compiled()

    def _any_compiled(self) -> bool:
        serial = self._serial
        return self._compiled is not None or (serial is not None and serial._compiled is not None)


def kernel(**options: Any) -> Callable[[Callable[P, R]], Kernel[P, R]]:
    """Decorator: a `Kernel` compiled with numba.njit(cache=True, **options) when compiled."""

    def wrap(function: Callable[P, R]) -> Kernel[P, R]:
        return Kernel(function, options)

    return wrap


def compiled_copy(function: Callable[..., Any], name: str, rebound: Mapping[str, Any], **options: Any) -> Any:
    """numba.njit(cache=True, **options) of a copy of `function` named `name` (numba's cache
    files are named by it), whose globals bind `prange` to numba.prange, every `Kernel` it names
    to that kernel's compiled build, and then `rebound`'s names to their values. Imports numba."""
    import numba

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
