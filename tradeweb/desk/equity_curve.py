"""A live strategy's equity curve, derived from what the desk stores rather than stored per candle.

A candle that produces no order writes nothing but the strategy's head, so there is no stored equity history.
It is rebuilt exactly from the strategy's fills and its market's stored candles: the fills are replayed into
the core's own `PositionBook` (the same Decimal arithmetic the engine used), and the book is marked at the
close of every candle the strategy took: equity(t) = capital + realized P&L + unrealized P&L at close(t).
A fill happens at a candle's open, so that candle's close already marks it. Each mark is rounded to ten
decimal places as the database keeps money, so the last mark equals `Strategy.equity` exactly.

The curve starts at the first candle its market received after the strategy was created (before it, the
strategy held nothing: its equity was its capital) and ends at the last candle it processed. Between two
fills the book does not change, so equity is linear in the close (quantity held x close + a constant): one
multiplication and one addition per candle, in a single pass, two queries in all.
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Sequence

from django.db.models import Subquery

from orchestrator.positions import MONEY_STEP, Position, PositionBook, PositionChange, Side
from tradeweb.desk import models

ZERO = Decimal(0)
# Wide enough that quantity x price (18 decimal places) plus equity never rounds before the final quantize, which
# rounds half up as the ledger does. The book's own arithmetic runs in the caller's context, as the engine's does.
EXACT = decimal.Context(prec=60, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class DerivedEquityCurve:
    """A strategy's equity derived over a period: marks (candle time, equity) in time order, and the equity
    before the first of them (the core's `orchestrator.equity_curve.EquityCurve` is a backtest's, kept as it runs)."""

    start: Decimal
    marks: list[tuple[datetime, Decimal]]

    @property
    def end(self) -> Decimal:
        """Equity at the last mark, or the start without marks."""
        return self.marks[-1][1] if self.marks else self.start


def first_candle_time(strategy: models.Strategy) -> datetime | None:
    """The time of the first candle its market received after the strategy was created."""
    return (
        models.Candle.objects.filter(symbol=strategy.symbol, timeframe=strategy.timeframe, received_at__gte=strategy.created_at)
        .order_by("time").values_list("time", flat=True).first()
    )


def derive(strategy: models.Strategy, since: datetime | None = None) -> DerivedEquityCurve:
    """The strategy's equity at the close of every candle it took, after `since` if given (then `start` is the
    equity at the last candle at or before it, or the capital if the strategy had taken none by then)."""
    capital = strategy.capital
    end = strategy.last_candle_time
    begin = first_candle_time(strategy) if end is not None else None
    if begin is None or begin > end:
        return DerivedEquityCurve(capital, [])
    candles = models.Candle.objects.filter(symbol=strategy.symbol, timeframe=strategy.timeframe, time__lte=end)
    if since is not None and since >= begin:
        # The last candle at or before `since` marks the starting equity of the period.
        anchor = candles.filter(time__lte=since).order_by("-time").values_list("time", flat=True)[:1]
        candles = candles.filter(time__gte=Subquery(anchor))
    else:
        candles = candles.filter(time__gte=begin)
    closes = list(candles.order_by("time").values_list("time", "close"))
    fills = list(
        models.Fill.objects.filter(strategy=strategy, time__lte=end).order_by("time", "id")
        .values_list("time", "intent", "side", "position_id", "quantity", "price", "fee")
    )
    times = [time for time, _ in closes]
    replay = FillReplay(strategy.strategy_id, strategy.symbol, capital)
    equities = replay.mark(fills, times, [close for _, close in closes])
    marks = list(zip(times, equities))
    if since is not None and since >= begin and marks and marks[0][0] <= since:
        return DerivedEquityCurve(marks[0][1], marks[1:])
    return DerivedEquityCurve(capital, marks)


class FillReplay:
    """A strategy's fills replayed into the core's `PositionBook`, marked at candle closes; it continues where it
    stopped, so a curve derived once is extended by the candles and fills that came after. Times are whatever the
    caller reads them as (datetimes, or microseconds since 1970), the same for fills and candles; the positions the
    fills closed are kept in `closed` (the book's own figures, as the engine stored them) until the caller takes
    them."""

    __slots__ = ("book", "capital", "closed", "constant", "held", "symbol")

    def __init__(self, strategy_id: str, symbol: str, capital: Decimal) -> None:
        self.symbol = symbol
        self.capital = capital
        self.book = PositionBook(strategy_id)
        self.held, self.constant = ZERO, capital
        self.closed: list[Position] = []

    def mark(self, fills: Sequence[tuple], times: Sequence[Any], closes: Sequence[Decimal]) -> list[Decimal]:
        """Apply `fills` (time, intent, side, position_id, quantity, price, fee, then anything; in time order, after
        those applied before) and mark the book at each close (at `times`, after the last one marked): the equity
        at each, a fill at a candle's time counted before that candle's close."""
        book, symbol, capital, closed = self.book, self.symbol, self.capital, self.closed
        held, constant = self.held, self.constant
        equities: list[Decimal] = []
        append = equities.append
        quantize, fma = EXACT.quantize, EXACT.fma  # held x close + constant, exactly
        count, next_fill = len(fills), 0
        due = fills[0][0] if fills else None  # the next fill's time
        for time, close in zip(times, closes):
            if due is not None and due <= time:
                while next_fill < count and fills[next_fill][0] <= time:
                    change = apply_fill(book, symbol, fills[next_fill])
                    if change.kind == "closed":
                        closed.append(change.position)
                    next_fill += 1
                due = fills[next_fill][0] if next_fill < count else None
                held, constant = linear_equity(book, capital)
            append(quantize(fma(held, close, constant), MONEY_STEP))
        self.held, self.constant = held, constant
        return equities


def apply_fill(book: PositionBook, symbol: str, fill: tuple) -> PositionChange:
    """One stored fill, as the engine applied it to its book."""
    time, intent, side, position_id, quantity, price, fee = fill[:7]
    if intent == "open":
        # A buy opens a long, a sell a short.
        return book.open(position_id, symbol, Side.LONG if side == "buy" else Side.SHORT, quantity, price, fee, time)
    return book.reduce(position_id, quantity, price, fee, time)


def linear_equity(book: PositionBook, capital: Decimal) -> tuple[Decimal, Decimal]:
    """(signed quantity held, constant) such that equity at a close is constant + held x close; the same sum
    as capital + realized + each open position's (close - entry) x quantity x sign - entry fee still owed."""
    add, subtract, multiply = EXACT.add, EXACT.subtract, EXACT.multiply
    held, constant = ZERO, add(capital, book.realized_pnl)
    for position in book.held:
        signed = position.quantity if position.side is Side.LONG else EXACT.minus(position.quantity)
        held = add(held, signed)
        constant = subtract(constant, add(multiply(position.entry_price, signed), position.entry_fee))
    return held, constant
