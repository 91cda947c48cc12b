"""A simulated exchange: market orders, fees, slippage, stop-loss and take-profit, no look-ahead.

Rules, in the order they apply to each candle:
1. Market orders created on an earlier candle fill at this candle's open, moved against
   the trader by `slippage` (a buy pays more, a sell gets less).
2. Then each open position's protective levels are checked against this candle's range.
   A long's stop triggers when low <= stop, its target when high >= target (mirrored for a short).
   When both could trigger in one candle we cannot know which came first, so the stop wins:
   the pessimistic choice, so a backtest never flatters a strategy.
3. A candle that opens beyond a level has hit it first, at the open: a stop fills at the
   open (worse than the stop) plus slippage, a target at the open (better than the target).
   Otherwise a stop fills at the stop price plus slippage (it becomes a market order) and a
   target, a limit, fills at the target price without slippage.
Every fill pays `fee_rate` times its notional.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Iterable

from orchestrator.candles import Candle
from orchestrator.orders import CLOSE, MARKET, Fill, FillTrigger, Order
from orchestrator.positions import LONG, MONEY_STEP, PRICE_STEP, SHORT, Position


class PaperExchange:
    """Fills one strategy's orders against the candles it sees."""

    def __init__(self, fee_rate: Decimal, slippage: Decimal, pending: Iterable[Order] = ()) -> None:
        self.fee_rate = fee_rate
        self.slippage = slippage
        # What a buy pays and a sell gets per unit of price, worked out once.
        self._buy_factor = 1 + slippage
        self._sell_factor = 1 - slippage
        # The orders waiting for the next candle's open, changed in place: read it (it is asked on every
        # candle whether any waits), do not change it; `pending_orders` is a copy.
        self.waiting: list[Order] = list(pending)

    @property
    def pending_orders(self) -> list[Order]:
        """Orders waiting for the next candle's open."""
        return list(self.waiting)

    def submit(self, order: Order) -> None:
        """Queue a market order; it fills at the next candle's open."""
        self.waiting.append(order)

    def cancel(self, order_id: str) -> Order:
        """Take a pending order back before it fills; KeyError if none has this id."""
        for index, order in enumerate(self.waiting):
            if order.order_id == order_id:
                return self.waiting.pop(index)
        raise KeyError(order_id)

    def fill_market_orders(self, candle: Candle) -> list[Fill]:
        """Fill every pending order for this candle's symbol at its open."""
        fills: list[Fill] = []
        waiting: list[Order] = []
        for order in self.waiting:
            # An order fills only on a candle that opened after it was made: never on its own candle.
            if order.symbol != candle.symbol or order.created_at >= candle.time:
                waiting.append(order)
                continue
            price = self._slipped(candle.open, order.is_buy)
            fills.append(self._fill(order.order_id, order, price, candle, MARKET))
        self.waiting[:] = waiting
        return fills

    def protective_fills(self, candle: Candle, positions: Iterable[Position]) -> list[Fill]:
        """Close positions whose stop-loss or take-profit this candle reached (the stop wins a tie)."""
        fills: list[Fill] = []
        for position in positions:
            if position.symbol != candle.symbol:
                continue
            exit_price = self._protective_exit(position, candle)
            if exit_price is None:
                continue
            price, trigger = exit_price
            order = Order(
                order_id=f"{position.position_id}-{trigger.value}",
                strategy_id=position.strategy_id,
                symbol=position.symbol,
                intent=CLOSE,
                position_side=position.side,
                quantity=position.quantity,
                created_at=candle.time,
                position_id=position.position_id,
                reason=trigger.value.replace("_", " "),
            )
            fills.append(self._fill(order.order_id, order, price, candle, trigger))
        return fills

    def _protective_exit(self, position: Position, candle: Candle) -> tuple[Decimal, FillTrigger] | None:
        stop, target = position.stop_price, position.take_profit_price
        # Plain comparisons (no arithmetic) in the position's direction: a long's target is above, its stop below.
        if position.side is LONG:
            opened_past_stop = stop is not None and candle.open <= stop
            opened_past_target = target is not None and candle.open >= target
            touched_stop = stop is not None and candle.low <= stop
            touched_target = target is not None and candle.high >= target
        else:
            opened_past_stop = stop is not None and candle.open >= stop
            opened_past_target = target is not None and candle.open <= target
            touched_stop = stop is not None and candle.high >= stop
            touched_target = target is not None and candle.low <= target
        closing_buys = position.side is SHORT
        if opened_past_stop:
            return self._slipped(candle.open, is_buy=closing_buys), FillTrigger.STOP_LOSS
        if opened_past_target:
            return candle.open, FillTrigger.TAKE_PROFIT
        # Both levels inside the candle's range: the order of the touches is unknown, so the stop wins.
        if touched_stop:
            return self._slipped(stop, is_buy=closing_buys), FillTrigger.STOP_LOSS
        if touched_target:
            return target, FillTrigger.TAKE_PROFIT
        return None

    def _slipped(self, price: Decimal, is_buy: bool) -> Decimal:
        slipped = price * (self._buy_factor if is_buy else self._sell_factor)
        return slipped.quantize(PRICE_STEP)

    def _fill(self, order_id: str, order: Order, price: Decimal, candle: Candle, trigger: FillTrigger) -> Fill:
        # In field order, not by name: made for every fill.
        return Fill(order_id, order.strategy_id, order.symbol, order.intent, order.position_side, order.position_id,
                    order.quantity, price, (price * order.quantity * self.fee_rate).quantize(MONEY_STEP), candle.time,
                    trigger)
