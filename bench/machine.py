"""The machine a benchmark ran on, for the line beside every figure (machines differ: Zen 2
without AVX-512 to Zen 5, Intel with AMX): model name, family and model (a virtualised CPU's
name often says no more, e.g. family 26 is Zen 5) and the widest SIMD it offers."""

from __future__ import annotations

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
