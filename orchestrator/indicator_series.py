"""A market's indicators over a whole run of candles at once, for a backtest: each value a list over the candles,
the one at candle i worked out from candles 0 to i only, equal to what the incremental indicator gives after i."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from datetime import datetime
from itertools import accumulate, repeat
from operator import attrgetter, sub, truediv

from orchestrator.candles import Candle
from orchestrator.indicators import (
    SMA,
    UNITS_PER_ONE,
    Indicator,
    IndicatorSpec,
    build_indicator,
)


def running_totals(candles: Sequence[Candle]) -> list[int]:
    """The sum of the closes (whole numbers of 1e-10) before each candle, and of all of them last: what every SMA
    of the run is worked out from."""
    return [0, *accumulate(map(attrgetter("close_units"), candles))]


def sma_series(totals: Sequence[int], period: int) -> list[float | None]:
    """SMA(period) after each candle, from `running_totals`: the exact sum of the last `period` closes (a difference
    of whole numbers) over the same divisor as `SMA`, so equal floats."""
    warm = list(map(truediv, map(sub, totals[period:], totals[:-period]), repeat(period * UNITS_PER_ONE)))
    return [None] * (len(totals) - 1 - len(warm)) + warm


def indicator_series(spec: IndicatorSpec, candles: Sequence[Candle], totals: Sequence[int] | None = None) -> list[float | None]:
    """The value of `spec`'s indicator after each candle (`totals`: the candles' `running_totals`, if known)."""
    indicator = build_indicator(spec)
    if type(indicator) is SMA:
        return sma_series(running_totals(candles) if totals is None else totals, spec.period)
    update = indicator.update
    return [update(candle) for candle in candles]


class IndicatorSeries:
    """The indicators read on one market's run of candles, each worked out once for the whole run when first
    declared; a strategy's `IndicatorSet` reads it as it reads `MarketIndicators`, and `update(candle)` gives the
    values after that candle of the run. What a strategy sees at a candle depends only on the candles up to it."""

    __slots__ = ("_candles", "_time", "_times", "_totals", "_values", "series")

    def __init__(self, candles: Sequence[Candle], times: Sequence[datetime]) -> None:
        self._candles = candles
        # The candles' times, in order: where a candle is in the run.
        self._times = times
        self._totals: list[int] | None = None
        # Each key's values, candle by candle.
        self.series: dict[str, list[float | None]] = {}
        self._values: dict[str, float | None] = {}
        self._time: datetime | None = None

    def declare(self, spec: IndicatorSpec) -> Indicator:
        """Work out `spec`'s values over the run, once per key; the indicator returned is a fresh one (its
        state is not kept: a backtest's orchestrator is not saved)."""
        if spec.key not in self.series:
            if spec.kind == "sma" and self._totals is None:
                self._totals = running_totals(self._candles)
            self.series[spec.key] = indicator_series(spec, self._candles, self._totals)
            self._values[spec.key] = None
        return build_indicator(spec)

    def update(self, candle: Candle) -> dict[str, float | None]:
        """The values after `candle` (one of the run), by key (one dict, updated in place: read it, do not change it)."""
        if candle.time != self._time:
            self._time = candle.time
            index = bisect_left(self._times, candle.time)
            values = self._values
            for key, series in self.series.items():
                values[key] = series[index]
        return self._values

    def taken(self, key: str) -> None:
        """Nothing to note: the values come from the series."""
