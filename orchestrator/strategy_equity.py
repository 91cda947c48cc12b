"""A strategy's equity (its capital and its book's P&L) marked at the closes it takes, for its loss limits and
the equity it reports, priced only when something reads it."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from itertools import repeat

from orchestrator.loss_limits import EARLIEST, EquityMarks
from orchestrator.positions import LONG, PositionBook

ZERO = Decimal(0)


class StrategyEquity:
    """The equity of one strategy, its capital plus its book's realized and unrealized P&L, marked close by close
    into `marks` (the peak, the UTC day's start, the last) as its loss limits read them.

    A quiet close, one that changes nothing but the price, is not priced at once. Holding nothing, the equity
    stays what the last fill made it. Holding positions of one side, the equity rises with the close (a long
    book) or falls with it (a short one), each Decimal operation being monotonic: the highest equity since the
    book last changed is the one at the highest close (the lowest, short). So until something reads the marks,
    or a fill is about to change the book, only the last close and that extreme one are kept; `settle` prices
    those two and leaves the marks exactly as marking every close would have. The first close of a UTC day, and
    any close of a book holding both sides, is marked at once.
    """

    __slots__ = ("capital", "book", "_marks", "_priced_close", "_priced", "_until", "_last", "_extreme")

    def __init__(self, capital: Decimal, book: PositionBook) -> None:
        # Fixed for the orchestrator's life: a new capital rebuilds the orchestrator.
        self.capital = capital
        self.book = book
        self._marks = EquityMarks()
        # The close last priced and its equity: read again for every candle of a backtest, not worked out twice.
        self._priced_close: Decimal | None = None
        self._priced = ZERO
        # A close before this may wait: the end of the UTC day last marked (the earliest time until a close was).
        self._until = EARLIEST
        # The last close not priced yet, and the highest (long) or lowest (short) since the marks were settled.
        self._last: Decimal | None = None
        self._extreme: Decimal | None = None

    @property
    def marks(self) -> EquityMarks:
        """The marks up to the last close taken."""
        self.settle()
        return self._marks

    @marks.setter
    def marks(self, marks: EquityMarks) -> None:
        self._last = self._extreme = None
        self._until = EARLIEST
        self._marks = marks

    def at(self, close: Decimal | None) -> Decimal:
        """Capital plus realized P&L plus unrealized P&L if the market were at `close`."""
        return self.capital + self.book.realized_pnl + self.unrealized_at(close)

    def unrealized_at(self, close: Decimal | None) -> Decimal:
        """The open positions' P&L at `close` (none without a close)."""
        return self.book.unrealized_at(close) if close is not None and self.book.held else ZERO

    def current(self, last_close: Decimal | None) -> Decimal:
        """The equity at the last close."""
        # Only a candle moves the book, and it prices its close: that price holds while the last close is its.
        if last_close is self._priced_close and last_close is not None:
            return self._priced
        book = self.book
        if last_close is None or not book.held:
            return self.at(last_close)
        # `at`, spelled out: a backtest asks for every candle of a strategy holding a position.
        self._priced_close = last_close
        self._priced = equity = self.capital + book.realized_pnl + book.unrealized_at(last_close)
        return equity

    def price(self, close: Decimal, fresh: bool) -> tuple[Decimal, Decimal]:
        """The equity and the unrealized P&L at `close`, kept as the last priced; `fresh` after a fill (holding
        nothing, the equity priced last is kept otherwise)."""
        book = self.book
        if book.held:
            unrealized = book.unrealized_at(close)
            equity = self.capital + book.realized_pnl + unrealized
        else:
            unrealized = ZERO
            equity = self.capital + book.realized_pnl if fresh or self._priced_close is None else self._priced
        self._priced_close = close
        self._priced = equity
        return equity, unrealized

    def mark(self, time: datetime, close: Decimal, fresh: bool) -> tuple[Decimal, Decimal]:
        """Price the close at `time` (see `price`) and mark it now; returns the equity and the unrealized P&L."""
        self.settle()
        equity, unrealized = self.price(close, fresh)
        marks = self._marks
        # Marking the equity last marked, on the same UTC day, changes nothing.
        if equity != marks.last or not marks.day_begins <= time < marks.day_ends:
            marks.mark(time, equity, self.capital)
        self._until = marks.day_ends if marks.peak is not None else EARLIEST
        return equity, unrealized

    def defer(self, time: datetime, close: Decimal) -> bool:
        """Take a quiet close at `time` (no fill, no limit to check) without pricing it, if it can wait; False if
        it must be marked now (`mark`)."""
        # Closes come in time order: one before the end of the day last marked is of that day.
        if time >= self._until:
            return False
        book = self.book
        if not book.held:
            # The equity priced last holds (only a fill moves it), and is the last marked unless the marks were
            # changed since.
            last = self._marks.last
            if self._priced is not last and self._priced != last:
                return False
            self._priced_close = close
            return True
        side = book.side
        if side is None:
            return False
        extreme = self._extreme
        if extreme is None or (close > extreme if side is LONG else close < extreme):
            self._extreme = close
        self._last = close
        return True

    def defer_run(self, times: Sequence[datetime], closes: Sequence[Decimal], start: int, stop: int) -> int:
        """Take the quiet closes from `start` (before `stop`) that can wait, as `defer` takes them one by one;
        returns the index of the first that must be marked now (`mark`), or `stop`."""
        # Every close before the end of the day last marked can wait, if the first can: nothing between changes that.
        end = bisect_left(times, self._until, start, stop)
        if end == start:
            return start
        book = self.book
        if not book.held:
            last = self._marks.last
            if self._priced is not last and self._priced != last:
                return start
            self._priced_close = closes[end - 1]
            return end
        side = book.side
        if side is None:
            return start
        run = closes[start:end]
        extreme, reached = self._extreme, max(run) if side is LONG else min(run)
        if extreme is None or (reached > extreme if side is LONG else reached < extreme):
            self._extreme = reached
        self._last = closes[end - 1]
        return end

    def series(self, closes: Sequence[Decimal]) -> list[Decimal]:
        """The equity at each of `closes` with the book as it is, as `current` prices each: for a run of candles
        that fill nothing."""
        base = self.capital + self.book.realized_pnl
        if not self.book.held:
            return list(repeat(base + ZERO, len(closes)))
        return self.book.equity_series(base, closes)

    def settle(self) -> None:
        """Mark the closes taken but not priced yet: before the book changes, and whenever the marks are read."""
        extreme = self._extreme
        if extreme is None:
            return
        last = self._last
        self._last = self._extreme = None
        marks = self._marks
        equity, _ = self.price(last, False)
        if equity != marks.last:
            marks.last = equity
        highest = equity if extreme is last else self.at(extreme)
        if highest > marks.peak:
            marks.peak = highest
