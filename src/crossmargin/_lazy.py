"""Names of a package imported on first use (PEP 562, https://peps.python.org/pep-0562/).

    _LAZY = {"PortfolioMargin": "crossmargin.core.margin.portfolio.model", ...}
    __getattr__, __dir__ = lazy_names(__name__, _LAZY, __all__)

A package that re-exports its modules' names would import every module on its first import; a
command that needs one of them paid for all (the portfolio kernel modules cost a cross margin
run ~40 ms of start-up on an AMD EPYC Zen 1). With this, `from package import Name` imports
Name's module then, and keeps Name in the package. Declare the same imports under
`if TYPE_CHECKING:` for mypy and editors.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_names(
    package: str, modules: Mapping[str, str], public: Sequence[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """(__getattr__, __dir__) for `package`: name -> the module (absolute) that defines it."""

    def get_attribute(name: str) -> Any:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def directory() -> list[str]:
        return sorted({*vars(sys.modules[package]), *public})

    return get_attribute, directory
