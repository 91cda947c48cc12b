"""An event told as a short sentence, for a strategy card's "last event": what happened, with the figures that
matter, rounded for reading (the event list keeps every field as stored)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from orchestrator.events import EventType

LONGEST = 140  # characters: a reason longer than this is cut, the card has one line for it


def figure(text: Any, places: int | None = None) -> str:
    """A stored decimal string for reading: grouped thousands, `places` decimals (money) or its own digits
    without trailing zeros (prices, quantities); anything that is not a number is shown as it is."""
    try:
        value = Decimal(str(text))
    except (InvalidOperation, ValueError):
        return str(text)
    if not value.is_finite():
        return str(text)
    if places is not None:
        return f"{value:,.{places}f}"
    return f"{value.normalize():,f}" if value == value.to_integral() else f"{value:,f}".rstrip("0")


def money(text: Any) -> str:
    """A P&L or an amount: two decimals, with its sign when it is a gain."""
    shown = figure(text, 2)
    return f"+{shown}" if shown[:1].isdigit() and shown.strip("0.,") else shown


def shortened(text: Any) -> str:
    """A free-text reason, cut to fit the card's line."""
    text = str(text)
    return text if len(text) <= LONGEST else text[: LONGEST - 1].rstrip() + "…"


def deactivation(payload: Mapping[str, Any]) -> str:
    """Why a STRATEGY_DEACTIVATED event switched a strategy off: flat after winding down, switched out, or by a user."""
    if payload.get("reason") == "flat":
        return "flat after winding down: dormant"
    by = payload.get("user") or "someone"
    draining = " (draining first)" if payload.get("status") == "draining" else ""
    if payload.get("switched_for"):
        return f"switched out for {payload['switched_for']} by {by}{draining}"
    return f"switched off by {by}{draining}"


def sentence(event_type: str, symbol: str, payload: Mapping[str, Any]) -> str:
    """One event as a sentence a trader reads at a glance."""
    p = payload
    match event_type:
        case EventType.SIGNAL_GENERATED:
            return f"Signal {p.get('action')} at close {figure(p.get('close'))}: {shortened(p.get('reason', ''))}"
        case EventType.SIGNAL_REJECTED:
            return f"Signal {p.get('action')} refused: {shortened(p.get('reason', ''))}"
        case EventType.CAPITAL_LIMIT_HIT:
            return (f"Signal {p.get('action')} blocked by capital: needs {figure(p.get('needed'), 2)}, "
                    f"{figure(p.get('available'), 2)} available")
        case EventType.ORDER_CREATED:
            return f"Order to {p.get('side')} {figure(p.get('quantity'))} {symbol} ({p.get('intent')}) at the next open"
        case EventType.ORDER_FILLED:
            return f"Filled: {p.get('side')} {figure(p.get('quantity'))} {symbol} at {figure(p.get('price'))}"
        case EventType.ORDER_CANCELLED:
            return f"Order cancelled: {shortened(p.get('reason', ''))}"
        case EventType.POSITION_OPENED:
            return f"Opened {p.get('side')} {figure(p.get('quantity'))} {symbol} at {figure(p.get('price'))}"
        case EventType.POSITION_REDUCED | EventType.POSITION_CLOSED:
            verb = "Closed" if event_type == EventType.POSITION_CLOSED else "Reduced"
            return (f"{verb} {figure(p.get('quantity'))} {symbol} at {figure(p.get('price'))}: "
                    f"P&L {money(p.get('realized_pnl'))}")
        case EventType.STOP_LOSS_HIT:
            return f"Stop-loss hit at {figure(p.get('price'))}"
        case EventType.TAKE_PROFIT_HIT:
            return f"Take-profit hit at {figure(p.get('price'))}"
        case EventType.DATA_REJECTED:
            return f"Candle rejected: {shortened(p.get('reason', ''))}"
        case EventType.DATA_GAP:
            return f"Waiting for a missing candle ({p.get('waiting')} later ones wait)"
        case EventType.STRATEGY_ACTIVATED:
            return f"Activated by {p.get('user') or 'someone'}"
        case EventType.STRATEGY_DEACTIVATED:
            return deactivation(p).capitalize()
        case EventType.STRATEGY_ERROR:
            return f"Failed: {shortened(p.get('error', ''))}"
        case EventType.RISK_HALTED:
            return f"Halted by its risk limits: {shortened(p.get('reason', ''))}"
        case EventType.RISK_RESUMED:
            return f"Resumed by {p.get('user') or 'someone'}"
        case EventType.CONFIG_CHANGED:
            changed = len(p.get("changes") or {})
            return f"Config version {p.get('version')} saved by {p.get('user') or 'someone'} ({changed} setting{'' if changed == 1 else 's'} changed)"
    return str(event_type).replace("_", " ").capitalize()
