"""An equity curve kept compactly: a backtest marks every strategy's equity at every candle, a year of minutes
for many strategies at once."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Iterator, Sequence, overload


class EquityCurve(Sequence[tuple[datetime, Decimal]]):
    """Equity marks in time order, read as (time, equity) pairs like a list of them.

    Kept as two lists rather than a pair per mark, and an equity equal to the mark before it is kept as that
    same object: a mark of a strategy holding nothing costs two list slots (the times are the candles' own).
    """

    __slots__ = ("times", "values")

    def __init__(self, marks: Sequence[tuple[datetime, Decimal]] = ()) -> None:
        self.times: list[datetime] = []
        self.values: list[Decimal] = []
        for time, equity in marks:
            self.mark(time, equity)

    def mark(self, time: datetime, equity: Decimal) -> Decimal:
        """Add the equity at `time`; returns the object kept for it."""
        values = self.values
        if values:
            last = values[-1]
            if equity is not last and equity == last:
                equity = last
        self.times.append(time)
        values.append(equity)
        return equity

    def extend(self, times: Sequence[datetime], equities: Sequence[Decimal]) -> None:
        """Add the equity at each of `times`, in order (the first kept as the mark before it if equal)."""
        if not times:
            return
        values = self.values
        first = equities[0]
        if values and first is not values[-1] and first == values[-1]:
            # As `mark` keeps it: a run that holds nothing is one equity throughout, often the one marked last.
            last = values[-1]
            equities = [last if equity is first else equity for equity in equities]
        self.times.extend(times)
        values.extend(equities)

    @overload
    def __getitem__(self, index: int) -> tuple[datetime, Decimal]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[datetime, Decimal]]: ...

    def __getitem__(self, index):
        if isinstance(index, slice):
            return list(zip(self.times[index], self.values[index]))
        return self.times[index], self.values[index]

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self) -> Iterator[tuple[datetime, Decimal]]:
        return zip(self.times, self.values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EquityCurve):
            return self.times == other.times and self.values == other.values
        if isinstance(other, list):
            return list(self) == other
        return NotImplemented

    def __repr__(self) -> str:
        return f"EquityCurve({len(self)} marks)"
