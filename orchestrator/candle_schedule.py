"""A strategy's way through a backtest's run of candles: the candles on which something can happen go through its
orchestrator's `process`, one by one, as a live worker gives them; the quiet ones between are taken at once.

A candle can change something only if an order waits for its open, it reaches a stop or a target, the strategy's
loss limits must be checked at its close, or the strategy may decide on it (`DecidesOnKnownCandles`); a strategy
that cannot tell takes every candle. On a quiet candle the orchestrator only moves on: its last candle and close,
and its equity marks (`StrategyOrchestrator.pass_quiet`).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from operator import attrgetter

from orchestrator.candles import Candle
from orchestrator.engine import StrategyOrchestrator
from orchestrator.equity_curve import EquityCurve
from orchestrator.positions import PositionBook

# Candles whose range is checked against a book's stops and targets in one slice before they are looked at one by one.
TOUCH_CHUNK = 64


class CandleColumns:
    """A market's run of candles as columns, taken out of the candles once for every strategy of the market; the
    lows and highs only once a book with a stop or a target asks."""

    __slots__ = ("_candles", "_highs", "_lows", "closes", "times")

    def __init__(self, candles: Sequence[Candle]) -> None:
        self._candles = candles
        self.times: list[datetime] = list(map(attrgetter("time"), candles))
        self.closes: list[Decimal] = list(map(attrgetter("close"), candles))
        self._lows: list[Decimal] | None = None
        self._highs: list[Decimal] | None = None

    @property
    def lows(self) -> list[Decimal]:
        if self._lows is None:
            self._lows = list(map(attrgetter("low"), self._candles))
        return self._lows

    @property
    def highs(self) -> list[Decimal]:
        if self._highs is None:
            self._highs = list(map(attrgetter("high"), self._candles))
        return self._highs

    def __len__(self) -> int:
        return len(self.times)

    def first_touching(self, book: PositionBook, start: int, stop: int) -> int:
        """The first candle from `start` (before `stop`) whose range reaches a stop or a target of `book`, or `stop`."""
        lows, highs, untouched_by = self.lows, self.highs, book.untouched_by
        while start < stop:
            end = min(start + TOUCH_CHUNK, stop)
            if not untouched_by(min(lows[start:end]), max(highs[start:end])):
                for index in range(start, end):
                    if not untouched_by(lows[index], highs[index]):
                        return index
            start = end
        return stop


class CandleSchedule:
    """Which candle of the run its orchestrator takes next (`due`), and the equity curve marked at every candle."""

    __slots__ = ("_cursor", "_taken", "columns", "curve", "decisions", "due", "orchestrator")

    def __init__(self, orchestrator: StrategyOrchestrator, columns: CandleColumns, decisions: Sequence[int] | None,
                 curve: EquityCurve) -> None:
        self.orchestrator = orchestrator
        self.columns = columns
        # The candles on which the strategy may decide; None: every candle.
        self.decisions = decisions
        self.curve = curve
        # Candles before this one are taken.
        self._taken = 0
        self._cursor = 0
        self.due = self._next_from(0)

    def take(self, index: int, candle: Candle) -> bool:
        """Process the due candle (`index` of the run), after the quiet ones before it; whether it changed a position."""
        self._pass_quiet(index)
        orchestrator = self.orchestrator
        result = orchestrator.process(candle)
        self.curve.mark(candle.time, orchestrator.equity)
        self._taken = index + 1
        self.due = self._next_from(index + 1)
        return result is not None and bool(result.positions)

    def finish(self) -> None:
        """Take the quiet candles after the last due one, to the end of the run."""
        self._pass_quiet(len(self.columns))

    def _pass_quiet(self, stop: int) -> None:
        start = self._taken
        if start < stop:
            self.curve.extend(self.columns.times[start:stop], self.orchestrator.pass_quiet(self.columns, start, stop))
            self._taken = stop

    def _next_from(self, start: int) -> int:
        """The first candle from `start` on which something can happen; the run's length if none."""
        orchestrator = self.orchestrator
        if self.decisions is None or not orchestrator.takes_quiet_candles:
            return start
        decisions = self.decisions
        cursor = self._cursor
        if cursor < len(decisions) and decisions[cursor] < start:
            cursor = self._cursor = bisect_right(decisions, start - 1, cursor)
        due = decisions[cursor] if cursor < len(decisions) else len(self.columns)
        book = orchestrator.book
        if book.protected:
            due = self.columns.first_touching(book, start, due)
        return due
