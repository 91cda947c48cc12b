"""Events: what happened, to which strategy, in which order."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from decimal import Decimal
from typing import Any


class EventType(StrEnum):
    """Every event name the desk emits; one word per concept, shared by core, database and browser."""

    SIGNAL_GENERATED = "SIGNAL_GENERATED"
    SIGNAL_REJECTED = "SIGNAL_REJECTED"
    ORDER_CREATED = "ORDER_CREATED"
    ORDER_FILLED = "ORDER_FILLED"
    ORDER_CANCELLED = "ORDER_CANCELLED"
    POSITION_OPENED = "POSITION_OPENED"
    POSITION_REDUCED = "POSITION_REDUCED"
    POSITION_CLOSED = "POSITION_CLOSED"
    STOP_LOSS_HIT = "STOP_LOSS_HIT"
    TAKE_PROFIT_HIT = "TAKE_PROFIT_HIT"
    DATA_REJECTED = "DATA_REJECTED"
    DATA_GAP = "DATA_GAP"
    STRATEGY_ACTIVATED = "STRATEGY_ACTIVATED"
    STRATEGY_DEACTIVATED = "STRATEGY_DEACTIVATED"
    STRATEGY_ERROR = "STRATEGY_ERROR"
    RISK_HALTED = "RISK_HALTED"
    RISK_RESUMED = "RISK_RESUMED"
    CONFIG_CHANGED = "CONFIG_CHANGED"
    CONFLICT_DETECTED = "CONFLICT_DETECTED"
    CAPITAL_LIMIT_HIT = "CAPITAL_LIMIT_HIT"


# Not frozen, but read-only by contract: several are made for every trade, and a frozen dataclass's __init__ costs
# about five times as much (one object.__setattr__ per field).
@dataclass(slots=True)
class Event:
    """One event. `strategy_id` is empty only for system events; `sequence` counts per strategy."""

    type: EventType
    strategy_id: str
    symbol: str
    time: datetime
    sequence: int
    payload: dict[str, Any] = field(default_factory=dict)

    def to_mapping(self) -> dict[str, Any]:
        """The event as JSON: the wire format of the websocket and the stored row."""
        return {
            "type": str(self.type),
            "strategy_id": self.strategy_id,
            "symbol": self.symbol,
            "time": self.time.isoformat(),
            "sequence": self.sequence,
            "payload": self.payload,
        }


def decimal_text(value: Decimal | None) -> str | None:
    """A Decimal as plain canonical text ("46377", "0.02131899"), whatever its trailing zeros,
    so an event says the same thing before and after the number went through the database."""
    if value is None:
        return None
    # str() is plain for the amounts the desk sees and costs a third of format(); the exponent form is rare.
    text = str(value)
    if "E" in text:
        text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


class EventSequence:
    """Hands out a strategy's event numbers, continuing from the last stored one after a restart."""

    __slots__ = ("strategy_id", "last")

    def __init__(self, strategy_id: str, last: int = 0) -> None:
        self.strategy_id = strategy_id
        self.last = last

    def event(self, type: EventType, symbol: str, time: datetime, **payload: Any) -> Event:
        """Make the strategy's next event."""
        self.last += 1
        return Event(type, self.strategy_id, symbol, time, self.last, payload)
