"""A read-only sequence of generated wire objects, each made when it is read: a bench's million.

Item i is make(i), built on every read and never kept, so a fake can serve a dataset that
would not fit in memory as a list of dicts. The items' `sorted_by` field strictly increases
with i (the generators stamp base_time + i * step), so the items are also in the order of
any key that starts with that time, and a fake finds a time window or the rest of a keyset
page by bisection (`where`): a page costs the same at any size. The fakes take that path
only for a Generated sequence; the lists tests build and edit keep their filter-and-sort.
"""

from __future__ import annotations

import bisect
import copy
import operator
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar, overload

T = TypeVar("T")
U = TypeVar("U")

# For where(): the bisection that finds where the items satisfying a comparison start or end.
_FIRST = {operator.ge: bisect.bisect_left, operator.gt: bisect.bisect_right}
_END = {operator.lt: bisect.bisect_left, operator.le: bisect.bisect_right}


class Generated(Sequence[T]):
    """Items make(0) .. make(count - 1), ascending in their `sorted_by` field.

    index_of: the index an id names, or None for an id no item has (ids that encode their
    index make `find` a computation, not a map of the whole dataset).
    Slices are views of the same kind; a reversed one ([::-1]) serves a descending order,
    but `where` needs an ascending one.
    """

    def __init__(self, make: Callable[[int], T], count: int, sorted_by: str | None, *,
                 index_of: Callable[[str], int | None] | None = None) -> None:
        self.make = make
        self.sorted_by = sorted_by
        self.index_of = index_of
        self._indices = range(count)

    def __len__(self) -> int:
        return len(self._indices)

    @overload
    def __getitem__(self, position: int) -> T: ...

    @overload
    def __getitem__(self, position: slice) -> Generated[T]: ...

    def __getitem__(self, position: int | slice) -> T | Generated[T]:
        if isinstance(position, slice):
            return self._view(self._indices[position])
        return self.make(self._indices[position])

    def __iter__(self) -> Iterator[T]:
        return map(self.make, self._indices)

    def __repr__(self) -> str:
        return f"<Generated {self._indices} sorted by {self.sorted_by}>"

    def where(self, key: Callable[[T], Any], compare: Callable[[Any, Any], bool],
              bound: Any) -> Generated[T]:
        """The items with compare(key(item), bound), compare one of operator's ge, gt, lt,
        le, eq, found by bisection: `key` must ascend with position (a time in sorted_by,
        or a tuple that starts with it)."""
        if compare is operator.eq:
            return self.where(key, operator.ge, bound).where(key, operator.le, bound)
        if compare in _FIRST:
            return self[_FIRST[compare](self, bound, key=key):]
        if compare in _END:
            return self[:_END[compare](self, bound, key=key)]
        raise ValueError(f"no bisection for {compare!r}")

    def find(self, ident: str) -> T | None:
        """The item the id names, or None (an id no item in this view has)."""
        if self.index_of is None:
            raise TypeError("find() needs a Generated made with index_of")
        index = self.index_of(ident)
        return self.make(index) if index is not None and index in self._indices else None

    def map(self, function: Callable[[T], U]) -> Generated[U]:
        """The same positions, each item passed through `function` when read."""
        make = self.make
        mapped: Generated[U] = Generated(lambda index: function(make(index)), 0, None)
        mapped._indices = self._indices
        return mapped

    def _view(self, indices: range) -> Generated[T]:
        view = copy.copy(self)
        view._indices = indices
        return view
