"""Orders a strategy sends and the fills that come back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from orchestrator.positions import LONG, Side


class OrderIntent(StrEnum):
    """Whether an order opens a new position or closes an existing one."""

    OPEN = "open"
    CLOSE = "close"


class FillTrigger(StrEnum):
    """What made an order fill."""

    MARKET = "market"
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"


# The members read for every order and fill, as module names (see orchestrator.positions.LONG).
OPEN, CLOSE = OrderIntent.OPEN, OrderIntent.CLOSE
MARKET = FillTrigger.MARKET


def order_stamp(time: datetime) -> str:
    """A candle's time as it is written in the ids of the orders made on it: 20220101093000."""
    # Not strftime, nor %-formatting, which cost five and two and a half times as much: an order id is made
    # for every signal. A year before 1000 needs its zeros written.
    if time.year < 1000:
        return "%04d%02d%02d%02d%02d%02d" % (time.year, time.month, time.day, time.hour, time.minute, time.second)
    return str(((((time.year * 100 + time.month) * 100 + time.day) * 100 + time.hour) * 100 + time.minute) * 100
               + time.second)


# Not frozen, but read-only by contract: made for every trade (see orchestrator.events.Event).
@dataclass(slots=True)
class Order:
    """A market order: it fills at the open of the candle after the one that created it.

    `position_side` is the side of the position it opens or closes; the exchange side
    (buy or sell) follows from it and the intent.
    """

    order_id: str
    strategy_id: str
    symbol: str
    intent: OrderIntent
    position_side: Side
    quantity: Decimal
    created_at: datetime
    position_id: str
    reason: str = ""

    @property
    def is_buy(self) -> bool:
        """True for a buy: opening a long or closing a short."""
        return (self.intent is OPEN) == (self.position_side is LONG)


# Not frozen, but read-only by contract: made for every trade (see orchestrator.events.Event).
@dataclass(slots=True)
class Fill:
    """An executed order: price after slippage, fee charged, and what triggered it."""

    order_id: str
    strategy_id: str
    symbol: str
    intent: OrderIntent
    position_side: Side
    position_id: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    time: datetime
    trigger: FillTrigger = FillTrigger.MARKET

    @property
    def is_buy(self) -> bool:
        """True for a buy: opening a long or closing a short."""
        return (self.intent is OPEN) == (self.position_side is LONG)
