"""The lines a strategy's chart draws (its `chart_lines`), worked out by the core's own indicators over a run of
candles: the values the strategy read, not a second implementation of them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Sequence

from orchestrator.candles import Candle
from orchestrator.indicators import IndicatorSet
from orchestrator.strategy import ChartLine


@dataclass(frozen=True, slots=True)
class LineSeries:
    """One chart line's values: after each candle shown, once its indicator is warm."""

    key: str
    on_price: bool
    points: list[tuple[datetime, float]]


def indicator_lines(
    lines: Sequence[ChartLine], candles: Iterable[Candle], shown_from: datetime | None = None
) -> list[LineSeries]:
    """Feed `candles` (in time order) to fresh indicators of `lines`; each line's value after every candle from
    `shown_from` on (the candles before it only warm the indicators up), in the order of `lines`."""
    indicators = IndicatorSet([line.indicator for line in lines])
    points: dict[str, list[tuple[datetime, float]]] = {line.indicator.key: [] for line in lines}
    for candle in candles:
        values = indicators.update(candle)
        if shown_from is not None and candle.time < shown_from:
            continue
        for key, shown in points.items():
            value = values[key]
            if value is not None:
                shown.append((candle.time, value))
    seen: set[str] = set()
    series = []
    for line in lines:
        key = line.indicator.key
        if key not in seen:
            seen.add(key)
            series.append(LineSeries(key, line.on_price, points[key]))
    return series
