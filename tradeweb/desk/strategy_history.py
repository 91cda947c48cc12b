"""A strategy's derived history (its equity at every candle it took, its closed trades, the fees it paid), derived
once and then extended as the strategy moves on, so that the P&L page does not replay every fill and read every
candle on each request (a web process keeps it, `history_cache`; the database keeps a checkpoint of it,
`history_checkpoints`).

What a strategy stored up to its last candle never changes: its fills, candles and closed positions are written
in the same transaction that moves its row to that candle, and the ledger is never edited. So the history derived
up to one candle is extended with what came after it alone: the candles after the last one marked, the fills and
the positions closed after it, replayed into the same `FillReplay` (the core's PositionBook). The result equals
`equity_curve.derive` mark for mark, as long as what it was derived from besides the ledger stays
(`history_identity`: the strategy's row, capital and market).

Tens of thousands of marks are read and kept cheaply: times as microseconds since 1970 (`epoch`), and beside each
mark what grows with it and is read for every period: the equity as a float (the charts), the end of each UTC day
(daily returns and the breakdown), and the drawdown and the fall below the running peak of the whole curve.
"""

from __future__ import annotations

import gc
import threading
from bisect import bisect_left, bisect_right
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cached_property
from itertools import accumulate
from typing import Any, Callable, Hashable, Iterator

from django.db.models import OuterRef, Q, QuerySet, Subquery

from orchestrator.engine import WIND_DOWN_CLOSE_REASON
from orchestrator.exit_reasons import HALT_CLOSE_PREFIX, exit_reason
from orchestrator.metrics import RunningDrawdown, Trade
from orchestrator.orders import OrderIntent
from tradeweb.desk import models
from tradeweb.desk.decimal_list import DecimalList
from tradeweb.desk.epoch import MICROSECONDS_A_DAY, EpochMicroseconds, microseconds, moment
from tradeweb.desk.equity_curve import DerivedEquityCurve, FillReplay, first_candle_time

ZERO = Decimal(0)


def history_identity(strategy: models.Strategy) -> tuple:
    """What a strategy's history is derived from besides its ledger: its row (another one under the same id is
    another strategy), its capital (every mark moves with it) and its market (whose candles it marks)."""
    return strategy.pk, strategy.created_at, strategy.capital, strategy.symbol, strategy.timeframe


def underwater(levels: list[float], peak: float) -> list[float]:
    """The fall of each level below the running peak (0 or negative, a fraction), the peak starting at `peak`: the
    drawdown `orchestrator.metrics` measures, in floats (for a chart)."""
    peaks = accumulate(levels, max, initial=peak)
    next(peaks)
    return [level / top - 1.0 if top else 0.0 for level, top in zip(levels, peaks)]


@dataclass(frozen=True, eq=False)
class HistoryPeriod:
    """The marks of a history after a moment, up to its last one when taken: a view of the history's lists, not a
    copy (and not the history itself, which keeps what is worked out of its periods). The page reads its ends and its
    length; exports (and tests) its marks, made when first asked for."""

    times: list[int]  # the history's
    equities: DecimalList  # the history's
    first: int  # the index of its first mark in the history
    stop: int  # one past the index of its last
    start: Decimal  # the equity before its first mark

    def __len__(self) -> int:
        return self.stop - self.first

    @property
    def end(self) -> Decimal:
        """The equity at the last mark, or the start without marks."""
        return self.equities[self.stop - 1] if self.stop > self.first else self.start

    @cached_property
    def marks(self) -> list[tuple[datetime, Decimal]]:
        """(candle time, equity) of each mark, in time order."""
        span = slice(self.first, self.stop)
        return list(zip(map(moment, self.times[span]), self.equities[span]))


@dataclass
class StrategyHistory:
    """Everything derived from one strategy's stored rows up to `through`, its last candle marked."""

    identity: tuple
    replay: FillReplay
    begin: datetime | None = None
    through: datetime | None = None
    times: list[int] = field(default_factory=list)  # each mark's candle time, in microseconds since 1970
    equities: DecimalList = field(default_factory=DecimalList)
    levels: list[float] = field(default_factory=list)  # each mark's equity as a float
    day_ends: list[int] = field(default_factory=list)  # the index of each UTC day's last mark
    drawdown: RunningDrawdown = field(init=False)  # of every mark, from the capital
    underwater: list[float] = field(default_factory=list)  # each mark's fall below the running peak, from the capital
    peak_level: float = field(init=False)
    fill_times: list[int] = field(default_factory=list)
    fees_paid: DecimalList = field(default_factory=DecimalList)  # the fees paid up to each fill, summed
    trades: list[Trade] = field(default_factory=list)  # by closing time
    closed_times: list[int] = field(default_factory=list)  # each trade's closing time, in the same order
    exit_reasons: list[str] = field(default_factory=list)  # each trade's, in the same order
    position_pks: list[int] = field(default_factory=list)  # each trade's row, in the same order
    checkpoint_marks: int | None = None  # how many marks its stored checkpoint holds, as this process knows; None: not read
    # What was worked out from the history as it stands (a period's metrics, its charts), dropped when it grows.
    remembered: dict[Hashable, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.drawdown = RunningDrawdown(self.replay.capital)
        self.peak_level = float(self.replay.capital)

    def recall(self, key: Hashable, work_out: Callable[[StrategyHistory], Any]) -> Any:
        """`work_out(self)`, worked out once per `key` for the history as it stands."""
        with self.lock:
            if key not in self.remembered:
                self.remembered[key] = work_out(self)
            return self.remembered[key]

    def period(self, since: datetime | None = None) -> HistoryPeriod:
        """The marks after `since` (all without), starting from the equity at the last mark at or before it (the
        capital if there is none)."""
        first = bisect_right(self.times, microseconds(since)) if since is not None else 0
        start = self.equities[first - 1] if first else self.replay.capital
        return HistoryPeriod(self.times, self.equities, first, len(self.times), start)

    def curve(self, since: datetime | None = None) -> DerivedEquityCurve:
        """What `equity_curve.derive(strategy, since)` gives: the period's marks, from its starting equity."""
        period = self.period(since)
        return DerivedEquityCurve(period.start, period.marks)

    def first_trade(self, since: datetime | None) -> int:
        """The index of the first trade closed after `since` (0 without)."""
        return 0 if since is None else bisect_right(self.closed_times, microseconds(since))

    def closed_trades(self, since: datetime | None = None) -> tuple[list[Trade], list[str], list[int]]:
        """The trades closed after `since` (all without), their exit reasons and their rows' primary keys."""
        first = self.first_trade(since)
        return self.trades[first:], self.exit_reasons[first:], self.position_pks[first:]

    def fees(self, since: datetime | None = None) -> Decimal:
        """The fees of every fill after `since` (all without)."""
        if not self.fees_paid:
            return ZERO
        before = bisect_right(self.fill_times, microseconds(since)) if since is not None else 0
        return self.fees_paid[-1] - (self.fees_paid[before - 1] if before else ZERO)

    def extend(self, strategy: models.Strategy) -> None:
        """Take in what the strategy stored after `through`, up to its last candle."""
        end = strategy.last_candle_time
        if end is None or (self.through is not None and end <= self.through):
            return
        if self.begin is None:
            self.begin = first_candle_time(strategy)
            if self.begin is None or self.begin > end:
                self.begin = None
                return
        after = self.through
        candles = models.Candle.objects.filter(symbol=strategy.symbol, timeframe=strategy.timeframe, time__lte=end)
        candles = candles.filter(time__gt=after) if after is not None else candles.filter(time__gte=self.begin)
        fills = models.Fill.objects.filter(strategy=strategy, time__lte=end)
        positions = models.Position.objects.filter(strategy=strategy, closed_at__isnull=False, closed_at__lte=end)
        if after is not None:
            fills, positions = fills.filter(time__gt=after), positions.filter(closed_at__gt=after)
        fills = list(fills.order_by("time", "id").values_list(
            EpochMicroseconds("time"), "intent", "side", "position_id", "quantity", "price", "fee", "trigger", "id"))
        rows = list(candles.order_by("time").values_list(EpochMicroseconds("time"), "close"))
        times, closes = [time for time, _ in rows], [close for _, close in rows]
        self.take_marks(times, self.replay.mark(fills, times, closes))
        paid = self.fees_paid[-1] if self.fees_paid else ZERO
        for fill in fills:
            paid += fill[6]
            self.fill_times.append(fill[0])
            self.fees_paid.append(paid)
        self.take_trades(fills, positions, close_order_reasons(strategy, after, end))
        self.through = end
        self.remembered.clear()

    def take_marks(self, times: list[int], equities: list[Decimal]) -> None:
        """Append marks, and what is kept beside them."""
        if not times:
            return
        # Each UTC day's last mark: the one before the first of the next day.
        offset, position = len(self.times), 0
        if self.times and times[0] // MICROSECONDS_A_DAY == self.times[-1] // MICROSECONDS_A_DAY:
            self.day_ends.pop()  # the day the history ended on goes on
        while position < len(times):
            position = bisect_left(times, (times[position] // MICROSECONDS_A_DAY + 1) * MICROSECONDS_A_DAY, position)
            self.day_ends.append(offset + position - 1)
        levels = list(map(float, equities))
        self.underwater += underwater(levels, self.peak_level)
        self.peak_level = max(self.peak_level, max(levels))
        self.drawdown.extend(zip(times, equities))
        self.times += times
        self.equities += equities
        self.levels += levels

    def take_trades(self, fills: list[tuple], positions: QuerySet, order_reasons: dict[int, str]) -> None:
        """Append the positions closed after `through` (their rows' keys from `positions`, their figures from the
        replay's book), each with its exit reason by the rules of `orchestrator.exit_reasons` (which
        `trade_list.closed_trades` applies in SQL): the trigger of its last closing fill among `fills` (a position
        closes at its last one, so it is among those after `through`) and the reason of that fill's order, when
        `order_reasons` has it."""
        closed = {position.position_id: position for position in self.replay.closed}
        self.replay.closed.clear()
        closing = {fill[3]: (fill[7], fill[8]) for fill in fills if fill[1] == OrderIntent.CLOSE}
        for pk, position_id in positions.order_by("closed_at", "id").values_list("pk", "position_id"):
            position = closed[position_id]
            trigger, fill = closing[position_id]
            self.trades.append(Trade(moment(position.opened_at), moment(position.closed_at), position.realized_pnl,
                                     position.fees))
            self.closed_times.append(position.closed_at)
            self.position_pks.append(pk)
            self.exit_reasons.append(exit_reason(trigger, order_reasons.get(fill)))


def close_order_reasons(strategy: models.Strategy, after: datetime | None, end: datetime) -> dict[int, str]:
    """The strategy's closing fills after `after` (all without) up to `end` whose order's reason makes a market close
    other than a signal's (a wind-down's, a halt's), by the fill's row, with that reason: few fills have one."""
    orders = models.Order.objects.filter(strategy=strategy).filter(
        Q(reason=WIND_DOWN_CLOSE_REASON) | Q(reason__startswith=HALT_CLOSE_PREFIX))
    fills = models.Fill.objects.filter(
        strategy=strategy, intent=OrderIntent.CLOSE, time__lte=end, order_id__in=orders.values("order_id"))
    if after is not None:
        fills = fills.filter(time__gt=after)
    reason = Subquery(orders.filter(order_id=OuterRef("order_id")).order_by().values("reason")[:1])
    return dict(fills.annotate(order_reason=reason).order_by().values_list("id", "order_reason"))


@contextmanager
def collector_paused(paused: bool = True) -> Iterator[None]:
    """Python's cycle collector paused (if `paused`), for deriving a whole history: that allocates hundreds of
    thousands of rows, book entries and marks, and meanwhile the collector would go over every object of the process
    several times (a third of the derivation's time). They form no cycles, so reference counting frees them all;
    the collector then runs as before."""
    if not paused or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
