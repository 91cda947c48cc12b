"""A strategy with a bug: an SMA crossover that raises in its own code on one candle. Registered for the
worker processes a test starts by `tests.worker_settings`; a test registers it in its own process."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Mapping, Sequence

from orchestrator.candles import Candle
from orchestrator.config import StrategyConfig
from orchestrator.positions import Position
from orchestrator.strategy import Signal
from strategies import SmaCrossover, SmaCrossoverConfig


@dataclass(frozen=True)
class FailingSmaConfig(SmaCrossoverConfig):
    """An SMA crossover's settings and the time (ISO 8601) of the candle it fails on."""

    fails_at: str = ""


class FailingSma(SmaCrossover):
    """Trades as SmaCrossover until the candle at `fails_at`, where it divides by zero."""

    name: ClassVar[str] = "failing_sma"
    config_class: ClassVar[type[StrategyConfig]] = FailingSmaConfig

    def on_candle(
        self, candle: Candle, indicators: Mapping[str, float | None], positions: Sequence[Position]
    ) -> Sequence[Signal]:
        if candle.time.isoformat() == self.config.fails_at:
            raise ZeroDivisionError(f"division by zero in the signal of the candle at {self.config.fails_at}")
        return super().on_candle(candle, indicators, positions)
