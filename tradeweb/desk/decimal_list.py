"""A list of Decimals that may hold some as their text, each made a Decimal when first read: a history read back
from its checkpoint (`history_packing`) holds tens of thousands of marks and fees, of which a page reads a few dozen
(the last mark of each day, the last fees paid), and making a Decimal of text costs as much as the rest of reading
the checkpoint back."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Self, overload


class DecimalList:
    """Decimals, some kept as text until read: read, sliced, appended to and extended as a list of Decimals is.
    A value made from its text replaces it, so each is made once."""

    __slots__ = ("_values",)
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, values: Iterable[Decimal | str] = ()) -> None:
        self._values: list[Decimal | str] = list(values)

    def __len__(self) -> int:
        return len(self._values)

    @overload
    def __getitem__(self, index: int) -> Decimal: ...

    @overload
    def __getitem__(self, index: slice) -> list[Decimal]: ...

    def __getitem__(self, index: int | slice) -> Decimal | list[Decimal]:
        values = self._values
        if isinstance(index, slice):
            # Concrete bounds: the list may grow meanwhile (a history extended in another thread), never shrink.
            start, stop, step = index.indices(len(values))
            chunk = values[start:stop:step]
            if str not in set(map(type, chunk)):
                return chunk  # type: ignore[return-value]
            made = [Decimal(value) if value.__class__ is str else value for value in chunk]
            values[start:stop:step] = made
            return made
        value = values[index]
        if value.__class__ is str:
            value = values[index] = Decimal(value)
        return value  # type: ignore[return-value]

    def __iter__(self) -> Iterator[Decimal]:
        return iter(self[:])

    def __iadd__(self, values: Iterable[Decimal]) -> Self:
        self._values.extend(values)
        return self

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (DecimalList, list, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    def __repr__(self) -> str:
        return f"DecimalList({self._values!r})"

    def append(self, value: Decimal) -> None:
        """Add a value at the end."""
        self._values.append(value)

    def texts(self) -> Iterator[str]:
        """Each value's text (that of a Decimal is exact: it reads back as the same Decimal), without making a
        Decimal of those still held as text."""
        return map(str, self._values)
