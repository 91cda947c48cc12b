"""Why a trade was closed, read from what the engine records: the closing fill's trigger (a stop-loss or a
take-profit fills on its own) or, for a market close, the reason on its close order. The engine writes
WIND_DOWN_CLOSE_REASON on the orders that close a strategy switched out or off with the close policy, and a
signal's own reason on an exit signal's. A halt closes nothing today (it stops entries, exits are still
managed); a close order whose reason starts with HALT_CLOSE_PREFIX would count as one.

Live trade tables and exports classify in SQL (`tradeweb.desk.trade_list`); backtests and the P&L page's kept
history (`tradeweb.desk.strategy_history`, from the fills it replays) in Python with `exit_reason`; all from
these names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from orchestrator.engine import WIND_DOWN_CLOSE_REASON
from orchestrator.orders import Fill, FillTrigger, Order, OrderIntent

SIGNAL, STOP_LOSS, TAKE_PROFIT, SWITCH, HALT = "signal", "stop-loss", "take-profit", "switch", "halt"
EXIT_REASONS = (SIGNAL, STOP_LOSS, TAKE_PROFIT, SWITCH, HALT)
HALT_CLOSE_PREFIX = "halted"
TRIGGER_REASONS = {FillTrigger.STOP_LOSS: STOP_LOSS, FillTrigger.TAKE_PROFIT: TAKE_PROFIT}


def exit_reason(trigger: FillTrigger, close_order_reason: str | None) -> str:
    """The exit reason of a trade whose last closing fill had `trigger` and came from an order with that reason."""
    if trigger in TRIGGER_REASONS:
        return TRIGGER_REASONS[trigger]
    if close_order_reason == WIND_DOWN_CLOSE_REASON:
        return SWITCH
    if close_order_reason is not None and close_order_reason.startswith(HALT_CLOSE_PREFIX):
        return HALT
    return SIGNAL


def exit_reasons(fills: Iterable[Fill], orders: Iterable[Order]) -> dict[str, str]:
    """Each closed position's exit reason by position id, from a strategy's fills and orders in time order
    (the last closing fill of a position decides, as in the SQL twin)."""
    reasons: Mapping[str, str] = {order.order_id: order.reason for order in orders}
    closing = {fill.position_id: fill for fill in fills if fill.intent is OrderIntent.CLOSE}
    return {pid: exit_reason(fill.trigger, reasons.get(fill.order_id)) for pid, fill in closing.items()}


def reason_counts(reasons: Iterable[str]) -> dict[str, int]:
    """How many trades closed for each exit reason, every reason listed."""
    reasons = list(reasons)
    return {reason: reasons.count(reason) for reason in EXIT_REASONS}
