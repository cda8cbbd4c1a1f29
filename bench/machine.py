"""The machine a benchmark ran on, for the line beside every figure (machines differ: Zen 2
without AVX-512 to Zen 5, Intel with AMX): model name, family and model (a virtualised CPU's
name often says no more, e.g. family 26 is Zen 5) and the widest SIMD it offers."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """'NAME (family F, model M, SIMD)' from /proc/cpuinfo's first CPU, or the platform's word."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip() and fields:
                break
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or platform.machine() or "unknown"
    flags = fields.get("flags", "").split()
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SSE"
    name = fields.get("model name", "unknown")
    return f"{name} (family {fields.get('cpu family', '?')}, model {fields.get('model', '?')}, {simd})"


def compiled_kernels() -> str:
    """CROSSMARGIN_KERNEL for a steady-state benchmark: `simd` (every kernel compiled from its
    first call) unless the caller set it. Under the default, `auto`, a process interprets its
    first ~1 s of estimated kernel work (core.jit's ski rental, so that a one-shot run on a small
    book never imports numba): a benchmark's warm-up and first repeats would then time the
    interpreter (bench_portfolio's scenario pricing: ~80 ms a call interpreted, ~2 ms compiled,
    for ~18 calls). The one-shot paths (bench_startup, bench_pipeline) keep `auto` on purpose.
    Returns the mode in force, for the report."""
    return os.environ.setdefault("CROSSMARGIN_KERNEL", "simd")
