"""What a market's next candle must satisfy before it is stored and reaches a strategy.

A valid candle (see `orchestrator.candles`) can still be wrong for its market: stamped
in the future, a second version of a stored candle, or a price that jumps absurdly
against the previous close. `MarketRules.check` says which.

Candles form a chain: each names the candle before it (`previous`), so a strategy knows
which candle it expects next and a missing one is a gap, never skipped. A feed that
does not name it implies the candle one period earlier (an unbroken market); a feed for
a market that closes (weekends, halts) names it across the break.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any, Iterable, Iterator, Mapping

from orchestrator.candles import TIMEFRAMES, Candle, CandleRejected, to_utc

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
        """Classify `candle` against `previous`, the stored candle at its time or else the latest stored
        one before it; raise CandleRejected if it breaks a rule. A candle later than what is stored
        and one that fills a gap (it came late, after a worker died) are judged alike.

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
            raise ValueError("the rules compare a candle with a stored candle at or before its time")
        reference = previous.close
        name, price = max(((n, getattr(candle, n)) for n in PRICES), key=lambda item: abs(item[1] - reference))
        move = abs(price - reference) / reference
        if move > self.max_move:
            raise CandleRejected(
                f"{name} {price} is {move:.2%} away from the previous close {reference}; "
                f"{self.symbol} {self.timeframe} allows at most {self.max_move:.2%} per candle"
            )
        return Arrival.NEW


def previous_time(data: Mapping[str, Any], candle: Candle) -> datetime:
    """The time of the candle before `candle` in its market, as the feed named it (`previous`), or one
    period earlier when it did not; raises CandleRejected for a link that cannot be right."""
    named = data.get("previous")
    if named is None:
        return candle.time - TIMEFRAMES[candle.timeframe]
    try:
        previous = to_utc(named)
    except CandleRejected as bad:
        raise CandleRejected(f"previous: {bad}") from None
    if previous >= candle.time:
        raise CandleRejected(
            f"previous {previous.isoformat()} is not before the candle at {candle.time.isoformat()}"
        )
    return previous


def feed_messages(candles: Iterable[Candle], previous: datetime | None = None) -> Iterator[dict[str, str]]:
    """Candles as a feed sends them: each message names the candle before it (the first names
    `previous`, if given), so a market's breaks are not mistaken for missing candles."""
    for candle in candles:
        message = candle.to_mapping()
        if previous is not None:
            message["previous"] = previous.isoformat()
        previous = candle.time
        yield message
