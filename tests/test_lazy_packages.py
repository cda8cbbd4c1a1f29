"""Packages that export their names lazily (crossmargin._lazy): every exported name resolves to the
object its module defines, every lazy name is in __all__ (any other is defined at once), and
importing the package alone loads none of the modules behind it (the start-up gains rest on it)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
LAZY_PACKAGES = ("crossmargin", "crossmargin.core.margin.portfolio", "crossmargin.adapters.history")


@pytest.mark.parametrize("name", LAZY_PACKAGES)
def test_every_exported_name_is_its_modules_object(name: str) -> None:
    package = importlib.import_module(name)
    eager = set(package.__all__) - set(package._LAZY)  # the root's errors: imported at once
    assert set(package._LAZY) <= set(package.__all__)
    assert all(e in vars(package) for e in eager)
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
