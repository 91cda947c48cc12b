"""Trend following: enter when the fast SMA crosses the slow one, leave on the opposite cross."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import compress
from operator import gt, lt, ne, sub
from typing import Any, ClassVar, Mapping, Sequence

from orchestrator.candles import Candle
from orchestrator.config import StrategyConfig
from orchestrator.indicators import IndicatorSpec
from orchestrator.positions import LONG, SHORT, Position
from orchestrator.strategy import ENTER_LONG, ENTER_SHORT, EXIT, ChartLine, Signal


@dataclass(frozen=True)
class SmaCrossoverConfig(StrategyConfig):
    """Periods of the two moving averages; fast must be shorter than slow."""

    fast_period: int = 10
    slow_period: int = 30

    def problems(self) -> dict[str, str]:
        problems = super().problems()
        if self.fast_period < 1:
            problems["fast_period"] = "must be at least 1"
        if self.slow_period <= self.fast_period:
            problems["slow_period"] = f"must be longer than fast_period ({self.fast_period})"
        return problems


class SmaCrossover:
    """Long when SMA(fast) crosses above SMA(slow); exit (or go short, if allowed) on the cross below."""

    name: ClassVar[str] = "sma_crossover"
    config_class: ClassVar[type[StrategyConfig]] = SmaCrossoverConfig

    def __init__(self, config: SmaCrossoverConfig) -> None:
        self.config = config
        self._fast = IndicatorSpec("sma", config.fast_period)
        self._slow = IndicatorSpec("sma", config.slow_period)
        # Looked up on every candle: computed once.
        self._fast_key, self._slow_key = self._fast.key, self._slow.key
        # Where the fast SMA stood against the slow one at the last candle: 1 above, -1 below, 0 equal.
        self._relation: int | None = None

    def indicators(self) -> Sequence[IndicatorSpec]:
        return (self._fast, self._slow)

    def chart_lines(self) -> Sequence[ChartLine]:
        # The two averages whose crossing it trades, over the candles they average.
        return (ChartLine(self._fast), ChartLine(self._slow))

    def state(self) -> dict[str, Any]:
        return {"relation": self._relation}

    def restore(self, state: dict[str, Any]) -> None:
        self._relation = state["relation"]

    def decision_candles(self, series: Mapping[str, Sequence[float | None]]) -> Sequence[int]:
        # It decides, and notes where the fast average stands, only when that changes: above, below or equal.
        fast, slow = series[self._fast_key], series[self._slow_key]
        # SMAs have values from their period on, and keep them.
        start = next((index for index, (f, s) in enumerate(zip(fast, slow)) if f is not None and s is not None), len(fast))
        if start == len(fast):
            return []
        fast, slow = fast[start:], slow[start:]
        relation = list(map(sub, map(gt, fast, slow), map(lt, fast, slow)))
        return [start, *compress(range(start + 1, start + len(relation)), map(ne, relation[1:], relation))]

    def on_candle(
        self, candle: Candle, indicators: Mapping[str, float | None], positions: Sequence[Position]
    ) -> Sequence[Signal]:
        fast, slow = indicators[self._fast_key], indicators[self._slow_key]
        if fast is None or slow is None:
            return ()
        relation = (fast > slow) - (fast < slow)
        previous = self._relation
        if relation == previous:
            return ()
        self._relation = relation
        # A cross is strictly below at the last candle and strictly above at this one (or the reverse): an
        # exact tie is no side, so a path through a tie is no cross, as backtesting.py, vectorbt and
        # nautilus_trader count it.
        if previous is None or relation == 0 or previous != -relation:
            return ()
        above = relation > 0
        label = f"SMA {self.config.fast_period} crossed {'above' if above else 'below'} SMA {self.config.slow_period}"
        held = {p.side for p in positions}
        wanted, opposite = (LONG, SHORT) if above else (SHORT, LONG)
        signals: list[Signal] = []
        if opposite in held:
            signals.append(Signal(EXIT, label))
        if wanted is LONG:
            signals.append(Signal(ENTER_LONG, label))
        elif self.config.allow_short:
            signals.append(Signal(ENTER_SHORT, label))
        return signals
