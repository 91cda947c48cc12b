"""Incremental indicators: small objects fed one candle at a time, O(1) per candle."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, ClassVar, Iterable

from orchestrator.candles import PLACES, Candle


# Decimal places an SMA keeps exactly (see SMA): the desk stores prices to ten (a candle's `close_units`).
PRECISION = PLACES
UNITS_PER_ONE = 10**PRECISION


class UnknownIndicator(ValueError):
    """An indicator kind that no class in INDICATORS computes."""


class Indicator(ABC):
    """One indicator over one candle stream; `value` is None until it has warmed up."""

    __slots__ = ("period", "_value")

    kind: ClassVar[str]
    min_period: ClassVar[int] = 1
    # What `state()` saves: the value and every running total the next update reads.
    state_fields: ClassVar[tuple[str, ...]] = ("_value",)

    def __init__(self, period: int) -> None:
        if isinstance(period, bool) or not isinstance(period, int):
            raise ValueError(f"{self.kind} period must be a whole number, got {period!r}")
        if period < self.min_period:
            raise ValueError(f"{self.kind} period must be at least {self.min_period}, got {period}")
        self.period = period
        self._value: float | None = None

    @property
    def key(self) -> str:
        """Name of this indicator in a strategy's values, e.g. "sma_20"."""
        return f"{self.kind}_{self.period}"

    @property
    def value(self) -> float | None:
        """The latest value, or None while warming up."""
        return self._value

    @property
    def ready(self) -> bool:
        """True once the indicator has seen enough candles to have a value."""
        return self._value is not None

    @abstractmethod
    def update(self, candle: Candle) -> float | None:
        """Feed the next candle; returns the current value, or None while warming up."""

    def state(self) -> dict:
        """Everything the indicator remembers, as JSON: restored, it continues exactly where it was."""
        return {name: getattr(self, name) for name in self.state_fields}

    def restore(self, state: dict) -> None:
        """Take back a `state()`; a float sum restored bit for bit keeps the next values identical."""
        for name in self.state_fields:
            setattr(self, name, state[name])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.period}, value={self._value!r})"


class SMA(Indicator):
    """Simple moving average of the last `period` closes.

    The running sum is exact: closes are summed as whole numbers of 1e-10 (the desk's money precision), so two
    averages of equal closes are equal floats and a tie of a fast and a slow average is a tie, on 5-decimal FX
    prices too (a float sum drifts with the order of additions)."""

    __slots__ = ("_closes", "_sum", "_divisor")
    kind = "sma"

    def __init__(self, period: int) -> None:
        super().__init__(period)
        self._closes: deque[int] = deque(maxlen=period)
        self._sum = 0
        self._divisor = period * UNITS_PER_ONE

    def update(self, candle: Candle) -> float | None:
        close = candle.close_units
        closes = self._closes
        if self._value is not None:
            # Warm, the deque is full: it drops its oldest close on append, which leaves the sum first.
            self._sum = total = self._sum - closes[0] + close
            closes.append(close)
            # int / int is correctly rounded: equal sums of equal periods give equal floats.
            self._value = value = total / self._divisor
            return value
        closes.append(close)
        self._sum += close
        if len(closes) == self.period:
            self._value = self._sum / self._divisor
        return self._value

    def state(self) -> dict:
        return {"_value": self._value, "_closes": list(self._closes), "_sum": self._sum}

    def restore(self, state: dict) -> None:
        self._value = state["_value"]
        self._closes = deque(state["_closes"], maxlen=self.period)
        self._sum = state["_sum"]


class EMA(Indicator):
    """Exponential moving average, alpha = 2 / (period + 1), seeded with the SMA of the first `period` closes."""

    __slots__ = ("_alpha", "_count", "_seed_sum")
    kind = "ema"
    state_fields = ("_value", "_count", "_seed_sum")

    def __init__(self, period: int) -> None:
        super().__init__(period)
        self._alpha = 2.0 / (period + 1)
        self._count = 0
        self._seed_sum = 0.0

    def update(self, candle: Candle) -> float | None:
        close = float(candle.close)
        if self._value is not None:
            self._value += self._alpha * (close - self._value)
            return self._value
        self._count += 1
        self._seed_sum += close
        if self._count == self.period:
            self._value = self._seed_sum / self.period
        return self._value


class RSI(Indicator):
    """Wilder's relative strength index, 0 to 100; first value after `period` + 1 candles."""

    __slots__ = ("_previous_close", "_changes", "_average_gain", "_average_loss")
    kind = "rsi"
    state_fields = ("_value", "_previous_close", "_changes", "_average_gain", "_average_loss")
    # With one change per average, RSI can only be 0 or 100: not a useful oscillator.
    min_period = 2

    def __init__(self, period: int) -> None:
        super().__init__(period)
        self._previous_close: float | None = None
        self._changes = 0
        self._average_gain = 0.0
        self._average_loss = 0.0

    def update(self, candle: Candle) -> float | None:
        close = float(candle.close)
        previous, self._previous_close = self._previous_close, close
        if previous is None:
            return None
        change = close - previous
        gain = change if change > 0 else 0.0
        loss = -change if change < 0 else 0.0
        if self._changes < self.period:
            # Warm-up: sum the first `period` changes, then seed the averages with their mean.
            self._changes += 1
            self._average_gain += gain
            self._average_loss += loss
            if self._changes < self.period:
                return None
            self._average_gain /= self.period
            self._average_loss /= self.period
        else:
            self._average_gain += (gain - self._average_gain) / self.period
            self._average_loss += (loss - self._average_loss) / self.period
        if self._average_loss == 0.0:
            self._value = 100.0
        else:
            self._value = 100.0 - 100.0 / (1.0 + self._average_gain / self._average_loss)
        return self._value


class ATR(Indicator):
    """Wilder's average true range, seeded with the mean of the first `period` true ranges."""

    __slots__ = ("_previous_close", "_count", "_seed_sum")
    kind = "atr"
    state_fields = ("_value", "_previous_close", "_count", "_seed_sum")

    def __init__(self, period: int) -> None:
        super().__init__(period)
        self._previous_close: float | None = None
        self._count = 0
        self._seed_sum = 0.0

    def update(self, candle: Candle) -> float | None:
        high, low = float(candle.high), float(candle.low)
        previous = self._previous_close
        self._previous_close = float(candle.close)
        if previous is None:
            true_range = high - low
        else:
            true_range = max(high - low, abs(high - previous), abs(low - previous))
        if self._value is not None:
            self._value += (true_range - self._value) / self.period
            return self._value
        self._count += 1
        self._seed_sum += true_range
        if self._count == self.period:
            self._value = self._seed_sum / self.period
        return self._value


INDICATORS: dict[str, type[Indicator]] = {"sma": SMA, "ema": EMA, "rsi": RSI, "atr": ATR}


@dataclass(frozen=True, slots=True)
class IndicatorSpec:
    """What a strategy declares it needs: an indicator kind and its period."""

    kind: str
    period: int

    @property
    def key(self) -> str:
        """Name of the indicator's value, e.g. "sma_20"."""
        return f"{self.kind}_{self.period}"

    @classmethod
    def parse(cls, text: str) -> "IndicatorSpec":
        """Read the "kind_period" form, e.g. "sma_20" or "rsi_14"; raises ValueError otherwise."""
        kind, _, period = text.strip().lower().rpartition("_")
        # isascii() because str.isdigit() also accepts superscripts such as "²", which int() refuses.
        if not kind or not period.isascii() or not period.isdigit():
            raise ValueError(f"indicator {text!r} is not in kind_period form, e.g. 'sma_20'")
        return cls(kind, int(period))


def build_indicator(spec: IndicatorSpec) -> Indicator:
    """Make a fresh indicator for a spec; raises UnknownIndicator or ValueError for a bad period."""
    indicator_class = INDICATORS.get(spec.kind)
    if indicator_class is None:
        raise UnknownIndicator(
            f"unknown indicator kind {spec.kind!r} in {spec.key!r}; use one of {', '.join(sorted(INDICATORS))}"
        )
    return indicator_class(spec.period)


class MarketIndicators:
    """The indicators read on one market's candle stream, one per key (kind and period), each updated once per
    candle however many strategies read it. Strategies that see the same candles from the same first one (those
    of one market in a backtest) share one: an SMA 30 that five of them declare is computed once per candle."""

    __slots__ = ("_indicators", "_averages", "_updated", "_values", "_time")

    def __init__(self) -> None:
        self._indicators: dict[str, Indicator] = {}
        # The SMAs, updated inline, and the others, by key.
        self._averages: tuple[tuple[str, SMA], ...] = ()
        self._updated: tuple[tuple[str, Indicator], ...] = ()
        self._values: dict[str, float | None] = {}
        self._time: datetime | None = None

    def declare(self, spec: IndicatorSpec) -> Indicator:
        """The indicator for `spec`, made on its first declaration; ValueError once candles were fed (a new one
        would start cold beside warm ones)."""
        indicator = self._indicators.get(spec.key)
        if indicator is None:
            if self._time is not None:
                raise ValueError(f"{spec.key} declared after the market's indicators took candles")
            indicator = self._indicators[spec.key] = build_indicator(spec)
            # Keys are computed once here, not as f-strings on every candle.
            self._averages = tuple((key, i) for key, i in self._indicators.items() if type(i) is SMA)
            self._updated = tuple((key, i) for key, i in self._indicators.items() if type(i) is not SMA)
            self._values[spec.key] = None
        return indicator

    def update(self, candle: Candle) -> dict[str, float | None]:
        """Feed one candle to every indicator, unless this candle (by time) was fed already; returns the values
        by key (the same dict, updated in place: read it, do not change it)."""
        if candle.time == self._time:
            return self._values
        self._time = candle.time
        values = self._values
        close = candle.close_units
        for key, sma in self._averages:
            if sma._value is None:
                values[key] = sma.update(candle)
                continue
            # A warm SMA's update (see SMA.update), inline: the call would cost as much as the update.
            closes = sma._closes
            sma._sum = total = sma._sum - closes[0] + close
            closes.append(close)
            values[key] = sma._value = total / sma._divisor
        for key, indicator in self._updated:
            values[key] = indicator.update(candle)
        return values

    def taken(self, key: str) -> None:
        """Note an indicator's value after its state was restored."""
        self._values[key] = self._indicators[key].value


class IndicatorSet:
    """The indicators one strategy declared, updated together candle by candle: its own, or those of a
    `MarketIndicators` shared with the other strategies of its market."""

    __slots__ = ("_market", "_indicators", "update")

    def __init__(self, specs: Iterable[IndicatorSpec], market: MarketIndicators | None = None) -> None:
        self._market = market if market is not None else MarketIndicators()
        indicators = {spec.key: self._market.declare(spec) for spec in specs}
        self._indicators = tuple(indicators.items())
        # update(candle): feed one candle to every indicator (once per candle, shared or not); returns the values
        # by key, the declared ones among them (one dict, updated in place: read it, do not change it). The
        # market's own method, so the call on every candle goes straight to it.
        self.update: Callable[[Candle], dict[str, float | None]] = self._market.update

    def state(self) -> dict[str, dict]:
        """Each indicator's state by key."""
        return {key: indicator.state() for key, indicator in self._indicators}

    def restore(self, state: dict[str, dict]) -> None:
        """Restore every indicator from a `state()` of the same keys; raises KeyError if one is missing. A shared
        indicator is restored for every strategy that reads it."""
        for key, indicator in self._indicators:
            indicator.restore(state[key])
            self._market.taken(key)

    @property
    def values(self) -> dict[str, float | None]:
        """Current value of each declared indicator, by key."""
        return {key: indicator.value for key, indicator in self._indicators}

    @property
    def keys(self) -> tuple[str, ...]:
        """Keys of the declared indicators, in declaration order."""
        return tuple(key for key, _ in self._indicators)

    @property
    def ready(self) -> bool:
        """True once every indicator has a value."""
        return all(indicator.ready for _, indicator in self._indicators)

    def __contains__(self, key: object) -> bool:
        return any(key == own for own, _ in self._indicators)

    def __len__(self) -> int:
        return len(self._indicators)
