"""Every exception crossmargin raises on purpose.

```
CrossMarginError                  base of everything below
 ├── InputError                   a value the core cannot accept (field + problem)
 │    └── BookFileError           a book file that cannot be loaded (file + field + problem)
 └── PricingError                 a price the model cannot reproduce (e.g. implied vol outside bounds)
```

Operating conditions (an account under water, a bankrupt account) are values in results, not
exceptions. Programmer errors (shape mismatches inside the core) surface as `InputError` from the
entry checks, so a NaN never travels silently.
"""

from __future__ import annotations


class CrossMarginError(Exception):
    """Base class of every error raised by crossmargin."""


class InputError(CrossMarginError, ValueError):
    """A value the engine cannot accept; `field` names it, `problem` says what is wrong."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class BookFileError(InputError):
    """A book file that cannot be loaded. Nothing is computed from a book that raised this."""

    def __init__(self, path: str, field: str, problem: str) -> None:
        self.path = path
        super().__init__(field, problem)
        self.args = (f"{path}: {field}: {problem}",)

    def __str__(self) -> str:
        return f"{self.path}: {self.field}: {self.problem}"


class PricingError(CrossMarginError, ValueError):
    """A price the model cannot reproduce, e.g. an option mark below intrinsic value."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")
