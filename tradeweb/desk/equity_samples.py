"""Many strategies' equity over the last day of their market, cheap enough for a dashboard of a hundred cards.

The P&L page's curve (`equity_curve.derive`) marks every candle since the strategy began and replays every fill
it ever made: right for one strategy's page, too much for a hundred cards at once (a month of one-minute candles
is 43,200 marks per strategy). A card's sparkline, its P&L today and the combined chart need far less: the
equity at a few closes of the last day. So, for each market, the last 24 hours of market time (ending at its
newest candle) are cut into 96 quarter-hours aligned on UTC, and each quarter-hour is represented by its last
candle; the last candle before the window anchors it. A strategy's book at the window's start is rebuilt from
what the desk stores: the realized P&L of its positions closed before the window (summed by the database), and
the fills of its positions still open then or opened since (replayed into the core's `PositionBook`, as
`equity_curve` replays them). Each sampled close is marked exactly as `equity_curve` marks it, so every point is
the P&L page's curve at that candle, to the last decimal place; what a sparkline leaves out is only what
happened between two sampled closes (a dip inside a quarter-hour).

Four queries in all, however many strategies: each market's newest candle, the sampled closes, the realized
P&L before the window, and the fills to replay. A strategy's equity after its last candle (one dormant, or
waiting for a candle) stays where its last candle left it: the equity its row holds.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Iterable

from django.db.models import F, OuterRef, Q, Subquery, Value, Window
from django.db.models.functions import Coalesce, ExtractMinute, Floor, RowNumber, TruncHour

from orchestrator.positions import MONEY_STEP, PositionBook
from tradeweb.desk import models
from tradeweb.desk.equity_curve import EXACT, apply_fill, linear_equity

BUCKET = timedelta(minutes=15)
BUCKETS = 96  # a day of quarter-hours
ANCHOR = -1  # the bucket index of the last candle before the window
ZERO = Decimal(0)

Market = tuple[str, str]  # (symbol, timeframe)


def bucket_start(time: datetime) -> datetime:
    """The UTC quarter-hour a time falls in."""
    return time.replace(minute=time.minute - time.minute % 15, second=0, microsecond=0)


def day_start(time: datetime) -> datetime:
    """Midnight UTC of the day a time falls in."""
    return time.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class MarketWindow:
    """A market's last day: its newest candle, where the window begins (the first quarter-hour's start), its
    sampled closes as (bucket index, candle time, close) in time order, the anchor first (index ANCHOR), and
    midnight UTC of the newest candle's day (where "today" begins in this market's time)."""

    market: Market
    newest: datetime
    begins: datetime
    closes: tuple[tuple[int, datetime, Decimal], ...]
    day_begins: datetime


@dataclass(frozen=True, slots=True)
class EquitySamples:
    """One strategy's equity at its market's sampled closes: `points` as (bucket index, candle time, equity),
    `opening` the equity before the first of them, `day_start` the equity at the last close before the market's
    day began (P&L today is measured from it) and `end` the equity now."""

    opening: Decimal
    points: tuple[tuple[int, datetime, Decimal], ...]
    day_start: Decimal
    end: Decimal

    @property
    def pnl_today(self) -> Decimal:
        """What the strategy made since its market's UTC day began."""
        return self.end - self.day_start

    def by_bucket(self) -> list[Decimal]:
        """The equity at the window's start and at the end of each of its quarter-hours: the last point's at or
        before it (a quarter-hour without a candle, a market break, keeps the one before; the opening before
        the first point)."""
        values, equity, points = [], self.opening, iter(self.points)
        point = next(points, None)
        for index in range(ANCHOR, BUCKETS):
            while point is not None and point[0] <= index:
                equity = point[2]
                point = next(points, None)
            values.append(equity)
        return values


def market_windows(markets: Iterable[Market]) -> dict[Market, MarketWindow]:
    """Each market's window and sampled closes, in two queries; a market without candles has none."""
    markets = set(markets)
    if not markets:
        return {}
    newest = Subquery(
        models.Candle.objects.filter(symbol=OuterRef("symbol"), timeframe=OuterRef("timeframe"))
        .order_by("-time").values("time")[:1]
    )
    known = Q()
    for symbol, timeframe in markets:
        known |= Q(symbol=symbol, timeframe=timeframe)
    ends = {
        (symbol, timeframe): time
        for symbol, timeframe, time in models.Market.objects.filter(known).annotate(newest=newest)
        .values_list("symbol", "timeframe", "newest")
        if time is not None
    }
    if not ends:
        return {}
    begins = {market: bucket_start(end) - (BUCKETS - 1) * BUCKET for market, end in ends.items()}
    wanted = Q()
    for (symbol, timeframe), end in ends.items():
        anchor = (
            models.Candle.objects.filter(symbol=symbol, timeframe=timeframe, time__lt=begins[symbol, timeframe])
            .order_by("-time").values("time")[:1]
        )
        # From the anchor on: no candle lies between it and the window's start, so one range per market.
        start = Coalesce(Subquery(anchor), Value(begins[symbol, timeframe]))
        wanted |= Q(symbol=symbol, timeframe=timeframe, time__gte=start, time__lte=end)
    # The last candle of each quarter-hour (the anchor is alone in its own).
    last_in_bucket = Window(
        RowNumber(),
        partition_by=[F("symbol"), F("timeframe"), TruncHour("time"), Floor(ExtractMinute("time") / 15)],
        order_by=F("time").desc(),
    )
    rows = (
        models.Candle.objects.filter(wanted).annotate(rank=last_in_bucket).filter(rank=1)
        .order_by("symbol", "timeframe", "time").values_list("symbol", "timeframe", "time", "close")
    )
    closes: dict[Market, list[tuple[int, datetime, Decimal]]] = defaultdict(list)
    for symbol, timeframe, time, close in rows:
        start = begins[symbol, timeframe]
        index = ANCHOR if time < start else (bucket_start(time) - start) // BUCKET
        closes[symbol, timeframe].append((index, time, close))
    return {
        market: MarketWindow(market, end, begins[market], tuple(closes[market]), day_start(end))
        for market, end in ends.items()
    }


def replayed_fills(cuts: dict[datetime, list[str]]) -> dict[str, list[tuple]]:
    """The fills to replay, by strategy in time order, for strategies whose windows begin at each cut: every fill
    from the cut on, and the earlier fills of the positions still open at the cut. One query, each half along an
    index (fills by strategy and time; positions by strategy and close)."""
    recent, earlier, straddling = Q(), Q(), Q()
    for cut, ids in cuts.items():
        recent |= Q(strategy_id__in=ids, time__gte=cut)
        earlier |= Q(strategy_id__in=ids, time__lt=cut)
        straddling |= Q(strategy_id__in=ids, opened_at__lt=cut) & (Q(closed_at__isnull=True) | Q(closed_at__gte=cut))
    columns = ("strategy_id", "time", "intent", "side", "position_id", "quantity", "price", "fee", "id")
    # Each half unordered (the fills' own ordering would sort it for nothing): the union is sorted once.
    open_across = models.Position.objects.filter(straddling).values("position_id")
    rows = models.Fill.objects.filter(recent).order_by().values_list(*columns).union(
        models.Fill.objects.filter(earlier, position_id__in=open_across).order_by().values_list(*columns),
        all=True,
    ).order_by("strategy_id", "time", "id")
    fills: dict[str, list[tuple]] = defaultdict(list)
    for row in rows:
        fills[row[0]].append(row[1:-1])
    return fills


def samples(strategies: list[models.Strategy], windows: dict[Market, MarketWindow]) -> dict[str, EquitySamples]:
    """Each strategy's equity at its market's sampled closes (see the module's docstring), in one query."""
    cuts: dict[datetime, list[str]] = defaultdict(list)
    for strategy in strategies:
        window = windows.get((strategy.symbol, strategy.timeframe))
        if window is not None:
            cuts[window.begins].append(strategy.strategy_id)
    fills = replayed_fills(cuts) if cuts else {}
    return {
        strategy.strategy_id: strategy_samples(
            strategy, windows.get((strategy.symbol, strategy.timeframe)), fills.get(strategy.strategy_id, []),
        )
        for strategy in strategies
    }


def strategy_samples(strategy: models.Strategy, window: MarketWindow | None, fills: list[tuple]) -> EquitySamples:
    """Mark one strategy's book, rebuilt at the window's start, at each sampled close it has taken; a close after
    its last candle gets the equity its row holds.

    The book starts without the P&L its positions closed before the window realized: that is the row's realized
    P&L less what the replayed positions realized, known once every fill is replayed; it is added to each mark
    before rounding, so each mark is the sum `equity_curve` rounds."""
    current = strategy.current_equity
    last = strategy.last_candle_time
    if window is None:
        return EquitySamples(current, (), current, current)
    book = PositionBook(strategy.strategy_id)
    held, constant = linear_equity(book, strategy.capital)
    raw: list[tuple[int, datetime, Decimal | None]] = []  # None: after its last candle
    next_fill = 0
    # The book's arithmetic runs in the caller's context, as the engine's does; the marks' sums run exact (EXACT)
    # and are rounded once, as the derived curve's are.
    for index, time, close in window.closes:
        if last is None or time > last:
            raw.append((index, time, None))
            continue
        if next_fill < len(fills) and fills[next_fill][0] <= time:
            while next_fill < len(fills) and fills[next_fill][0] <= time:
                apply_fill(book, strategy.symbol, fills[next_fill])
                next_fill += 1
            held, constant = linear_equity(book, strategy.capital)
        raw.append((index, time, EXACT.fma(held, close, constant)))
    for fill in fills[next_fill:]:
        apply_fill(book, strategy.symbol, fill)
    realized_before = EXACT.subtract(strategy.realized_pnl, book.realized_pnl)
    points = tuple(
        (index, time, current if value is None else EXACT.add(value, realized_before).quantize(MONEY_STEP, ROUND_HALF_UP))
        for index, time, value in raw
    )
    # Before any candle nothing is held: the capital and what was realized before the window.
    opening = points[0][2] if points and points[0][0] == ANCHOR else strategy.capital + realized_before
    day_begins = window.day_begins
    before_today = [equity for _, time, equity in points if time < day_begins]
    return EquitySamples(opening, points, before_today[-1] if before_today else opening, current)


def combined(
    windows: dict[Market, MarketWindow], strategy_samples: Iterable[EquitySamples]
) -> list[tuple[datetime, Decimal]]:
    """The strategies' equity summed at the end of each quarter-hour of the last day (and at the window's start):
    each strategy counts with its equity at the last sampled close of that quarter-hour or before it. Markets are
    lined up on their own windows, dated by the one whose newest candle is the latest: markets that trade now end
    in the same quarter-hour, so this is their sum at the same moments."""
    if not windows:
        return []
    begins = max(window.begins for window in windows.values())
    totals = [ZERO] * (BUCKETS + 1)
    for sampled in strategy_samples:
        totals = [total + equity for total, equity in zip(totals, sampled.by_bucket())]
    return [(begins + slot * BUCKET, total) for slot, total in enumerate(totals)]
