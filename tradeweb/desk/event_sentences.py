"""The live feed's words: each event the desk emits as a sentence for people ("Bought 0.0212 BTC/USD at
47,082.41, fee 0.40"), the kind it is filtered and coloured by, and a tone for what went well or badly.

Events are read as the wire sends them (`Event.to_mapping()`): money and quantities are decimal strings.
A payload this module does not understand (an unknown type, a key missing from an old row) is still
shown, as its type and its keys, so the feed never loses a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Callable, Mapping

from orchestrator.events import EventType

# Kinds of event, in the order the feed's filter lists them: one word per kind, the label people read.
KINDS: dict[str, tuple[str, tuple[EventType, ...]]] = {
    "signal": ("Signals", (EventType.SIGNAL_GENERATED, EventType.SIGNAL_REJECTED)),
    "order": ("Orders", (EventType.ORDER_CREATED, EventType.ORDER_FILLED, EventType.ORDER_CANCELLED)),
    "position": ("Positions", (
        EventType.POSITION_OPENED, EventType.POSITION_REDUCED, EventType.POSITION_CLOSED,
        EventType.STOP_LOSS_HIT, EventType.TAKE_PROFIT_HIT,
    )),
    "risk": ("Risk", (
        EventType.RISK_HALTED, EventType.RISK_RESUMED, EventType.CAPITAL_LIMIT_HIT, EventType.CONFLICT_DETECTED,
    )),
    "data": ("Market data", (EventType.DATA_REJECTED, EventType.DATA_GAP)),
    "control": ("Control", (EventType.STRATEGY_ACTIVATED, EventType.STRATEGY_DEACTIVATED, EventType.CONFIG_CHANGED)),
    "error": ("Errors", (EventType.STRATEGY_ERROR,)),
}
# Whatever type a newer engine may emit that this module does not know yet.
OTHER_KIND = "other"
KIND_OF_TYPE = {str(type): kind for kind, (_, types) in KINDS.items() for type in types}
KIND_CHOICES = [(kind, label) for kind, (label, _) in KINDS.items()] + [(OTHER_KIND, "Other")]

# Significant digits a price keeps (at least two decimals): 47,082.41 and 1.572340 -> 1.57234 alike.
PRICE_DIGITS = 7
# Significant digits a quantity keeps below its whole units: 0.02116074 -> 0.0212, 6361.52 -> 6,362.
QUANTITY_DIGITS = 3
MOST_PLACES = 12

ACTIONS = {"enter_long": "enter long", "enter_short": "enter short", "exit": "exit"}
TRIGGERS = {"stop_loss": "stop-loss", "take_profit": "take-profit"}
WIND_DOWNS = {
    "drain": "draining: exits still managed until flat",
    "close": "closing its positions at market at the next open",
}


@dataclass(frozen=True, slots=True)
class Sentence:
    """An event as the feed shows it: `kind` (filter and colour), `text`, `when` (UTC) and a `tone`
    ("gain", "loss", "warning" or "" for none) for what went well or badly."""

    kind: str
    text: str
    when: str
    tone: str = ""


def kind_of(event_type: str) -> str:
    """The kind an event type belongs to; OTHER_KIND for a type this module does not know."""
    return KIND_OF_TYPE.get(event_type, OTHER_KIND)


def types_of(kinds: list[str] | tuple[str, ...]) -> tuple[list[str], bool]:
    """The event types of the given kinds, and whether types of no known kind (OTHER_KIND) are wanted too."""
    types = [str(type) for kind in kinds if kind in KINDS for type in KINDS[kind][1]]
    return types, OTHER_KIND in kinds


def _decimal(value: Any) -> Decimal:
    number = Decimal(str(value))
    if not number.is_finite():
        raise InvalidOperation(f"{value!r} is not a finite number")
    return number


def _places(number: Decimal, places: int) -> str:
    step = Decimal(1).scaleb(-places)
    return f"{number.quantize(step, rounding=ROUND_HALF_UP):,f}"


def _trim(text: str, keep: int) -> str:
    """Drop trailing zeros past `keep` decimals (and the point, if none are left)."""
    if "." not in text:
        return text
    whole, decimals = text.split(".")
    decimals = decimals.rstrip("0").ljust(keep, "0")
    return f"{whole}.{decimals}" if decimals else whole


def price(value: Any) -> str:
    """A price for people: thousands grouped, PRICE_DIGITS significant digits and at least two decimals."""
    number = _decimal(value)
    if not number:
        return "0.00"
    places = min(MOST_PLACES, max(2, PRICE_DIGITS - 1 - number.adjusted()))
    return _trim(_places(number, places), 2)


def quantity(value: Any) -> str:
    """A quantity for people: whole units in full, grouped, and QUANTITY_DIGITS significant digits below one."""
    number = _decimal(value)
    if not number:
        return "0"
    places = min(MOST_PLACES, max(0, QUANTITY_DIGITS - 1 - number.adjusted()))
    return _trim(_places(number, places), 0)


def money(value: Any) -> str:
    """An amount of money for people: two decimals, thousands grouped."""
    return _places(_decimal(value), 2)


def signed_money(value: Any) -> str:
    """A profit or loss: money with its sign, + for a gain."""
    number = _decimal(value)
    return f"+{money(number)}" if number > 0 else money(number)


def moment(value: Any) -> str:
    """An ISO time as the feed writes it: "2022-01-01 06:49:00"."""
    try:
        return datetime.fromisoformat(str(value)).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return str(value)[:19]


def _pnl_tone(value: Any) -> str:
    number = _decimal(value)
    return "gain" if number > 0 else "loss" if number < 0 else ""


def _by(payload: Mapping[str, Any]) -> str:
    return f" by {payload['user']}" if payload.get("user") else ""


def _signal_generated(event: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[str, str]:
    at = f" at {price(p['close'])}" if p.get("close") is not None else ""
    return f"Signal to {ACTIONS.get(p['action'], p['action'])}{at}: {p['reason']}", ""


def _signal_rejected(event: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[str, str]:
    return f"Refused to {ACTIONS.get(p['action'], p['action'])}: {p['reason']}", "warning"


def _capital_limit_hit(event: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[str, str]:
    return (
        f"Not enough capital to {ACTIONS.get(p['action'], p['action'])}: needs {money(p['needed'])}, "
        f"{money(p['available'])} available ({money(p['used'])} in use of {money(p['allocated'])})"
    ), "warning"


def _order_created(event: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[str, str]:
    purpose = "to open a position" if p["intent"] == "open" else "to close a position"
    return f"Order to {p['side']} {quantity(p['quantity'])} {event['symbol']} at the next open, {purpose}", ""


def _order_filled(event: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[str, str]:
    verb = "Bought" if p["side"] == "buy" else "Sold"
    text = f"{verb} {quantity(p['quantity'])} {event['symbol']} at {price(p['price'])}, fee {money(p['fee'])}"
    trigger = TRIGGERS.get(p.get("trigger", ""))
    return (f"{text} ({trigger})" if trigger else text), ""


def _order_cancelled(event: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[str, str]:
    return f"Order cancelled: {p['reason']}" if p.get("reason") else "Order cancelled", ""


def _position_opened(event: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[str, str]:
    text = f"Opened {p['side']} {quantity(p['quantity'])} {event['symbol']} at {price(p['price'])}"
    if p.get("stop_price") is not None:
        text += f", stop-loss {price(p['stop_price'])}"
    if p.get("take_profit_price") is not None:
        text += f", take-profit {price(p['take_profit_price'])}"
    return text, ""


def _position_changed(verb: str) -> Callable[[Mapping[str, Any], Mapping[str, Any]], tuple[str, str]]:
    def sentence(event: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[str, str]:
        text = f"{verb} {quantity(p['quantity'])} {event['symbol']} at {price(p['price'])}, P&L {signed_money(p['realized_pnl'])}"
        trigger = TRIGGERS.get(p.get("trigger", ""))
        return (f"{text} ({trigger})" if trigger else text), _pnl_tone(p["realized_pnl"])

    return sentence


def _exit_hit(name: str, tone: str) -> Callable[[Mapping[str, Any], Mapping[str, Any]], tuple[str, str]]:
    def sentence(event: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[str, str]:
        return f"{name} hit at {price(p['price'])}", tone

    return sentence


def _data_rejected(event: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[str, str]:
    market = " ".join(part for part in (event.get("symbol"), p.get("timeframe")) if part)
    return f"Rejected a candle{' of ' + market if market else ''}: {p['reason']}", "loss"


def _data_gap(event: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[str, str]:
    waiting = int(p["waiting"])
    return (
        f"Missing the {event['symbol']} candle after {moment(p['expected_after'])}: "
        f"{waiting} later candle{'' if waiting == 1 else 's'} wait{'s' if waiting == 1 else ''} for it"
    ), "warning"


def _activated(event: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[str, str]:
    was = f" (was {p['previous_status']})" if p.get("previous_status") else ""
    return f"Activated{_by(p)}{was}", ""


def _deactivated(event: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[str, str]:
    if p.get("reason") == "flat":
        return f"Flat after winding down ({p.get('wind_down', 'drain')}): now dormant", ""
    then = WIND_DOWNS.get(p.get("wind_down", ""), "draining") if p.get("status") == "draining" else "now dormant"
    if p.get("switched_for"):
        return f"Switched out for {p['switched_for']}{_by(p)}, {then}", ""
    return f"Deactivated{_by(p)}, {then}", ""


def _config_changed(event: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[str, str]:
    changes = "; ".join(
        f"{name.removeprefix('config.')} {_setting(before)} → {_setting(after)}"
        for name, (before, after) in p.get("changes", {}).items()
    )
    who = p.get("user") or "Someone"
    return f"{who} saved config version {p['version']}" + (f": {changes}" if changes else ""), ""


def _setting(value: Any) -> str:
    return "none" if value is None else str(value)


def _strategy_error(event: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[str, str]:
    return f"Stopped on an error: {p['error']}", "loss"


def _risk_halted(event: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[str, str]:
    equity = f"; equity {money(p['equity'])}" if p.get("equity") is not None else ""
    return f"Halted, no new entries: {p['reason']}{equity}", "loss"


def _risk_resumed(event: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[str, str]:
    return f"Resumed{_by(p)} after: {p['was']}", ""


def _conflict(event: Mapping[str, Any], p: Mapping[str, Any]) -> tuple[str, str]:
    return (
        f"Both sides held on {event['symbol']}: long {', '.join(p['long'])}; short {', '.join(p['short'])}"
    ), "warning"


SENTENCES: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any]], tuple[str, str]]] = {
    EventType.SIGNAL_GENERATED: _signal_generated,
    EventType.SIGNAL_REJECTED: _signal_rejected,
    EventType.ORDER_CREATED: _order_created,
    EventType.ORDER_FILLED: _order_filled,
    EventType.ORDER_CANCELLED: _order_cancelled,
    EventType.POSITION_OPENED: _position_opened,
    EventType.POSITION_REDUCED: _position_changed("Reduced the position by"),
    EventType.POSITION_CLOSED: _position_changed("Closed"),
    EventType.STOP_LOSS_HIT: _exit_hit("Stop-loss", "loss"),
    EventType.TAKE_PROFIT_HIT: _exit_hit("Take-profit", "gain"),
    EventType.DATA_REJECTED: _data_rejected,
    EventType.DATA_GAP: _data_gap,
    EventType.STRATEGY_ACTIVATED: _activated,
    EventType.STRATEGY_DEACTIVATED: _deactivated,
    EventType.STRATEGY_ERROR: _strategy_error,
    EventType.RISK_HALTED: _risk_halted,
    EventType.RISK_RESUMED: _risk_resumed,
    EventType.CONFIG_CHANGED: _config_changed,
    EventType.CONFLICT_DETECTED: _conflict,
    EventType.CAPITAL_LIMIT_HIT: _capital_limit_hit,
}


def fallback(event: Mapping[str, Any]) -> str:
    """An event this module cannot word: its type in words and its payload's keys and values."""
    words = str(event.get("type", "event")).replace("_", " ").capitalize()
    payload = event.get("payload") or {}
    details = ", ".join(f"{key}={value}" for key, value in payload.items() if value is not None) if isinstance(payload, Mapping) else ""
    return f"{words}: {details}" if details else words


def sentence(event: Mapping[str, Any]) -> Sentence:
    """The feed's sentence for one event (a wire mapping)."""
    type = str(event.get("type", ""))
    when = moment(event.get("time", ""))
    words = SENTENCES.get(type)
    payload = event.get("payload") or {}
    if words is None or not isinstance(payload, Mapping):
        return Sentence(kind_of(type), fallback(event), when)
    try:
        text, tone = words(event, payload)
    except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError):
        # A payload from an older engine (a key missing, a value of another shape) is shown as it is.
        return Sentence(kind_of(type), fallback(event), when)
    return Sentence(kind_of(type), text, when, tone)
