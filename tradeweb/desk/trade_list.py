"""A strategy's closed trades (its closed positions) with why each was closed, for tables and exports.

The exit reason is derived from what is stored, in the query itself: the position's closing fill's trigger
(a stop-loss or a take-profit) or, for a market close, the reason on its close order: the engine writes
WIND_DOWN_CLOSE_REASON on the orders that close a strategy switched out or off with the close policy, the signal's
own reason on an exit signal's. A halt closes nothing today (it stops entries, exits are still managed);
a close order whose reason starts with "halted" would count as one.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime

from django.db.models import CharField, Case, OuterRef, QuerySet, Subquery, Value, When

from orchestrator.engine import WIND_DOWN_CLOSE_REASON
from orchestrator.events import decimal_text
from orchestrator.orders import FillTrigger, OrderIntent
from tradeweb.desk import models

EXIT_REASONS = ("signal", "stop-loss", "take-profit", "switch", "halt")
# What a user may sort the trades table by, and the column each sorts on.
TRADE_SORTS = {
    "exit_time": "closed_at", "entry_time": "opened_at", "side": "side", "size": "initial_quantity",
    "entry_price": "entry_price", "fees": "fees", "pnl": "realized_pnl", "exit_reason": "exit_reason",
}
EXPORT_COLUMNS = (
    "position_id", "side", "size", "entry_time", "entry_price", "exit_time", "exit_price", "fees", "pnl", "exit_reason",
)


def closed_trades(strategy: models.Strategy, since: datetime | None = None) -> QuerySet:
    """The strategy's closed positions (closed after `since`, if given), each with its `exit_reason`."""
    closing = models.Fill.objects.filter(
        strategy=OuterRef("strategy"), position_id=OuterRef("position_id"), intent=OrderIntent.CLOSE
    ).order_by("-time", "-id")
    close_order = models.Order.objects.filter(order_id=OuterRef("exit_order_id"))
    trades = models.Position.objects.filter(strategy=strategy, closed_at__isnull=False)
    if since is not None:
        trades = trades.filter(closed_at__gt=since)
    return trades.annotate(
        exit_trigger=Subquery(closing.values("trigger")[:1]),
        exit_order_id=Subquery(closing.values("order_id")[:1]),
    ).annotate(
        exit_order_reason=Subquery(close_order.values("reason")[:1]),
    ).annotate(
        exit_reason=Case(
            When(exit_trigger=FillTrigger.STOP_LOSS, then=Value("stop-loss")),
            When(exit_trigger=FillTrigger.TAKE_PROFIT, then=Value("take-profit")),
            When(exit_order_reason=WIND_DOWN_CLOSE_REASON, then=Value("switch")),
            When(exit_order_reason__startswith="halted", then=Value("halt")),
            default=Value("signal"),
            output_field=CharField(),
        )
    )


def sorted_trades(trades: QuerySet, sort: str, descending: bool) -> QuerySet:
    """The trades ordered by one of TRADE_SORTS (ties by id, so pages never overlap)."""
    column = TRADE_SORTS[sort]
    return trades.order_by(f"-{column}" if descending else column, "-id" if descending else "id")


def reason_counts(reasons: list[str]) -> dict[str, int]:
    """How many trades closed for each exit reason, every reason listed."""
    return {reason: reasons.count(reason) for reason in EXIT_REASONS}


def export_rows(trades: QuerySet) -> list[dict]:
    """Every trade as text fields, by exit time: the rows of the CSV and JSON exports."""
    return [
        {
            "position_id": p.position_id, "side": p.side, "size": decimal_text(p.initial_quantity),
            "entry_time": p.opened_at.isoformat(), "entry_price": decimal_text(p.entry_price),
            "exit_time": p.closed_at.isoformat(), "exit_price": decimal_text(p.exit_price),
            "fees": decimal_text(p.fees), "pnl": decimal_text(p.realized_pnl), "exit_reason": p.exit_reason,
        }
        for p in sorted_trades(trades, "exit_time", False)
    ]


def rows_csv(rows: list[dict], columns: tuple[str, ...]) -> str:
    """Rows of text fields as CSV with a header."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
