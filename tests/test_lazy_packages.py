"""Packages that export their names lazily (crossmargin._lazy): every exported name resolves to the
object its module defines, the lazy table and __all__ list the same names, and importing the
package alone loads none of the modules behind it (what the start-up gains rest on)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
LAZY_PACKAGES = ("crossmargin.core.margin.portfolio", "crossmargin.adapters.history")


@pytest.mark.parametrize("name", LAZY_PACKAGES)
def test_every_exported_name_is_its_modules_object(name: str) -> None:
    package = importlib.import_module(name)
    assert set(package.__all__) == set(package._LAZY)
    for exported, module in package._LAZY.items():
        assert getattr(package, exported) is getattr(importlib.import_module(module), exported)
        assert exported in dir(package)
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        package.missing  # noqa: B018


@pytest.mark.parametrize("name", LAZY_PACKAGES)
def test_importing_the_package_loads_none_of_its_modules(name: str) -> None:
    code = (
        f"import sys, {name} as package\n"
        "modules = set(package._LAZY.values())\n"
        "print(sorted(m for m in modules if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONPATH": str(SRC)}
    )
    assert done.stdout.strip() == "[]"
