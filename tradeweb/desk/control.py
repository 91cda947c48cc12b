"""Switching strategies on and off: recorded (who, what, when) and announced as events.

A strategy switched off with an open position drains (or closes) it before it goes dormant. In an
exclusive slot, switching one strategy on switches the active one out in the same transaction: the
slot's row is locked first, so concurrent clicks and workers never leave two active.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils.dateparse import parse_datetime

from orchestrator.events import Event, EventType
from orchestrator.orders import OrderIntent
from tradeweb.desk import models
from tradeweb.desk.account_limits import account_watch
from tradeweb.desk.orchestrators import build_orchestrator
from tradeweb.desk.row_writes import insert_rows, one_round_trip, update_rows
from tradeweb.desk.storage import ChannelsEventPublisher, collecting, event_row
from tradeweb.desk.strategy_events import next_event

CONTROL_PERMISSION = "desk.control_strategy"


def set_active(strategy_id: str, user: AbstractBaseUser, active: bool) -> models.Strategy:
    """Activate or deactivate a strategy; raises Strategy.DoesNotExist for an unknown id. Activating one
    in an exclusive slot switches the slot's active strategy out."""
    now = datetime.now(timezone.utc)
    with transaction.atomic():
        slot = locked_slot(strategy_id)
        locked = {row.strategy_id: row for row in locked_strategies(strategy_id, slot if active and slot.exclusive else None)}
        strategy = locked.pop(strategy_id)
        switches = [switch(other, user, now, active=False, switched_for=strategy_id) for other in locked.values()]
        switches.append(switch(strategy, user, now, active=active))
        events = [event for made in switches for event in made.events]
        with one_round_trip():
            update_rows((made.strategy, made.fields) for made in switches)
            insert_rows([event_row(event) for event in events])
            insert_rows([made.action for made in switches])
        ChannelsEventPublisher().publish(events)
    return strategy


# The two statements that lock a switch's rows are written out (the second reads the market's newest candle too): on
# the way from the click to its event, Django built them in more time than PostgreSQL took to run them. `{lock}` is
# empty where there are no row locks (SQLite, which lets one writer in at a time anyway).
SLOT_SQL = """
SELECT slot.id, slot.account, slot.symbol, slot.exclusive FROM desk_slot slot
JOIN desk_strategy strategy ON strategy.account = slot.account AND strategy.symbol = slot.symbol
WHERE strategy.strategy_id = %s{lock}
"""
STRATEGIES_SQL = """
SELECT strategy.*,
    EXISTS (SELECT 1 FROM desk_position p WHERE p.strategy_id = strategy.strategy_id AND p.closed_at IS NULL) AS holding,
    EXISTS (SELECT 1 FROM desk_order o WHERE o.strategy_id = strategy.strategy_id AND o.status = %s AND o.intent = %s)
        AS waiting_entries,
    (SELECT max(c.time) FROM desk_candle c WHERE c.symbol = strategy.symbol AND c.timeframe = strategy.timeframe)
        AS newest_candle
FROM desk_strategy strategy
WHERE strategy.strategy_id = %s OR (%s AND strategy.account = %s AND strategy.symbol = %s AND strategy.status = %s)
ORDER BY strategy.strategy_id{lock}
"""


def row_lock(table: str) -> str:
    """The clause that locks the rows a statement reads of `table`, where the database has row locks."""
    return f" FOR UPDATE OF {table}" if connection.features.has_select_for_update_of else ""


def locked_slot(strategy_id: str) -> models.Slot:
    """The strategy's slot, locked (registered first if it has none); raises Strategy.DoesNotExist for an unknown id.
    Locking it first serializes the switches of a slot: each then sees the active strategy the one before left."""
    for slot in models.Slot.objects.raw(SLOT_SQL.format(lock=row_lock("slot")), [strategy_id]):
        return slot
    account, symbol = models.Strategy.objects.values_list("account", "symbol").get(strategy_id=strategy_id)
    return models.Slot.objects.select_for_update().get_or_create(account=account, symbol=symbol)[0]


def locked_strategies(strategy_id: str, exclusive: models.Slot | None) -> list[models.Strategy]:
    """The strategy's row and, given its `exclusive` slot, the slot's active ones, locked in one statement in
    strategy_id order (the order a worker's batch locks a market's rows in, so the two never wait on each other in
    a circle); each row says whether it is `holding` an open position, has entries `waiting_entries`, and the time of
    its market's `newest_candle`."""
    account, symbol = (exclusive.account, exclusive.symbol) if exclusive else ("", "")
    parameters = [
        models.Order.Status.PENDING.value, OrderIntent.OPEN.value, strategy_id,
        exclusive is not None, account, symbol, models.Strategy.Status.ACTIVE.value,
    ]
    rows = list(models.Strategy.objects.raw(STRATEGIES_SQL.format(lock=row_lock("strategy")), parameters))
    for row in rows:
        row.newest_candle = stored_time(row.newest_candle)
    return rows


def stored_time(value: datetime | str | None) -> datetime | None:
    """A time a written-out statement read: SQLite gives it as naive UTC text, PostgreSQL as a datetime."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value


@dataclass
class Switched:
    """What switching one strategy made, to be stored with the others': the strategy and its changed fields, its
    events, in order, and the record."""

    strategy: models.Strategy
    fields: list[str]
    events: list[Event]
    action: models.ControlAction


def switch(
    strategy: models.Strategy, user: AbstractBaseUser, now: datetime, active: bool, switched_for: str = ""
) -> Switched:
    """Turn one locked strategy on or off (its row annotated with `holding` an open position and `waiting_entries`,
    pending entry orders, and its market's `newest_candle`); returns what changed, not yet stored."""
    previous = strategy.status
    if active:
        strategy.status = models.Strategy.Status.ACTIVE
    else:
        # An open position is never left unwatched: the strategy drains (or closes) it, then goes dormant.
        strategy.status = models.Strategy.Status.DRAINING if strategy.holding else models.Strategy.Status.DORMANT
    resumed = []
    if active:
        strategy.last_error = ""
        if previous not in models.TAKING_CANDLES:
            # It takes the market's next candle, not the ones it missed (its indicators warm up on those).
            resumed = strategy.resume_at(strategy.newest_candle)
    payload = dict(user=user.get_username(), previous_status=previous, status=strategy.status)
    if strategy.status == models.Strategy.Status.DRAINING:
        payload["wind_down"] = strategy.wind_down
    if switched_for:
        payload["switched_for"] = switched_for
    events = [
        next_event(strategy, EventType.STRATEGY_ACTIVATED if active else EventType.STRATEGY_DEACTIVATED, now, **payload)
    ]
    cancelled = [] if active or not strategy.waiting_entries else cancel_pending_orders(strategy, user, now)
    events += [
        next_event(strategy, EventType.ORDER_CANCELLED, now, order_id=order_id, reason="strategy deactivated")
        for order_id in cancelled
    ]
    detail = f"status {previous} -> {strategy.status}"
    if switched_for:
        detail += f"; switched out for {switched_for}"
    if cancelled:
        detail += f"; cancelled {len(cancelled)} pending order{'s' if len(cancelled) > 1 else ''}"
    action = "activate" if active else "deactivate"
    fields = ["status", "last_error", "last_sequence", "updated_at", *resumed]
    record = models.ControlAction(strategy=strategy, user=user, action=action, detail=detail)
    return Switched(strategy, fields, events, record)


class NotHalted(Exception):
    """Resume was asked for a strategy (or account) its risk limits have not halted."""


class AccountHalted(Exception):
    """Resume was asked for a strategy whose account is halted: the account is resumed, not the strategy."""


def resume_after_halt(strategy_id: str, user: AbstractBaseUser) -> models.Strategy:
    """Lift a strategy's risk halt: its orchestrator, rebuilt from the row, resumes (RISK_RESUMED), and
    the row and snapshot are written as a worker writes them; a worker's cached orchestrator is then
    behind the row's event number, so the next candle rebuilds it resumed. Raises Strategy.DoesNotExist
    for an unknown id, NotHalted if it is not halted, AccountHalted while its account is."""
    now = datetime.now(timezone.utc)
    with transaction.atomic():
        strategy = models.Strategy.objects.select_for_update().get(strategy_id=strategy_id)
        if not strategy.halted_reason:
            raise NotHalted(strategy_id)
        if models.AccountLimit.objects.filter(account=strategy.account).exclude(halted_reason="").exists():
            raise AccountHalted(strategy.account)
        resume(strategy, user, now, f"risk halt lifted: {strategy.halted_reason}")
    strategy.refresh_from_db()
    return strategy


def resume_account(account: str, user: AbstractBaseUser) -> list[str]:
    """Lift an account's halt: its drawdown and the day's loss are measured from its equity now, and every
    strategy of it that the account halted resumes (one RISK_RESUMED each). Returns their ids; raises
    AccountLimit.DoesNotExist for an account without limits, NotHalted if it is not halted. The
    strategies' rows are locked before the limits row, in the order a worker's batch locks them."""
    now = datetime.now(timezone.utc)
    with transaction.atomic():
        strategies = list(models.Strategy.objects.select_for_update().filter(account=account).order_by("strategy_id"))
        limits = models.AccountLimit.objects.select_for_update().get(account=account)
        if not limits.halted_reason:
            raise NotHalted(account)
        watch = account_watch(limits)
        watch.marks.restart_from(sum((s.current_equity for s in strategies), Decimal(0)))
        halted_by_account = [s for s in strategies if s.halted_reason.startswith(f"account {account}: ")]
        for strategy in halted_by_account:
            resume(strategy, user, now, f"account {account} resumed after: {limits.halted_reason}")
        limits.marks, limits.halted_reason, limits.halted_at = watch.marks.to_json(), "", None
        limits.save(update_fields=["marks", "halted_reason", "halted_at"])
    return [s.strategy_id for s in halted_by_account]


def resume(strategy: models.Strategy, user: AbstractBaseUser, now: datetime, detail: str) -> None:
    """Resume one locked, halted strategy through its orchestrator and record who did it."""
    orchestrator = build_orchestrator(strategy, now)
    with collecting() as batch:
        if orchestrator.resume(now, user.get_username()) is None:
            raise NotHalted(strategy.strategy_id)
        batch.write("", {strategy.strategy_id: orchestrator.snapshot()})
    models.ControlAction.objects.create(strategy=strategy, user=user, action="resume", detail=detail[:255])


def cancel_pending_orders(strategy: models.Strategy, user: AbstractBaseUser, now: datetime) -> list[str]:
    """Cancel the entries waiting for the next open: a strategy switched off opens nothing, and a dormant
    one must not trade when it wakes up on an order made hours earlier. Exits waiting for the open stay:
    they are how a draining strategy gets flat. Returns the cancelled order ids."""
    pending = models.Order.objects.filter(
        strategy=strategy, status=models.Order.Status.PENDING, intent=OrderIntent.OPEN.value
    ).order_by("created_at", "id")
    order_ids = list(pending.values_list("order_id", flat=True))
    if order_ids:
        pending.update(status=models.Order.Status.CANCELLED)
        models.JournalEntry.objects.bulk_create(
            models.JournalEntry(
                strategy=strategy, time=now, kind="order",
                message=f"Cancelled pending order {order_id}: strategy deactivated by {user.get_username()}",
            )
            for order_id in order_ids
        )
    return order_ids
