"""Candles: the one kind of market data the core consumes, validated at the door."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Context, Decimal, InvalidOperation
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


SYMBOL_LENGTH = 32
# Prices and volumes are stored as DECIMAL(30, 10): ten places, and below 10**20.
PLACES = 10
QUANTUM = Decimal(1).scaleb(-PLACES)
LARGEST = Decimal(10) ** (30 - PLACES)
# A price may lose at most this fraction of itself to the storage's rounding.
MAX_ROUNDING = Decimal("1e-6")
_WIDE = Context(prec=60)


def shown(value: Any, limit: int = 40) -> str:
    """A bounded repr of untrusted input for a message: never echo a megabyte back."""
    text = str(value) if isinstance(value, Decimal) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def to_decimal(value: Any, field: str) -> Decimal:
    """Convert a price or volume from the edge (str, int, float) to a finite Decimal."""
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise CandleRejected(f"{field} is not a number: {shown(value)}")
    else:
        try:
            # str() keeps the shortest float repr, so 0.1 stays 0.1 and not 0.1000000000000000055...
            number = Decimal(str(value))
        except (InvalidOperation, ValueError, TypeError):
            raise CandleRejected(f"{field} is not a number: {shown(value)}") from None
    if not number.is_finite():
        raise CandleRejected(f"{field} is not finite: {shown(value)}")
    return number


def to_storable(value: Any, field: str, exact: bool = True) -> Decimal:
    """A number from the edge as it will be stored: ten decimal places, below 10**20.

    With `exact`, a number the rounding would change by more than a millionth of itself
    (a price of 1e-12 would become 0) is refused rather than silently altered; volumes
    may round.
    """
    number = to_decimal(value, field)
    if abs(number) >= LARGEST:
        raise CandleRejected(f"{field} {shown(number)} is too large: the desk stores values below 1E+20")
    if number.as_tuple().exponent >= -PLACES:
        return number
    stored = number.quantize(QUANTUM, context=_WIDE)
    if exact and stored != number and (stored == 0 or abs(stored - number) > abs(number) * MAX_ROUNDING):
        raise CandleRejected(
            f"{field} {shown(number)} cannot be stored without changing it: the desk keeps {PLACES} decimal places"
        )
    return stored


def to_utc(value: Any) -> datetime:
    """Parse an ISO string or datetime into an aware UTC datetime; naive input is refused."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise CandleRejected(f"time is not an ISO 8601 timestamp: {shown(value)}") from None
    if not isinstance(value, datetime):
        raise CandleRejected(f"time is not a timestamp: {shown(value)}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise CandleRejected(f"time has no timezone: {value.isoformat()}")
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        raise CandleRejected(f"time is out of range: {value.isoformat()}") from None


def check_symbol(symbol: Any) -> str:
    """A market symbol such as "BTC/USD": text of 1 to 32 printable characters without spaces."""
    if not isinstance(symbol, str):
        raise CandleRejected(f"symbol is not text: {shown(symbol)}")
    if not symbol:
        raise CandleRejected("symbol is empty")
    if len(symbol) > SYMBOL_LENGTH:
        raise CandleRejected(f"symbol is {len(symbol)} characters long; at most {SYMBOL_LENGTH}")
    # isprintable() already refuses tabs, newlines and the other Unicode spaces; only " " passes it.
    if " " in symbol or not symbol.isprintable():
        raise CandleRejected(f"symbol has spaces or unprintable characters: {shown(symbol)}")
    return symbol


@dataclass(frozen=True, slots=True)
class Candle:
    """One closed OHLCV candle; `time` is its open time in UTC, prices are Decimal.

    Building one checks every invariant, so a Candle that exists is a valid candle. `close_units` is the
    close as a whole number of 1e-10 (the desk's precision), worked out once: exact sums of closes (SMA)
    read it on every candle.
    """

    symbol: str
    timeframe: str
    time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = Decimal(0)
    close_units: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_symbol(self.symbol)
        if not isinstance(self.timeframe, str) or self.timeframe not in TIMEFRAMES:
            raise CandleRejected(f"unknown timeframe {shown(self.timeframe)}; use one of {', '.join(TIMEFRAMES)}")
        if self.time.tzinfo is None or self.time.utcoffset() != timedelta(0):
            raise CandleRejected("time must be timezone-aware UTC")
        for field in ("open", "high", "low", "close", "volume"):
            value = getattr(self, field)
            if not isinstance(value, Decimal) or not value.is_finite():
                raise CandleRejected(f"{field} is not a finite Decimal: {shown(value)}")
            if value >= LARGEST:
                raise CandleRejected(f"{field} {shown(value)} is too large: the desk stores values below 1E+20")
        if min(self.open, self.high, self.low, self.close) <= 0:
            raise CandleRejected("prices must be positive")
        if self.volume < 0:
            raise CandleRejected("volume must not be negative")
        if self.high < max(self.open, self.close):
            raise CandleRejected(f"high {self.high} is below open/close")
        if self.low > min(self.open, self.close):
            raise CandleRejected(f"low {self.low} is above open/close")
        object.__setattr__(self, "close_units", int(self.close.scaleb(PLACES)))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "Candle":
        """Build a candle from JSON-like data (strings or numbers); raises CandleRejected."""
        if not isinstance(data, Mapping):
            raise CandleRejected(f"candle must be an object, not {type(data).__name__}")
        missing = [key for key in ("symbol", "timeframe", "time", "open", "high", "low", "close") if key not in data]
        if missing:
            raise CandleRejected(f"candle is missing {', '.join(missing)}")
        # Symbol and timeframe are checked once, by __post_init__.
        return cls(
            symbol=data["symbol"],
            timeframe=data["timeframe"],
            time=to_utc(data["time"]),
            open=to_storable(data["open"], "open"),
            high=to_storable(data["high"], "high"),
            low=to_storable(data["low"], "low"),
            close=to_storable(data["close"], "close"),
            volume=to_storable(data.get("volume", 0), "volume", exact=False),
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
