"""Which build of the portfolio kernel runs: `simd` (core.simd's intrinsics: sums in vector
registers, LLVM IR written through numba internals), `numba` (the same body with the plain-numba
scenario pass of scenario_pass.py: portable, 2-4x slower on the bench book, same numbers) or
`python` (that same body and scenario pass run by the interpreter, core.jit: no numba import, no
compile; for small books, where numba's start-up costs more than the arithmetic).

    CROSSMARGIN_KERNEL=auto|python|simd|numba     read once per process (core.jit), default auto:
                                                  python within the process's budget of
                                                  interpreted work (core.jit), simd after

The simd build is checked once per process before it is used: it must compile and give finite
numbers on a small account (parity with the plain build, bit for bit, is tested in CI). If it does
not (a numba or llvmlite release that changed the internals it builds on), the plain build runs
instead, with a RuntimeWarning
saying why, so portfolio margin, what-ifs and explanations keep working. Callers (and tests)
pick a build explicitly with `kernel_backend("numba")` or the `kernel=` parameters.

Each build is three copies of the bodies in kernel.py: the book kernel (parallel over
account chunks), the account kernel (serial) and the what-if (serial, calling the account
kernel). A copy is the body's code with the scenario pass rebound in its globals and its own
qualified name, so numba caches every compiled copy on disk under its own name (one Python
function compiled twice under one name shares one cache index, and the two builds evict each
other); the name carries a hash of the sources compiled into it (`_sources_digest`).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crossmargin.core import jit, position_runs, simd_layout
from crossmargin.core.margin.portfolio import kernel, scenario_pass
from crossmargin.core.margin.portfolio.inputs import KernelArrays
from crossmargin.core.margin.portfolio.kernel import AccountStreams, KernelOutputs, WhatIfBook
from crossmargin.core.position_runs import PositionRuns
from crossmargin.core.simd_layout import LANES
from crossmargin.errors import InputError

KERNEL_VARIABLE = jit.KERNEL_VARIABLE
KERNELS = ("simd", "numba", "python")
DEFAULT_KERNEL = "simd"  # the compiled build `auto` picks above the threshold


@dataclass(frozen=True, slots=True)
class KernelBackend:
    """One build of the kernel. name: the build that actually runs ("numba" when simd fell back).

    book(streams, market, out)     every account, parallel over chunks of accounts
    account(streams, market, out)  the same, serial (a one-account book)
    what_if(book, market, account, instrument, quantity, price, out)   kernel.what_if_body
    """

    name: str
    book: Any  # numba dispatchers (typed as Any, numba has no stubs), or Python functions
    account: Any
    what_if: Any

    def what_if_for(self, book: WhatIfBook, market: KernelArrays) -> Callable[..., None]:
        """`what_if` compiled (or loaded) for these two tuples' types, as a function that skips
        numba's type resolution at every call: for two NamedTuples of 31 fields that is done in
        Python, 2.5 us of a 10 us what-if (measured). Arguments as `what_if`'s, the account and
        instrument Python ints, quantity and price floats, out float64 (13,). The python build's
        what-if is already a plain function."""
        if self.name == "python":
            return self.what_if  # type: ignore[no-any-return]
        import numba

        signature = (
            numba.typeof(book),  # type: ignore[no-untyped-call]
            numba.typeof(market),  # type: ignore[no-untyped-call]
            numba.types.int64,
            numba.types.int64,
            numba.types.float64,
            numba.types.float64,
            numba.types.float64[::1],
        )
        entry_point: Callable[..., None] = self.what_if.compile(signature)
        return entry_point


def kernel_from_environment(environ: Mapping[str, str], *, work: int = 0) -> str:
    """The build CROSSMARGIN_KERNEL names for `work` (estimated microseconds interpreted; auto:
    python within core.jit's budget, simd beyond); InputError naming the variable for anything
    unknown. Under auto, a python answer spends that budget."""
    mode = jit.mode_from_environment(environ)
    return _resolved(mode, work)


def kernel_work(streams: AccountStreams | PositionRuns, market: KernelArrays) -> int:
    """Estimated microseconds of one interpreted pass over the book: ~1 us per (position or
    balance) x scenario column (measured 0.4 us CPU, bench/bench_startup.py --calibrate)."""
    balances = streams.balance_units.size if isinstance(streams, AccountStreams) else 0
    return (int(streams.quantity.size) + int(balances)) * int(market.scenario_rows.shape[1])


def _resolved(mode: str, work: int) -> str:
    if mode == "auto":
        return "python" if jit.interpret(work, mode) else DEFAULT_KERNEL
    return mode


def kernel_backend(name: str | None = None, *, work: int = 0) -> KernelBackend:
    """The build named ("simd", "numba" or "python"), or with None the one CROSSMARGIN_KERNEL
    names for `work` (`kernel_work`)."""
    if name is None:
        name = _resolved(jit.environment_mode(), work)
    elif name not in KERNELS:
        raise InputError("kernel", f"unknown kernel {name!r}: choose simd, numba or python")
    if name == "python":
        return _python()
    return _simd_or_fallback() if name == "simd" else _plain()


@functools.cache
def _python() -> KernelBackend:
    """kernel.py's bodies as they are (the plain scenario pass, `prange` = range), interpreted."""
    account = jit.python_copy(kernel.kernel_body, {})
    return KernelBackend(
        name="python",
        book=account,
        account=account,
        what_if=jit.python_copy(kernel.what_if_body, {"account_kernel": account}),
    )


@functools.cache
def _plain() -> KernelBackend:
    return _build("numba", {})


@functools.cache
def _simd_or_fallback() -> KernelBackend:
    return checked_or_plain(lambda: _build("simd", _simd_pass()))


def checked_or_plain(build: Callable[[], KernelBackend]) -> KernelBackend:
    """build(), if it compiles and gives finite numbers (`_check_against_plain`);
    otherwise the plain build, with a RuntimeWarning saying why."""
    try:
        built = build()
        _check_against_plain(built)
    # Whatever numba or llvmlite raise when their internals moved (TypingError, LoweringError,
    # AttributeError, ...), or different numbers: the portable build still works.
    except Exception as error:
        import llvmlite
        import numba

        warnings.warn(
            f"crossmargin: the simd portfolio kernel is unavailable with numba {numba.__version__} "
            f"(llvmlite {llvmlite.__version__}): {type(error).__name__}: {error}; using the plain-numba "
            f"kernel ({KERNEL_VARIABLE}=numba), same numbers, 2-4x slower",
            RuntimeWarning,
            stacklevel=4,
        )
        return _plain()
    return built


def _simd_pass() -> dict[str, Callable[..., Any]]:
    """core.simd's intrinsics under the names kernel.py calls."""
    from crossmargin.core import simd

    return {
        "two_stream_row_sum": simd.two_stream_row_sum,
        "two_stream_row_sum_worst": simd.two_stream_row_sum_worst,
        "first_worst": simd.first_worst,
    }


def _build(name: str, scenario_pass: Mapping[str, Callable[..., Any]]) -> KernelBackend:
    tag = f"{name}_{_sources_digest()}"
    account = _compiled(kernel.kernel_body, f"{tag}_account_kernel", scenario_pass, parallel=False)
    what_if_globals = {**scenario_pass, "account_kernel": account}
    return KernelBackend(
        name=name,
        book=_compiled(kernel.kernel_body, f"{tag}_book_kernel", scenario_pass, parallel=True),
        account=account,
        what_if=_compiled(kernel.what_if_body, f"{tag}_what_if", what_if_globals, parallel=False),
    )


@functools.cache
def _sources_digest() -> str:
    """A hash of the source of every module compiled into the builds, in their cached names.

    numba checks a cached build against its own file only (kernel.py), not the files of the
    functions compiled into it: after an edit of scenario_pass.py, core/simd.py or
    core/position_runs.py it would load the old code. With the hash in the name, an edit means a
    new name, so a fresh build (stale files stay behind in __pycache__, unused)."""
    digest = hashlib.sha256()
    sources = [Path(inspect.getfile(m)) for m in (kernel, scenario_pass, position_runs, simd_layout)]
    for source in [*sources, sources[-1].with_name("simd.py")]:  # core.simd: imported only to compile
        digest.update(source.read_bytes())
    return digest.hexdigest()[:12]


def _compiled(
    body: Callable[..., None], name: str, rebound: Mapping[str, Any], *, parallel: bool
) -> Callable[..., None]:
    """A numba build of `body` under its own name, with `rebound` replacing globals it calls."""
    scenario_pass.register_overloads()
    compiled: Callable[..., None] = jit.compiled_copy(body, name, rebound, parallel=parallel, nogil=True)
    return compiled


def _check_against_plain(candidate: KernelBackend) -> None:
    """Raise unless the simd account kernel compiles and runs on a small account with every
    stream and add-on in play, through both of its paths (the fused one: one block, one group; the
    stored block: here with a numeraire), giving finite numbers.

    Compiling the account build is what fails when numba's internals move. Bit-for-bit parity with
    the plain build is the test suite's job (tests/core/margin/test_portfolio_backends.py, run in
    CI at both ends of the pinned numba range), not every process's: comparing here compiled the
    plain build too, which doubled a cold start (~15 s more on the first run after install)."""
    streams, market = _sample_account()
    fused = market
    stored = market._replace(use_numeraire=True, numeraire_move=np.linspace(-0.1, 0.1, market.n_scenarios))
    for arrays in (fused, stored):
        got = _outputs(1)
        candidate.account(streams, arrays, got)
        for name, value in got._asdict().items():
            if not np.all(np.isfinite(value)):
                raise ArithmeticError(f"{candidate.name} {name} {value} is not finite on the sample account")


def _outputs(n_accounts: int) -> KernelOutputs:
    return KernelOutputs(
        grid_usd=np.empty(n_accounts),
        worst_scenario=np.empty(n_accounts, dtype=np.int64),
        min_delta_usd=np.empty(n_accounts),
        addons_usd=np.empty((n_accounts, kernel.N_ADDONS)),
    )


def _sample_account() -> tuple[AccountStreams, KernelArrays]:
    """One account: three positions (two in the general section), two balances, 14 scenarios
    (two vector blocks: 13 grid rows in one group, one depeg row), seeded random rows."""
    rng = np.random.default_rng(13)
    n_instruments, n_assets, width = 4, 2, 16
    n_positions = 3

    def floats(*shape: int) -> np.ndarray:
        return rng.normal(size=shape)

    streams = AccountStreams(
        indptr=np.array([0, n_positions], dtype=np.int64),
        instrument=np.array([0, 1, 3], dtype=np.int32),
        quantity=floats(n_positions),
        pnl_weight=floats(n_positions),
        entry_weight=floats(n_positions),
        side_weight=np.array([0.0, 0.0, -1.5]),
        general_indptr=np.array([0, 2], dtype=np.int64),
        general_row=np.array([0], dtype=np.int32),
        general_instrument=np.array([0, 1], dtype=np.int32),
        general_quantity=floats(2),
        general_run_end=np.array([1, 1 | 2 | 8], dtype=np.uint8),
        balance_ptr=np.array([0, n_assets], dtype=np.int64),
        balance_asset=np.arange(n_assets, dtype=np.int64),
        balance_units=np.abs(floats(n_assets)),
    )
    weight = np.zeros(width)
    weight[:14] = 1.0
    market = KernelArrays(
        instrument_data=np.abs(floats(n_instruments, LANES)),
        inverse_liquidity=np.full(n_instruments, 1e-3),
        side_rows=np.abs(floats(n_instruments, LANES)),
        scenario_rows=floats(3, width),
        row_of=np.array([0, 1, 2, 2], dtype=np.int32),
        row_scale=np.abs(floats(n_instruments)),
        asset_pnl=floats(n_assets, width),
        asset_price=np.abs(floats(n_assets)),
        weight=weight,
        numeraire_move=np.zeros(14),
        offset=np.zeros(width),
        group=np.zeros(14, dtype=np.int64),
        n_groups=1,
        n_grid=13,
        n_scenarios=14,
        rates=np.array([0.01, 0.02, 0.1, 0.5, 1e-3, 0.01, 0.05]),
        bookkeeping=True,
        use_numeraire=False,
        unit_value_usd=floats(n_instruments),
        entry_coefficient_usd=np.zeros(n_instruments),
    )
    return streams, market
