"""A market's indicators over a whole run of candles at once, for a backtest: each value a list over the candles,
the one at candle i worked out from candles 0 to i only, equal to what the incremental indicator gives after i."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from datetime import datetime
from dataclasses import dataclass
from itertools import accumulate, repeat
from math import gcd
from operator import attrgetter, floordiv, sub, truediv

from orchestrator.candles import Candle
from orchestrator.indicators import (
    SMA,
    UNITS_PER_ONE,
    Indicator,
    IndicatorSpec,
    build_indicator,
)


@dataclass(frozen=True)
class CloseTotals:
    """The sum of a run's closes before each candle, and of all of them last: what every SMA of the run is worked
    out from. Counted in whole numbers of `unit` x 1e-10, `unit` the largest divisor of 1e10 that divides every
    close's `close_units` (1e8 for closes with two decimals): the same averages, as fractions, in smaller whole
    numbers, which Python divides on its fast path when they fit a float's 53 bits."""

    totals: list[int]
    unit: int

    @classmethod
    def of(cls, candles: Sequence[Candle]) -> CloseTotals:
        units = list(map(attrgetter("close_units"), candles))
        unit = gcd(UNITS_PER_ONE, *units)
        if unit > 1:
            units = list(map(floordiv, units, repeat(unit)))
        return cls([0, *accumulate(units)], unit)


def sma_series(totals: CloseTotals, period: int) -> list[float | None]:
    """SMA(period) after each candle: the exact sum of the last `period` closes (a difference of whole numbers) over
    the divisor of `SMA` in the same unit, the same fraction, so equal floats (int / int is correctly rounded)."""
    sums = totals.totals
    divisor = period * UNITS_PER_ONE // totals.unit
    warm = list(map(truediv, map(sub, sums[period:], sums[:-period]), repeat(divisor)))
    return [None] * (len(sums) - 1 - len(warm)) + warm


def indicator_series(spec: IndicatorSpec, candles: Sequence[Candle], totals: CloseTotals | None = None) -> list[float | None]:
    """The value of `spec`'s indicator after each candle (`totals`: the candles' `CloseTotals`, if known)."""
    indicator = build_indicator(spec)
    if type(indicator) is SMA:
        return sma_series(CloseTotals.of(candles) if totals is None else totals, spec.period)
    update = indicator.update
    return [update(candle) for candle in candles]


class IndicatorSeries:
    """The indicators read on one market's run of candles, each worked out once for the whole run when first
    declared; a strategy's `IndicatorSet` reads it as it reads `MarketIndicators`, and `update(candle)` gives the
    values after that candle of the run. What a strategy sees at a candle depends only on the candles up to it."""

    __slots__ = ("_candles", "_index", "_time", "_times", "_totals", "_values", "series")

    def __init__(self, candles: Sequence[Candle], times: Sequence[datetime]) -> None:
        self._candles = candles
        # The candles' times, in order: where a candle is in the run.
        self._times = times
        self._totals: CloseTotals | None = None
        # Each key's values, candle by candle.
        self.series: dict[str, list[float | None]] = {}
        self._values: dict[str, float | None] = {}
        self._time: datetime | None = None
        # Where that candle is in the run.
        self._index = -1

    def declare(self, spec: IndicatorSpec) -> Indicator:
        """Work out `spec`'s values over the run, once per key; the indicator returned is a fresh one (its
        state is not kept: a backtest's orchestrator is not saved)."""
        if spec.key not in self.series:
            if spec.kind == "sma" and self._totals is None:
                self._totals = CloseTotals.of(self._candles)
            self.series[spec.key] = indicator_series(spec, self._candles, self._totals)
            self._values[spec.key] = None
        return build_indicator(spec)

    def update(self, candle: Candle) -> dict[str, float | None]:
        """The values after `candle` (one of the run), by key (one dict, updated in place: read it, do not change it)."""
        time = candle.time
        if time != self._time:
            self._time = time
            # The candle after the last one is the usual next (an order made on a candle fills on the next).
            times, index = self._times, self._index + 1
            if index >= len(times) or times[index] != time:
                index = bisect_left(times, time)
            self._index = index
            values = self._values
            for key, series in self.series.items():
                values[key] = series[index]
        return self._values

    def taken(self, key: str) -> None:
        """Nothing to note: the values come from the series."""
