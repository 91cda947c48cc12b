"""A live strategy's P&L page: its derived equity curve over a period of market time, the metrics of the one
metrics module on it, a day/week/month breakdown, its trades (sorted, paginated, with exit reasons) and the
exports. The period ends at the newest stored candle of the strategy's market, not at the wall clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Mapping

from django.core.paginator import Paginator
from django.db.models import Sum

from orchestrator.events import decimal_text
from orchestrator.exit_reasons import reason_counts
from orchestrator.metrics import Convention, Metrics, Trade, compute
from tradeweb.desk import equity_curve, models, trade_list
from tradeweb.desk.equity_curve import EquityCurve

ZERO = Decimal(0)
PERIODS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30), "all": None}
BREAKDOWNS = ("day", "week", "month")
PAGE_SIZES = (25, 50, 100, 200)
# Buckets of a chart's series: at most twice as many points (each bucket's low and high) plus the last.
CHART_BUCKETS = 500
CONVENTION = Convention()


@dataclass(frozen=True, slots=True)
class PageChoice:
    """What the user picked on the page, each value checked (an unknown one falls back to the default)."""

    period: str = "all"
    breakdown: str = "day"
    sort: str = "exit_time"
    descending: bool = True
    page: int = 1
    per_page: int = PAGE_SIZES[0]

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> PageChoice:
        def number(text: str | None, default: int) -> int:
            return int(text) if text and text.isdigit() and len(text) < 10 else default

        per_page = number(query.get("per_page"), PAGE_SIZES[0])
        return cls(
            period=query.get("period") if query.get("period") in PERIODS else "all",
            breakdown=query.get("breakdown") if query.get("breakdown") in BREAKDOWNS else "day",
            sort=query.get("sort") if query.get("sort") in trade_list.TRADE_SORTS else "exit_time",
            descending=query.get("order", "desc") != "asc",
            page=max(number(query.get("page"), 1), 1),
            per_page=per_page if per_page in PAGE_SIZES else PAGE_SIZES[0],
        )


def period_start(strategy: models.Strategy, period: str) -> datetime | None:
    """Where the period begins: its length before the newest stored candle of the strategy's market; None
    for all of it (or a market without candles)."""
    span = PERIODS[period]
    if span is None:
        return None
    newest = (
        models.Candle.objects.filter(symbol=strategy.symbol, timeframe=strategy.timeframe)
        .order_by("-time").values_list("time", flat=True).first()
    )
    return newest - span if newest is not None else None


def period_metrics(curve: EquityCurve, trades: list[Trade], fees: Decimal) -> Metrics:
    """The metrics of the period's curve and the trades closed in it, `fees` being every fill's in it."""
    return compute(curve.start, curve.marks, trades, CONVENTION, fees=fees)


def bucket_of(time: datetime, unit: str) -> date:
    """The UTC day, week (its Monday) or month (its first day) a time falls in."""
    day = time.date()
    if unit == "week":
        return day - timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    return day


def breakdown(curve: EquityCurve, trades: list[Trade], unit: str) -> list[dict]:
    """One row per day, week or month with a mark: its P&L (equity at its last mark less the previous
    row's, the first against the curve's start), the trades closed in it and its return. The rows' P&L
    sums to the period's."""
    ends: dict[date, Decimal] = {}
    for time, equity in curve.marks:
        ends[bucket_of(time, unit)] = equity
    closed: dict[date, int] = {}
    for trade in trades:
        key = bucket_of(trade.closed_at, unit)
        closed[key] = closed.get(key, 0) + 1
    rows, previous = [], curve.start
    for key, equity in ends.items():
        rows.append({
            "start": key, "pnl": equity - previous, "trades": closed.get(key, 0),
            "return": float(equity / previous) - 1.0 if previous else None, "equity": equity,
        })
        previous = equity
    return rows


def chart_series(curve: EquityCurve) -> dict:
    """The equity and drawdown series for the charts, downsampled, as [epoch seconds, value] pairs."""
    equity = [(time, float(value)) for time, value in curve.marks]
    return {
        name: [[int(time.timestamp()), value] for time, value in equity_curve.downsample(points, CHART_BUCKETS)]
        for name, points in (("equity", equity), ("drawdown", equity_curve.underwater(curve)))
    }


def page(strategy: models.Strategy, choice: PageChoice) -> dict:
    """Everything the P&L page shows for the chosen period, in a fixed handful of queries."""
    since = period_start(strategy, choice.period)
    curve = equity_curve.derive(strategy, since=since)
    trades_query = trade_list.closed_trades(strategy, since)
    closed = list(trades_query.values_list("opened_at", "closed_at", "realized_pnl", "fees", "exit_reason"))
    trades = [Trade(opened, closed_at, pnl, fees) for opened, closed_at, pnl, fees, _ in closed]
    fills = models.Fill.objects.filter(strategy=strategy)
    if since is not None:
        fills = fills.filter(time__gt=since)
    fees = fills.aggregate(total=Sum("fee"))["total"] or ZERO
    metrics = period_metrics(curve, trades, fees)
    paginator = Paginator(trade_list.sorted_trades(trades_query, choice.sort, choice.descending), choice.per_page)
    charts = chart_series(curve)
    return {
        "strategy": strategy,
        "choice": choice,
        "periods": list(PERIODS),
        "breakdowns": BREAKDOWNS,
        "sorts": list(trade_list.TRADE_SORTS),
        "page_sizes": PAGE_SIZES,
        "since": since,
        "curve": curve,
        "pnl": curve.end - curve.start,
        "realized_pnl": sum((t.pnl for t in trades), ZERO),
        "metrics": metrics,
        "convention": CONVENTION,
        "breakdown": breakdown(curve, trades, choice.breakdown),
        "reason_counts": reason_counts([reason for *_, reason in closed]),
        "trades": paginator.get_page(choice.page),
        "charts": charts,
        "chart_points": {name: len(points) for name, points in charts.items()},
    }


def equity_rows(curve: EquityCurve) -> list[dict]:
    """The full-resolution curve as text fields: the rows of the equity exports."""
    return [{"time": time.isoformat(), "equity": decimal_text(equity)} for time, equity in curve.marks]


def export(strategy: models.Strategy, what: str, period: str) -> tuple[list[dict], tuple[str, ...], dict]:
    """The rows of an export (`trades` or `equity`) for a period, their columns, and what the JSON wraps
    them with."""
    since = period_start(strategy, period)
    about = {"strategy_id": strategy.strategy_id, "period": period, "since": since.isoformat() if since else None}
    if what == "trades":
        return trade_list.export_rows(trade_list.closed_trades(strategy, since)), trade_list.EXPORT_COLUMNS, about
    curve = equity_curve.derive(strategy, since=since)
    return equity_rows(curve), ("time", "equity"), about | {"start": decimal_text(curve.start)}
