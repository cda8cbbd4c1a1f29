"""Code run in a child Python process, for tests of process-wide state (the kernel policy, the
kernel builds a process has loaded, the collector and allocator policies)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


def run_child(code: str, *args: str, kernel: str, timeout_s: float = 900) -> Any:
    """Run `code` with `args` under CROSSMARGIN_KERNEL=`kernel` and this process's import path;
    the child's last printed line, read as JSON."""
    env = {**os.environ, "CROSSMARGIN_KERNEL": kernel, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])
