"""A live strategy's P&L page: its derived equity curve over a period of market time, the metrics of the one
metrics module on it, a day/week/month breakdown, its trades (sorted, paginated, with exit reasons), a candle
chart of its market with its fills and indicator lines, its open positions, journal, config versions and control
actions, and the exports. The period ends at the newest stored candle of the strategy's market, not at the wall
clock. The curve, the closed trades and the fees come from the strategy's derived history, kept between requests
and extended as the strategy moves on (`history_cache`, `strategy_history`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Mapping

from django.core.paginator import Paginator
from django.db.models import QuerySet

from orchestrator.events import decimal_text
from tradeweb.desk import config_history, models, period_figures, trade_list
from tradeweb.desk.equity_curve import DerivedEquityCurve
from tradeweb.desk.price_chart import price_chart
from tradeweb.desk.storage import core_position
from tradeweb.desk.history_cache import histories

PERIODS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30), "all": None}
BREAKDOWNS = ("day", "week", "month")
PAGE_SIZES = (25, 50, 100, 200)
JOURNAL_LINES = 100
CONTROL_ACTIONS = 50
# The latest time a chart window may end at: a larger number is no time the desk has candles for.
LATEST_EPOCH = 253402300799  # 9999-12-31 23:59:59 UTC


@dataclass(frozen=True, slots=True)
class PageChoice:
    """What the user picked on the page, each value checked (an unknown one falls back to the default)."""

    period: str = "all"
    breakdown: str = "day"
    sort: str = "exit_time"
    descending: bool = True
    page: int = 1
    per_page: int = PAGE_SIZES[0]
    chart_end: datetime | None = None  # the candle chart's window ends here; at the newest candle without

    @property
    def chart_end_epoch(self) -> int | None:
        """`chart_end` as the query carries it: whole seconds since 1970."""
        return int(self.chart_end.timestamp()) if self.chart_end is not None else None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> PageChoice:
        def number(text: str | None, default: int, digits: int = 9) -> int:
            return int(text) if text and text.isascii() and text.isdigit() and len(text) <= digits else default

        per_page = number(query.get("per_page"), PAGE_SIZES[0])
        chart_end = number(query.get("chart_end"), 0, digits=len(str(LATEST_EPOCH)))
        return cls(
            period=query.get("period") if query.get("period") in PERIODS else "all",
            breakdown=query.get("breakdown") if query.get("breakdown") in BREAKDOWNS else "day",
            sort=query.get("sort") if query.get("sort") in trade_list.TRADE_SORTS else "exit_time",
            descending=query.get("order", "desc") != "asc",
            page=max(number(query.get("page"), 1), 1),
            per_page=per_page if per_page in PAGE_SIZES else PAGE_SIZES[0],
            chart_end=datetime.fromtimestamp(chart_end, timezone.utc) if 0 < chart_end <= LATEST_EPOCH else None,
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


class TradesPage:
    """A period's trades for the paginator: their number known from the derived history (no COUNT), a page read as
    its rows' keys in the chosen order, then only those rows with their exit reasons (worked out for the page, not
    for every trade before it). By exit reason, the order comes from the history's reasons."""

    def __init__(self, strategy: models.Strategy, positions: QuerySet, choice: PageChoice, reasons: list[str],
                 pks: list[int]) -> None:
        self.strategy = strategy
        self.positions = positions  # the period's closed positions the history holds, without exit reasons
        self.choice = choice
        self.reasons = reasons
        self.pks = pks

    def count(self) -> int:
        return len(self.pks)

    def __getitem__(self, index: slice) -> list[models.Position]:
        if self.choice.sort == "exit_reason":
            # Ties by id, in the order of the sort, as `trade_list.sorted_trades` breaks them.
            ordered = sorted(zip(self.reasons, self.pks), reverse=self.choice.descending)
            keys = [pk for _, pk in ordered[index]]
        else:
            keys = list(trade_list.sorted_trades(self.positions, self.choice.sort, self.choice.descending)
                        .values_list("pk", flat=True)[index])
        rows = {row.pk: row for row in trade_list.closed_trades(self.strategy).filter(pk__in=keys)}
        return [rows[key] for key in keys]


def open_positions(strategy: models.Strategy) -> list[dict]:
    """The strategy's open positions, each with its unrealized P&L at the last close the strategy took (the core's
    `Position.unrealized_pnl`, as its equity counts it)."""
    rows = models.Position.objects.filter(strategy=strategy, closed_at=None).order_by("opened_at", "id")
    mark = strategy.last_close
    return [
        {"position": row, "unrealized_pnl": core_position(row).unrealized_pnl(mark) if mark is not None else None}
        for row in rows
    ]


def live_parts(strategy: models.Strategy) -> dict:
    """What the page shows of the strategy as it stands: open positions, journal, config versions, control actions."""
    return {
        "open_positions": open_positions(strategy),
        "journal": models.JournalEntry.objects.filter(strategy=strategy)[:JOURNAL_LINES],
        "journal_lines": JOURNAL_LINES,
        "config_history": config_history.history(strategy),
        "controls": models.ControlAction.objects.filter(strategy=strategy).select_related("user")[:CONTROL_ACTIONS],
    }


def page(strategy: models.Strategy, choice: PageChoice) -> dict:
    """Everything the P&L page shows for the chosen period, in a fixed handful of queries."""
    since = period_start(strategy, choice.period)
    history = histories.of(strategy)
    figures = history.recall(("period", since, choice.breakdown),
                             lambda history: period_figures.figures(history, since, choice.breakdown))
    positions = models.Position.objects.filter(strategy=strategy, closed_at__isnull=False)
    if since is not None:
        positions = positions.filter(closed_at__gt=since)
    if history.through is not None:
        # What the history holds: a position a worker closed since the strategy's row was read waits for the next.
        positions = positions.filter(closed_at__lte=history.through)
    trades = TradesPage(strategy, positions, choice, figures["trade_reasons"], figures["trade_pks"])
    paginator = Paginator(trades, choice.per_page)
    charts = figures["series"] | {"price": price_chart(strategy, choice.chart_end)}
    return {
        "strategy": strategy,
        "choice": choice,
        "periods": list(PERIODS),
        "breakdowns": BREAKDOWNS,
        "sorts": list(trade_list.TRADE_SORTS),
        "page_sizes": PAGE_SIZES,
        "since": since,
        "convention": period_figures.CONVENTION,
        "trades": paginator.get_page(choice.page),
        "charts": charts,
        "chart_points": {name: len(charts[name]) for name in ("equity", "drawdown")},
        "price_chart": {"candles": len(charts["price"]["candles"]), "markers": len(charts["price"]["markers"]),
                        "lines": [line["key"] for line in charts["price"]["lines"]]},
    } | {name: figures[name] for name in ("curve", "pnl", "realized_pnl", "metrics", "breakdown", "reason_counts")} | live_parts(strategy)


def equity_rows(curve: DerivedEquityCurve) -> list[dict]:
    """The full-resolution curve as text fields: the rows of the equity exports."""
    return [{"time": time.isoformat(), "equity": decimal_text(equity)} for time, equity in curve.marks]


def export(strategy: models.Strategy, what: str, period: str) -> tuple[list[dict], tuple[str, ...], dict]:
    """The rows of an export (`trades` or `equity`) for a period, their columns, and what the JSON wraps
    them with."""
    since = period_start(strategy, period)
    about = {"strategy_id": strategy.strategy_id, "period": period, "since": since.isoformat() if since else None}
    if what == "trades":
        return trade_list.export_rows(trade_list.closed_trades(strategy, since)), trade_list.EXPORT_COLUMNS, about
    curve = histories.of(strategy).curve(since)
    return equity_rows(curve), ("time", "equity"), about | {"start": decimal_text(curve.start)}
