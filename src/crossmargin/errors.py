"""Every exception crossmargin raises on purpose.

```
CrossMarginError                  base of everything below
 ├── InputError                   a value the core cannot accept (field + problem)
 │    ├── BookFileError           a book file that cannot be loaded (file + field + problem)
 │    └── MissingExtraError       a command needs an optional extra that is not installed
 ├── PricingError                 a price the model cannot reproduce (e.g. implied vol outside bounds)
 ├── OracleError                  a price an action may not use (core.oracle.policy.require_valid)
 │    ├── StaleOracleError        too old or too few live sources (asset, age_ms, limit_ms)
 │    └── UntrustedOracleError    held by a circuit breaker, no price, or sources disagree
 ├── IdempotencyConflictError     a key already used for a different request (key, sequence)
 └── StoreError                   the event store cannot do what was asked (nothing was written)
      ├── DurabilityError         the database is not configured durably (setting, value, wanted)
      ├── CorruptLogError         the log or a snapshot fails verification (sequence, reason)
      └── VenueUnavailableError   the venue stopped accepting commands (a failed commit, shutdown)
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


class MissingExtraError(InputError):
    """An optional dependency (a pip extra) a command needs is not installed: the message names
    the pip command that installs it. Nothing was computed."""

    def __init__(self, module: str, *, extra: str, purpose: str) -> None:
        self.module = module
        self.extra = extra
        super().__init__(
            extra, f"{purpose} needs {module!r}, not installed: pip install 'crossmargin[{extra}]'"
        )


class PricingError(CrossMarginError, ValueError):
    """A price the model cannot reproduce, e.g. an option mark below intrinsic value."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class OracleError(CrossMarginError):
    """A price an action may not use. Operating condition: callers that handle many assets use
    the validity masks of core.oracle.policy instead; this is for the one-asset path."""

    def __init__(self, asset: str, message: str) -> None:
        self.asset = asset
        super().__init__(f"{asset}: {message}")


class StaleOracleError(OracleError):
    """The asset's price is older than the action allows, or too few sources are live."""

    def __init__(self, asset: str, *, age_ms: float, limit_ms: float) -> None:
        self.age_ms = age_ms
        self.limit_ms = limit_ms
        super().__init__(asset, f"oracle price is {age_ms:,.0f} ms old (limit {limit_ms:,.0f} ms) or stale")


class UntrustedOracleError(OracleError):
    """The asset's price is held by a circuit breaker, missing, or its sources disagree too much."""

    def __init__(self, asset: str, *, action: str, reason: str) -> None:
        self.action = action
        self.reason = reason
        super().__init__(asset, f"oracle price not valid for {action}: {reason}")


class IdempotencyConflictError(CrossMarginError):
    """An idempotency key already acknowledged (at `sequence`) for a different request body."""

    def __init__(self, key: str, sequence: int) -> None:
        self.key = key
        self.sequence = sequence
        super().__init__(f"idempotency key {key!r} was used at sequence {sequence} for a different request")


class StoreError(CrossMarginError):
    """The event store could not do what was asked; nothing was written."""


class DurabilityError(StoreError):
    """The database would not keep a commit across a crash: `setting` is `value`, needs `wanted`."""

    def __init__(self, setting: str, value: str, wanted: str) -> None:
        self.setting = setting
        self.value = value
        self.wanted = wanted
        super().__init__(f"durability: {setting} is {value!r}, must be {wanted}")


class CorruptLogError(StoreError):
    """The log (or a snapshot) fails verification at `sequence`: `reason` says how."""

    def __init__(self, sequence: int, reason: str) -> None:
        self.sequence = sequence
        self.reason = reason
        super().__init__(f"event log corrupt at sequence {sequence}: {reason}")


class VenueUnavailableError(StoreError):
    """The venue accepts no more commands (a commit failed, or it is shutting down): restart it;
    it recovers from the log."""
