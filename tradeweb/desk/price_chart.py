"""The candle chart of a strategy's P&L page: a window of its market's stored candles, its fills on them as entry
and exit markers, and the lines of its chart (`Strategy.chart_lines`) worked out by the core's indicators over the
stored candles, warmed up on as many candles before the window as a rebuilt worker's orchestrator takes."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings

from orchestrator.indicator_lines import indicator_lines
from strategies import build_strategy
from tradeweb.desk import models
from tradeweb.desk.storage import usable_candle

CANDLES_SHOWN = 300
CANDLE_FIELDS = ("symbol", "timeframe", "time", "open", "high", "low", "close", "volume")


def epoch(time: datetime) -> int:
    """A time as the chart's axis takes it: whole seconds since 1970 (UTC)."""
    return int(time.timestamp())


def price_chart(strategy: models.Strategy, end: datetime | None = None) -> dict:
    """The CANDLES_SHOWN candles up to `end` (the newest without), as JSON: [time, open, high, low, close] rows,
    the chart lines' [time, value] points, the markers of the fills among those candles, and the window's bounds
    (`earlier`: whether stored candles come before it; `end`: the window's last candle, None when it is the newest)."""
    rows = models.Candle.objects.filter(symbol=strategy.symbol, timeframe=strategy.timeframe)
    if end is not None:
        rows = rows.filter(time__lte=end)
    # Only what the core's Candle holds: each stored time read is a datetime parsed in Python.
    fetched = list(rows.only(*CANDLE_FIELDS).order_by("-time")[:CANDLES_SHOWN + settings.WARM_UP_CANDLES])
    fetched.reverse()
    candles = [candle for candle in map(usable_candle, fetched) if candle is not None]
    shown = candles[-CANDLES_SHOWN:]
    if not shown:
        return {"candles": [], "lines": [], "markers": [], "earlier": None, "end": None}
    lines = indicator_lines(build_strategy(strategy.strategy_class, strategy.config).chart_lines(), candles,
                            shown_from=shown[0].time)
    fills = models.Fill.objects.filter(strategy=strategy, time__gte=shown[0].time, time__lte=shown[-1].time)
    return {
        "candles": [[epoch(c.time), float(c.open), float(c.high), float(c.low), float(c.close)] for c in shown],
        "lines": [
            {"key": line.key, "on_price": line.on_price, "points": [[epoch(time), value] for time, value in line.points]}
            for line in lines
        ],
        "markers": [
            {"time": epoch(time), "side": side, "intent": intent, "trigger": trigger, "price": float(price),
             "quantity": float(quantity), "position_id": position_id}
            for time, side, intent, trigger, price, quantity, position_id in fills.order_by("time", "id").values_list(
                "time", "side", "intent", "trigger", "price", "quantity", "position_id")
        ],
        "earlier": epoch(shown[0].time) - 1 if len(candles) > len(shown) else None,
        "end": epoch(shown[-1].time) if end is not None else None,
    }
