"""What a market's next candle must satisfy before it is stored and reaches a strategy.

A valid candle (see `orchestrator.candles`) can still be wrong for its market: stamped
in the future, older than what is stored, a second version of a stored candle, or a
price that jumps absurdly against the previous close. `MarketRules.check` says which.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum

from orchestrator.candles import TIMEFRAMES, Candle, CandleRejected

DEFAULT_MAX_MOVE = Decimal("0.5")
DEFAULT_CLOCK_TOLERANCE = timedelta(seconds=60)
PRICES = ("open", "high", "low", "close")
VALUES = PRICES + ("volume",)


class Arrival(Enum):
    """What a market makes of a candle that passed its rules."""

    NEW = "new"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class MarketRules:
    """The rules of one market (symbol and timeframe).

    `max_move` is the largest distance of any of a candle's prices from the previous
    close, as a fraction of it; `clock_tolerance` is how far a live candle's close may lie
    beyond the current time (clocks of feed and desk differ a little).
    """

    symbol: str
    timeframe: str
    max_move: Decimal = DEFAULT_MAX_MOVE
    clock_tolerance: timedelta = DEFAULT_CLOCK_TOLERANCE

    def check(self, candle: Candle, previous: Candle | None, now: datetime | None = None) -> Arrival:
        """Classify `candle` against the market's last stored candle; raise CandleRejected if it breaks a rule.

        `now` is the wall time for a live feed; a replay of history passes None.
        """
        if (candle.symbol, candle.timeframe) != (self.symbol, self.timeframe):
            raise CandleRejected(
                f"{candle.symbol} {candle.timeframe} candle checked against the rules of {self.symbol} {self.timeframe}"
            )
        if now is not None:
            period = TIMEFRAMES[self.timeframe]
            # Compared this way round so a candle stamped in year 9999 cannot overflow the clock arithmetic.
            if candle.time > now + self.clock_tolerance - period:
                raise CandleRejected(
                    f"from the future: the candle at {candle.time.isoformat()} closes at "
                    f"{(candle.time + period).isoformat() if candle.time.year < 9999 else 'a time'} "
                    f"but it is {now.isoformat(timespec='seconds')}; only closed candles are accepted"
                )
        if previous is None:
            return Arrival.NEW
        if candle.time == previous.time:
            differences = [
                f"{name} {getattr(candle, name)} vs stored {getattr(previous, name)}"
                for name in VALUES
                if getattr(candle, name) != getattr(previous, name)
            ]
            if differences:
                raise CandleRejected(
                    f"conflicts with the stored candle at {candle.time.isoformat()}: {', '.join(differences)}; "
                    "the stored one is kept"
                )
            return Arrival.DUPLICATE
        if candle.time < previous.time:
            raise CandleRejected(
                f"out of order: {candle.time.isoformat()} is older than the last candle at {previous.time.isoformat()}"
            )
        reference = previous.close
        name, price = max(((n, getattr(candle, n)) for n in PRICES), key=lambda item: abs(item[1] - reference))
        move = abs(price - reference) / reference
        if move > self.max_move:
            raise CandleRejected(
                f"{name} {price} is {move:.2%} away from the previous close {reference}; "
                f"{self.symbol} {self.timeframe} allows at most {self.max_move:.2%} per candle"
            )
        return Arrival.NEW
