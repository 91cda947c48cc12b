"""The two doors out of the core: storing what a candle produced, and publishing its events.

The Django side implements them with the ORM and the channel layer; the in-memory
versions here serve backtests and tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, Sequence

from orchestrator.candles import Candle
from orchestrator.events import Event
from orchestrator.orders import Fill, Order
from orchestrator.positions import Position


# Not frozen, but read-only by contract: made for every decision and fill (see Event).
@dataclass(slots=True)
class JournalEntry:
    """A line of a strategy's journal: a decision or an outcome, in words a trader reads."""

    strategy_id: str
    time: datetime
    kind: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class CandleResult:
    """Everything one candle changed for one strategy; stored as one unit.

    `candle` is None when the candle was rejected: then only the rejection event is stored.
    """

    strategy_id: str
    time: datetime
    candle: Candle | None = None
    events: list[Event] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)  # ids of pending orders taken back
    positions: list[Position] = field(default_factory=list)
    journal: list[JournalEntry] = field(default_factory=list)
    equity: Decimal = Decimal(0)
    realized_pnl: Decimal = Decimal(0)
    unrealized_pnl: Decimal = Decimal(0)


class OrchestratorStore(Protocol):
    """Persists a candle's result atomically: all of it or none of it."""

    def record(self, result: CandleResult) -> None:
        """Store the result; raise if it could not be stored."""
        ...


class EventPublisher(Protocol):
    """Delivers events to whoever watches the strategy."""

    def publish(self, events: Sequence[Event]) -> None:
        """Send the events, in order."""
        ...


class MemoryStore:
    """Keeps results in a list: for backtests and tests."""

    def __init__(self) -> None:
        self.results: list[CandleResult] = []

    def record(self, result: CandleResult) -> None:
        self.results.append(result)


class MemoryPublisher:
    """Keeps published events in a list: for backtests and tests."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def publish(self, events: Sequence[Event]) -> None:
        self.events.extend(events)
