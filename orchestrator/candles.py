"""Candles: the one kind of market data the core consumes, validated at the door."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any, Mapping

TIMEFRAMES: dict[str, timedelta] = {
    "1m": timedelta(minutes=1),
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "4h": timedelta(hours=4),
    "1d": timedelta(days=1),
}


class CandleRejected(ValueError):
    """A candle that must never reach a strategy; the message says why."""


def to_decimal(value: Any, field: str) -> Decimal:
    """Convert a price or volume from the edge (str, int, float) to a finite Decimal."""
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, bool):
        raise CandleRejected(f"{field} is not a number: {value!r}")
    else:
        try:
            # str() keeps the shortest float repr, so 0.1 stays 0.1 and not 0.1000000000000000055...
            number = Decimal(str(value))
        except (InvalidOperation, ValueError, TypeError):
            raise CandleRejected(f"{field} is not a number: {value!r}") from None
    if not number.is_finite():
        raise CandleRejected(f"{field} is not finite: {value!r}")
    return number


def to_utc(value: Any) -> datetime:
    """Parse an ISO string or datetime into an aware UTC datetime; naive input is refused."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise CandleRejected(f"time is not an ISO 8601 timestamp: {value!r}") from None
    if not isinstance(value, datetime):
        raise CandleRejected(f"time is not a timestamp: {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise CandleRejected(f"time has no timezone: {value.isoformat()}")
    return value.astimezone(timezone.utc)


@dataclass(frozen=True, slots=True)
class Candle:
    """One closed OHLCV candle; `time` is its open time in UTC, prices are Decimal.

    Building one checks every invariant, so a Candle that exists is a valid candle.
    """

    symbol: str
    timeframe: str
    time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        if not self.symbol:
            raise CandleRejected("symbol is empty")
        if self.timeframe not in TIMEFRAMES:
            raise CandleRejected(f"unknown timeframe {self.timeframe!r}; use one of {', '.join(TIMEFRAMES)}")
        if self.time.tzinfo is None or self.time.utcoffset() != timedelta(0):
            raise CandleRejected("time must be timezone-aware UTC")
        for field in ("open", "high", "low", "close", "volume"):
            value = getattr(self, field)
            if not isinstance(value, Decimal) or not value.is_finite():
                raise CandleRejected(f"{field} is not a finite Decimal: {value!r}")
        if min(self.open, self.high, self.low, self.close) <= 0:
            raise CandleRejected("prices must be positive")
        if self.volume < 0:
            raise CandleRejected("volume must not be negative")
        if self.high < max(self.open, self.close):
            raise CandleRejected(f"high {self.high} is below open/close")
        if self.low > min(self.open, self.close):
            raise CandleRejected(f"low {self.low} is above open/close")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "Candle":
        """Build a candle from JSON-like data (strings or numbers); raises CandleRejected."""
        if not isinstance(data, Mapping):
            raise CandleRejected(f"candle must be an object, not {type(data).__name__}")
        missing = [key for key in ("symbol", "timeframe", "time", "open", "high", "low", "close") if key not in data]
        if missing:
            raise CandleRejected(f"candle is missing {', '.join(missing)}")
        symbol, timeframe, time = data["symbol"], data["timeframe"], data["time"]
        return cls(
            symbol=str(symbol),
            timeframe=str(timeframe),
            time=to_utc(time),
            open=to_decimal(data.get("open"), "open"),
            high=to_decimal(data.get("high"), "high"),
            low=to_decimal(data.get("low"), "low"),
            close=to_decimal(data.get("close"), "close"),
            volume=to_decimal(data.get("volume", 0), "volume"),
        )

    def to_mapping(self) -> dict[str, str]:
        """JSON-safe form: Decimals and the time as strings, exact both ways."""
        return {
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "time": self.time.isoformat(),
            "open": str(self.open),
            "high": str(self.high),
            "low": str(self.low),
            "close": str(self.close),
            "volume": str(self.volume),
        }


class Arrival(Enum):
    """What a sequence makes of a candle that passed validation."""

    NEW = "new"
    DUPLICATE = "duplicate"


class CandleSequence:
    """Keeps candle times strictly increasing per (symbol, timeframe).

    A candle at the last accepted time is a duplicate (ignored, so replays are harmless);
    an earlier one is out of order and rejected.
    """

    def __init__(self, last_times: Mapping[tuple[str, str], datetime] | None = None) -> None:
        self._last: dict[tuple[str, str], datetime] = dict(last_times or {})

    def last_time(self, symbol: str, timeframe: str) -> datetime | None:
        """Time of the last accepted candle for that market, if any."""
        return self._last.get((symbol, timeframe))

    def check(self, candle: Candle) -> Arrival:
        """Classify a candle without accepting it; raises CandleRejected when out of order."""
        last = self._last.get((candle.symbol, candle.timeframe))
        if last is None or candle.time > last:
            return Arrival.NEW
        if candle.time == last:
            return Arrival.DUPLICATE
        raise CandleRejected(
            f"out of order: {candle.symbol} {candle.timeframe} candle at {candle.time.isoformat()} "
            f"is older than the last one at {last.isoformat()}"
        )

    def accept(self, candle: Candle) -> Arrival:
        """Check a candle and, when new, remember its time."""
        arrival = self.check(candle)
        if arrival is Arrival.NEW:
            self._last[(candle.symbol, candle.timeframe)] = candle.time
        return arrival
