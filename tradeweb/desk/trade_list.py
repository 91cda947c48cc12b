"""A strategy's closed trades (its closed positions) with why each was closed, for tables and exports.

The exit reason is derived from what is stored, in the query itself, by the rules of
`orchestrator.exit_reasons` (which backtests apply in Python): the position's closing fill's trigger, else the
reason on its close order.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime

from django.db.models import CharField, Case, OuterRef, QuerySet, Subquery, Value, When

from orchestrator.engine import WIND_DOWN_CLOSE_REASON
from orchestrator.events import decimal_text
from orchestrator.exit_reasons import HALT, HALT_CLOSE_PREFIX, SIGNAL, SWITCH, TRIGGER_REASONS
from orchestrator.orders import OrderIntent
from tradeweb.desk import models

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
            *(When(exit_trigger=trigger, then=Value(reason)) for trigger, reason in TRIGGER_REASONS.items()),
            When(exit_order_reason=WIND_DOWN_CLOSE_REASON, then=Value(SWITCH)),
            When(exit_order_reason__startswith=HALT_CLOSE_PREFIX, then=Value(HALT)),
            default=Value(SIGNAL),
            output_field=CharField(),
        )
    )


def sorted_trades(trades: QuerySet, sort: str, descending: bool) -> QuerySet:
    """The trades ordered by one of TRADE_SORTS (ties by id, so pages never overlap)."""
    column = TRADE_SORTS[sort]
    return trades.order_by(f"-{column}" if descending else column, "-id" if descending else "id")


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
