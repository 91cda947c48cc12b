"""Mean reversion: buy when RSI is oversold, sell when it has recovered."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Mapping, Sequence

from orchestrator.candles import Candle
from orchestrator.config import StrategyConfig
from orchestrator.indicators import IndicatorSpec
from orchestrator.positions import LONG, SHORT, Position
from orchestrator.strategy import ENTER_LONG, ENTER_SHORT, EXIT, ChartLine, Signal


@dataclass(frozen=True)
class RsiMeanReversionConfig(StrategyConfig):
    """RSI period and thresholds: enter below `oversold`, exit above `exit_level`."""

    rsi_period: int = 14
    oversold: Decimal = Decimal(30)
    overbought: Decimal = Decimal(70)
    exit_level: Decimal = Decimal(50)

    def problems(self) -> dict[str, str]:
        problems = super().problems()
        if self.rsi_period < 2:
            problems["rsi_period"] = "must be at least 2"
        if not Decimal(0) < self.oversold < self.exit_level:
            problems["oversold"] = f"must be above 0 and below exit_level ({self.exit_level})"
        if not self.exit_level < self.overbought < Decimal(100):
            problems["overbought"] = f"must be above exit_level ({self.exit_level}) and below 100"
        return problems


class RsiMeanReversion:
    """Long when RSI < oversold, exit when RSI > exit_level; short mirrors it above `overbought` if allowed."""

    name: ClassVar[str] = "rsi_mean_reversion"
    config_class: ClassVar[type[StrategyConfig]] = RsiMeanReversionConfig

    def __init__(self, config: RsiMeanReversionConfig) -> None:
        self.config = config
        self._rsi = IndicatorSpec("rsi", config.rsi_period)
        # Looked up on every candle: computed once.
        self._rsi_key = self._rsi.key
        # Thresholds as floats once, so the per-candle comparison does no Decimal work.
        self._oversold = float(config.oversold)
        self._overbought = float(config.overbought)
        self._exit = float(config.exit_level)

    def indicators(self) -> Sequence[IndicatorSpec]:
        return (self._rsi,)

    def chart_lines(self) -> Sequence[ChartLine]:
        # RSI runs from 0 to 100, not in prices: its own pane below the candles.
        return (ChartLine(self._rsi, on_price=False),)

    def state(self) -> dict[str, Any]:
        # Every decision reads only the RSI and the open positions: nothing of its own to keep.
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        """Nothing to restore."""

    def on_candle(
        self, candle: Candle, indicators: Mapping[str, float | None], positions: Sequence[Position]
    ) -> Sequence[Signal]:
        rsi = indicators[self._rsi_key]
        if rsi is None:
            return ()
        held = {p.side for p in positions} if positions else ()
        if LONG in held and rsi > self._exit:
            return (Signal(EXIT, f"RSI {rsi:.1f} recovered above {self._exit:g}"),)
        if SHORT in held and rsi < self._exit:
            return (Signal(EXIT, f"RSI {rsi:.1f} fell back below {self._exit:g}"),)
        if held:
            return ()
        if rsi < self._oversold:
            return (Signal(ENTER_LONG, f"RSI {rsi:.1f} is below {self._oversold:g} (oversold)"),)
        if rsi > self._overbought and self.config.allow_short:
            return (Signal(ENTER_SHORT, f"RSI {rsi:.1f} is above {self._overbought:g} (overbought)"),)
        return ()
