"""A strategy's derived history (its equity at every candle it took, its closed trades, the fees it paid), kept in
the web process and extended as the strategy moves on, so that the P&L page does not replay every fill and read
every candle on each request.

What a strategy stored up to its last candle never changes: its fills, candles and closed positions are written
in the same transaction that moves its row to that candle, and the ledger is never edited. So the history derived
up to one candle is extended with what came after it alone: the candles after the last one marked, the fills and
the positions closed after it, replayed into the same `FillReplay` (the core's PositionBook). The result equals
`equity_curve.derive` mark for mark. A history is rebuilt when the strategy row is another one (same id, deleted
and created again) or its capital changed (every mark moves with it). At most HISTORIES_KEPT strategies are kept,
the least recently used dropped first.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Callable, Hashable

from orchestrator.metrics import Trade
from tradeweb.desk import models, trade_list
from tradeweb.desk.equity_curve import DerivedEquityCurve, FillReplay, first_candle_time

HISTORIES_KEPT = 8
ZERO = Decimal(0)


@dataclass
class StrategyHistory:
    """Everything derived from one strategy's stored rows up to `through`, its last candle marked."""

    identity: tuple
    replay: FillReplay
    begin: datetime | None = None
    through: datetime | None = None
    times: list[datetime] = field(default_factory=list)
    equities: list[Decimal] = field(default_factory=list)
    fill_times: list[datetime] = field(default_factory=list)
    fees_paid: list[Decimal] = field(default_factory=list)  # the fees paid up to each fill, summed
    trades: list[Trade] = field(default_factory=list)  # by closing time
    closed_times: list[datetime] = field(default_factory=list)  # each trade's closing time, in the same order
    exit_reasons: list[str] = field(default_factory=list)  # each trade's, in the same order
    position_pks: list[int] = field(default_factory=list)  # each trade's row, in the same order
    # What was worked out from the history as it stands (a period's metrics, its charts), dropped when it grows.
    remembered: dict[Hashable, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def recall(self, key: Hashable, work_out: Callable[[StrategyHistory], Any]) -> Any:
        """`work_out(self)`, worked out once per `key` for the history as it stands."""
        with self.lock:
            if key not in self.remembered:
                self.remembered[key] = work_out(self)
            return self.remembered[key]

    def curve(self, since: datetime | None = None) -> DerivedEquityCurve:
        """The marks after `since` (all without), starting from the equity at the last mark at or before it
        (the capital if there is none): what `equity_curve.derive(strategy, since)` gives."""
        first = bisect_right(self.times, since) if since is not None else 0
        start = self.equities[first - 1] if first else self.replay.capital
        return DerivedEquityCurve(start, list(zip(self.times[first:], self.equities[first:])))

    def closed_trades(self, since: datetime | None = None) -> tuple[list[Trade], list[str], list[int]]:
        """The trades closed after `since` (all without), their exit reasons and their rows' primary keys."""
        first = 0 if since is None else bisect_right(self.closed_times, since)
        return self.trades[first:], self.exit_reasons[first:], self.position_pks[first:]

    def fees(self, since: datetime | None = None) -> Decimal:
        """The fees of every fill after `since` (all without)."""
        if not self.fees_paid:
            return ZERO
        before = bisect_right(self.fill_times, since) if since is not None else 0
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
        trades = trade_list.closed_trades(strategy).filter(closed_at__lte=end)
        if after is not None:
            fills, trades = fills.filter(time__gt=after), trades.filter(closed_at__gt=after)
        fills = list(fills.order_by("time", "id").values_list(
            "time", "intent", "side", "position_id", "quantity", "price", "fee"))
        marks = self.replay.mark(fills, list(candles.order_by("time").values_list("time", "close")))
        self.times += [time for time, _ in marks]
        self.equities += [equity for _, equity in marks]
        paid = self.fees_paid[-1] if self.fees_paid else ZERO
        for fill in fills:
            paid += fill[6]
            self.fill_times.append(fill[0])
            self.fees_paid.append(paid)
        for pk, opened, closed, pnl, fees, reason in trades.order_by("closed_at", "id").values_list(
                "pk", "opened_at", "closed_at", "realized_pnl", "fees", "exit_reason"):
            self.trades.append(Trade(opened, closed, pnl, fees))
            self.position_pks.append(pk)
            self.closed_times.append(closed)
            self.exit_reasons.append(reason)
        self.through = end
        self.remembered.clear()


class StrategyHistories:
    """The histories of the strategies whose P&L pages were opened in this process, least recently used first."""

    def __init__(self, size: int = HISTORIES_KEPT) -> None:
        self.size = size
        self._kept: OrderedDict[str, StrategyHistory] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, strategy: models.Strategy) -> StrategyHistory:
        """The strategy's history up to its last candle (as its row says), extended or derived as needed."""
        identity = (strategy.pk, strategy.created_at, strategy.capital)
        with self._lock:
            history = self._kept.pop(strategy.strategy_id, None)
            if history is None or history.identity != identity:
                history = StrategyHistory(identity, FillReplay(strategy.strategy_id, strategy.symbol, strategy.capital))
            self._kept[strategy.strategy_id] = history
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        with history.lock:
            try:
                history.extend(strategy)
            except BaseException:
                # Half extended, it would be wrong from here on: the next request derives it again.
                self._drop(strategy.strategy_id, history)
                raise
        return history

    def _drop(self, strategy_id: str, history: StrategyHistory) -> None:
        with self._lock:
            if self._kept.get(strategy_id) is history:
                del self._kept[strategy_id]

    def forget(self) -> None:
        """Drop every history (they are derived again on the next request)."""
        with self._lock:
            self._kept.clear()


histories = StrategyHistories()
