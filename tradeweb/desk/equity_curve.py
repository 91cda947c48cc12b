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

from django.db.models import Subquery

from orchestrator.positions import MONEY_STEP, PositionBook, Side
from tradeweb.desk import models

ZERO = Decimal(0)
# Wide enough that quantity x price (18 decimal places) plus equity never rounds before the final quantize.
EXACT = decimal.Context(prec=60)


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
    marks = mark_to_market(strategy.strategy_id, strategy.symbol, capital, fills, closes)
    if since is not None and since >= begin and marks and marks[0][0] <= since:
        return DerivedEquityCurve(marks[0][1], marks[1:])
    return DerivedEquityCurve(capital, marks)


def mark_to_market(
    strategy_id: str, symbol: str, capital: Decimal, fills: list[tuple], closes: list[tuple[datetime, Decimal]]
) -> list[tuple[datetime, Decimal]]:
    """Replay `fills` (time, intent, side, position_id, quantity, price, fee; in time order) into a position
    book and mark it at each (time, close): the equity the engine computed after each of those candles."""
    return FillReplay(strategy_id, symbol, capital).mark(fills, closes)


class FillReplay:
    """A strategy's fills replayed into the core's `PositionBook`, marked at candle closes; it continues where it
    stopped, so a curve derived once is extended by the candles and fills that came after."""

    __slots__ = ("symbol", "capital", "book", "held", "constant")

    def __init__(self, strategy_id: str, symbol: str, capital: Decimal) -> None:
        self.symbol = symbol
        self.capital = capital
        self.book = PositionBook(strategy_id)
        self.held, self.constant = ZERO, capital

    def mark(self, fills: list[tuple], closes: list[tuple[datetime, Decimal]]) -> list[tuple[datetime, Decimal]]:
        """Apply `fills` (time, intent, side, position_id, quantity, price, fee; in time order, after those
        applied before) and mark the book at each (time, close) after the last one marked, a fill at a candle's
        time before that candle's close."""
        book, symbol, capital = self.book, self.symbol, self.capital
        held, constant = self.held, self.constant
        marks, next_fill = [], 0
        with decimal.localcontext(EXACT):
            for time, close in closes:
                if next_fill < len(fills) and fills[next_fill][0] <= time:
                    while next_fill < len(fills) and fills[next_fill][0] <= time:
                        apply_fill(book, symbol, fills[next_fill])
                        next_fill += 1
                    held, constant = linear_equity(book, capital)
                marks.append((time, (constant + held * close).quantize(MONEY_STEP, rounding=ROUND_HALF_UP)))
        self.held, self.constant = held, constant
        return marks


def apply_fill(book: PositionBook, symbol: str, fill: tuple) -> None:
    """One stored fill, as the engine applied it to its book."""
    time, intent, side, position_id, quantity, price, fee = fill
    if intent == "open":
        # A buy opens a long, a sell a short.
        book.open(position_id, symbol, Side.LONG if side == "buy" else Side.SHORT, quantity, price, fee, time)
    else:
        book.reduce(position_id, quantity, price, fee, time)


def linear_equity(book: PositionBook, capital: Decimal) -> tuple[Decimal, Decimal]:
    """(signed quantity held, constant) such that equity at a close is constant + held x close; the same sum
    as capital + realized + each open position's (close - entry) x quantity x sign - entry fee still owed."""
    held, constant = ZERO, capital + book.realized_pnl
    for position in book.open_positions():
        signed = position.quantity * position.side.sign
        held += signed
        constant -= position.entry_price * signed + position.entry_fee
    return held, constant


def underwater(curve: DerivedEquityCurve) -> list[tuple[datetime, float]]:
    """The fall below the running peak at each mark (0 or negative, a fraction), the peak starting at the
    curve's start: the drawdown `orchestrator.metrics` measures, in floats (for a chart)."""
    peak, points = float(curve.start), []
    for time, equity in curve.marks:
        value = float(equity)
        if value > peak:
            peak = value
        points.append((time, value / peak - 1.0 if peak else 0.0))
    return points


def downsample(points: list[tuple[datetime, float]], buckets: int) -> list[tuple[datetime, float]]:
    """At most 2 x `buckets` + 1 points for a chart: the points cut into `buckets` runs of equal length, each
    kept as its lowest and its highest point (in time order), so that peaks and troughs (and so the deepest
    drawdown) survive exactly; the last point is always kept. Fewer points than that come back unchanged."""
    if len(points) <= 2 * buckets + 1:
        return list(points)
    values = [value for _, value in points]
    kept: list[tuple[datetime, float]] = []
    size = len(points) / buckets
    for bucket in range(buckets):
        begin, end = int(bucket * size), int((bucket + 1) * size)
        low = min(range(begin, end), key=values.__getitem__)
        high = max(range(begin, end), key=values.__getitem__)
        kept.extend(points[i] for i in sorted({low, high}))
    if kept[-1] != points[-1]:
        kept.append(points[-1])
    return kept
