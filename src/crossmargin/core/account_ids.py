"""Account ids in row order, growable without a copy: the ids of a book that a venue grows.

A book of 1,000,000 accounts kept its ids as a tuple, and every sign-up (`Book.with_new_accounts`)
built a new 1M-element tuple and, once the old book was dropped, freed the old one: ~10 ms to
build and ~7 ms to free per growth on an Intel Xeon, family 6 model 167, paid in the tick that
follows a sign-up (bench/bench_service.py, "a tick after 10 sign-ups").

`AccountIds` is the first n ids of a list shared along a line of grown books: growing appends to
the list (O(new ids)) and hands out a longer prefix; the shorter prefixes that older books hold
never see the appended ids. Growing an older book again (a fork) copies its prefix. Reads are the
list's own C loops (iteration, `index`, `gather`); the object is immutable to its users.
"""

from __future__ import annotations

import itertools
import operator
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload


class AccountIds(Sequence[str]):
    """The first `len(self)` entries of a shared, append-only list of account ids."""

    __slots__ = ("_ids", "_n")

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._ids: list[str] = list(ids)
        self._n = len(self._ids)

    @classmethod
    def of(cls, ids: Iterable[str]) -> AccountIds:
        """`ids` itself if it is an AccountIds (immutable: no copy), else a new one."""
        return ids if isinstance(ids, AccountIds) else cls(ids)

    def grown(self, new: Sequence[str]) -> AccountIds:
        """These ids then `new`: appended to the shared list when this is its longest prefix
        (O(len(new))), else a copy of this prefix (a fork of an older book)."""
        if len(self._ids) == self._n:
            self._ids.extend(new)
            grown = AccountIds.__new__(AccountIds)
            grown._ids, grown._n = self._ids, self._n + len(new)
            return grown
        return AccountIds(itertools.chain(itertools.islice(self._ids, self._n), new))

    def shares_storage(self, other: AccountIds) -> bool:
        """Whether both are prefixes of one list (a growth that appended, not copied)."""
        return self._ids is other._ids

    def gather(self, rows: Sequence[int]) -> tuple[str, ...]:
        """The ids of `rows` (each in range), in C (operator.itemgetter on the list)."""
        if not rows:
            return ()
        picked: Any = operator.itemgetter(*rows)(self._ids)
        return (picked,) if len(rows) == 1 else picked

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[str, ...]: ...

    def __getitem__(self, index: int | slice) -> str | tuple[str, ...]:
        if isinstance(index, slice):
            return tuple(self._ids[slice(*index.indices(self._n))])
        row = operator.index(index)
        if row < 0:
            row += self._n
        if not 0 <= row < self._n:
            raise IndexError("account row out of range")
        return self._ids[row]

    def __iter__(self) -> Iterator[str]:
        return itertools.islice(self._ids, self._n)

    def __contains__(self, value: object) -> bool:
        try:
            self.index(value)
        except ValueError:
            return False
        return True

    def index(self, value: Any, start: int = 0, stop: int = sys.maxsize) -> int:
        return self._ids.index(value, start, min(stop, self._n))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AccountIds):
            if other._ids is self._ids:
                return other._n == self._n
            return other._n == self._n and all(map(operator.eq, self, other))
        if isinstance(other, (tuple, list)):
            return len(other) == self._n and all(map(operator.eq, self, other))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __reduce__(self) -> tuple[type[AccountIds], tuple[tuple[str, ...]]]:
        """Pickled as its own ids (not the shared list's later ones)."""
        return (AccountIds, (tuple(self),))

    def __repr__(self) -> str:
        return f"AccountIds({tuple(self)!r})"
