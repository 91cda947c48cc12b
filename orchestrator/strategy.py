"""The contract between the orchestrator and a strategy: config in, signals out."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Mapping, Protocol, Sequence, runtime_checkable

from orchestrator.candles import Candle
from orchestrator.config import StrategyConfig
from orchestrator.indicators import IndicatorSpec
from orchestrator.positions import Position


class SignalAction(StrEnum):
    """What a strategy asks for; risk rules decide whether and how much."""

    ENTER_LONG = "enter_long"
    ENTER_SHORT = "enter_short"
    EXIT = "exit"


# The members as module names, read for every signal (see orchestrator.positions.LONG).
ENTER_LONG, ENTER_SHORT, EXIT = SignalAction.ENTER_LONG, SignalAction.ENTER_SHORT, SignalAction.EXIT


@dataclass(frozen=True, slots=True)
class Signal:
    """A strategy's request, with a reason a person can read in the journal."""

    action: SignalAction
    reason: str


@dataclass(frozen=True, slots=True)
class ChartLine:
    """One of a strategy's indicators drawn on its chart: over the candles (`on_price`, a moving average), or in a
    pane of its own below them (an oscillator such as RSI, on a scale of its own)."""

    indicator: IndicatorSpec
    on_price: bool = True


class Strategy(Protocol):
    """A trading rule. It sees closed candles and the indicators it declared, never the future.

    `name` is its registry key; `config_class` its frozen, validated config.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[StrategyConfig]]
    config: StrategyConfig

    def indicators(self) -> Sequence[IndicatorSpec]:
        """The indicators this strategy reads; the orchestrator computes only these."""
        ...

    def chart_lines(self) -> Sequence[ChartLine]:
        """Which of its indicators a chart of its market draws, and where; () for none."""
        ...

    def on_candle(
        self, candle: Candle, indicators: Mapping[str, float | None], positions: Sequence[Position]
    ) -> Sequence[Signal]:
        """Decide on a closed candle, given indicator values and the strategy's open positions."""
        ...

    def state(self) -> dict[str, Any]:
        """The strategy's own memory between candles (such as "was above"), as JSON; {} if it has none."""
        ...

    def restore(self, state: dict[str, Any]) -> None:
        """Take back a `state()`, so that a rebuilt strategy decides exactly as the one it replaces."""
        ...


@runtime_checkable
class DecidesOnKnownCandles(Protocol):
    """A strategy that can tell, from its indicators' values over a run of candles, the only candles on which it
    may decide anything: a backtest hands it those (and the ones its orders and stops need), not every candle."""

    def decision_candles(self, series: Mapping[str, Sequence[float | None]]) -> Sequence[int]:
        """The indexes, ascending, of the candles of a run on which `on_candle` may return a signal or change the
        strategy's memory, given each declared indicator's value after every candle of the run (`series`, by key).
        On any other candle it must return () and change nothing, whatever its positions. The value at a candle
        depends only on the candles up to it, and so must the answer for it."""
        ...
