"""A period of a strategy's kept history as the P&L page shows it: its metrics (the one metrics module, on the
history's daily closes and drawdown rather than on every mark again), a day/week/month breakdown, the count of its
trades per exit reason, and the equity and drawdown series of its charts. Worked out once per candle and period
(`StrategyHistory.recall`), each from the period's days or trades, or from slices of its marks that the history
keeps ready (their floats, their fall below the peak)."""

from __future__ import annotations

from bisect import bisect_left
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Sequence

from orchestrator.exit_reasons import reason_counts
from orchestrator.metrics import Convention, CurveSummary, RunningDrawdown, metrics_of
from tradeweb.desk.epoch import MICROSECONDS_A_DAY, MICROSECONDS_A_SECOND, moment
from tradeweb.desk.strategy_history import HistoryPeriod, StrategyHistory, underwater

ZERO = Decimal(0)
CONVENTION = Convention()
# Buckets of a chart's series: at most twice as many points (each bucket's low and high) plus the last.
CHART_BUCKETS = 500
FIRST_DAY = date(1970, 1, 1).toordinal()


def figures(history: StrategyHistory, since: datetime | None, unit: str) -> dict:
    """What the page shows of the period after `since` (all of the history without): its curve, P&L, metrics,
    breakdown by `unit`, the exit reasons of its trades and their count, its trades' rows and its charts' series."""
    period = history.period(since)
    first_trade = history.first_trade(since)
    trades, reasons = history.trades[first_trade:], history.exit_reasons[first_trade:]
    days = history.day_ends[bisect_left(history.day_ends, period.first):]
    return {
        "curve": period,
        "pnl": period.end - period.start,
        "realized_pnl": sum((t.pnl for t in trades), ZERO),
        "metrics": metrics_of(summary(history, period, days), trades, CONVENTION, history.fees(since)),
        "breakdown": breakdown(period, days, history.closed_times[first_trade:], unit),
        "reason_counts": reason_counts(reasons),
        "trade_reasons": reasons,
        "trade_pks": history.position_pks[first_trade:],
        "series": chart_series(history, period),
    }


def summary(history: StrategyHistory, period: HistoryPeriod, days: Sequence[int]) -> CurveSummary:
    """What the metrics read of a period's curve, `days` being the indices of its days' last marks; its drawdown
    is the history's own for the whole curve, else gone over once."""
    first, stop = period.first, period.stop
    if first == 0:
        running = history.drawdown
    else:
        running = RunningDrawdown(period.start)
        running.extend(zip(history.times[first:stop], history.equities[first:stop]))
    stretch = running.longest_stretch()
    return CurveSummary(
        start=period.start,
        closes=[history.equities[index] for index in days],
        max_drawdown=running.deepest,
        max_drawdown_duration=timedelta(microseconds=stretch[1] - stretch[0]) if stretch else timedelta(0),
        span=(moment(history.times[first]), moment(history.times[stop - 1])) if stop > first else None,
    )


def bucket_of(day: date, unit: str) -> date:
    """The day, week (its Monday) or month (its first day) a UTC day falls in."""
    if unit == "week":
        return day - timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    return day


def breakdown(period: HistoryPeriod, days: Sequence[int], closed_times: Sequence[int], unit: str) -> list[dict]:
    """One row per day, week or month with a mark (`days`: the indices of the period's days' last marks): its P&L
    (equity at its last mark less the previous row's, the first against the period's start), the trades closed in
    it (`closed_times`: the period's trades' closing times, in order) and its return. The rows' P&L sums to the
    period's."""
    times, equities = period.times, period.equities
    ends: dict[date, Decimal] = {}
    for index in days:
        ends[bucket_of(date.fromordinal(FIRST_DAY + times[index] // MICROSECONDS_A_DAY), unit)] = equities[index]
    buckets = list(ends)
    rows, previous, counted = [], period.start, 0
    for number, bucket in enumerate(buckets):
        # A trade closes at a candle the strategy took, so in a bucket with a mark: the trades before the next
        # row's bucket, less those of the rows before, closed in this one.
        if number + 1 < len(buckets):
            closed = bisect_left(closed_times, (buckets[number + 1].toordinal() - FIRST_DAY) * MICROSECONDS_A_DAY)
        else:
            closed = len(closed_times)
        equity = ends[bucket]
        rows.append({
            "start": bucket, "pnl": equity - previous, "trades": closed - counted,
            "return": float(equity / previous) - 1.0 if previous else None, "equity": equity,
        })
        previous, counted = equity, closed
    return rows


def chart_points(values: Sequence[float], buckets: int) -> list[int]:
    """The indices of the points a chart of `values` draws, in order: at most 2 x `buckets` + 1, the values cut
    into `buckets` runs of equal length, each kept as its lowest and its highest point, so that peaks and troughs
    (and so the deepest drawdown) survive exactly; the last point is always kept. Fewer values are all kept."""
    count = len(values)
    if count <= 2 * buckets + 1:
        return list(range(count))
    kept: list[int] = []
    size = count / buckets
    for bucket in range(buckets):
        begin, end = int(bucket * size), int((bucket + 1) * size)
        run = values[begin:end]
        low, high = begin + run.index(min(run)), begin + run.index(max(run))
        kept.extend(sorted({low, high}))
    if kept[-1] != count - 1:
        kept.append(count - 1)
    return kept


def chart_series(history: StrategyHistory, period: HistoryPeriod) -> dict:
    """The equity and drawdown series of a period of the history for the charts, as [epoch seconds, value] pairs."""
    first, stop = period.first, period.stop
    levels = history.levels[first:stop]
    # The whole curve's fall below its peak is kept; a later period's peak starts at its own start.
    fall = history.underwater[first:stop] if first == 0 else underwater(levels, float(period.start))
    times = history.times[first:stop]
    return {
        name: [[times[index] // MICROSECONDS_A_SECOND, values[index]] for index in chart_points(values, CHART_BUCKETS)]
        for name, values in (("equity", levels), ("drawdown", fall))
    }
