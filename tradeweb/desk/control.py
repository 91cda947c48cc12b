"""Switching strategies on and off: recorded (who, what, when) and announced as events."""

from __future__ import annotations

from datetime import datetime, timezone

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from orchestrator.events import EventType
from tradeweb.desk import models
from tradeweb.desk.strategy_events import append_event
from tradeweb.desk.storage import ChannelsEventPublisher

CONTROL_PERMISSION = "desk.control_strategy"


def set_active(strategy_id: str, user: AbstractBaseUser, active: bool) -> models.Strategy:
    """Activate or deactivate a strategy; raises Strategy.DoesNotExist for an unknown id."""
    now = datetime.now(timezone.utc)
    action = "activate" if active else "deactivate"
    with transaction.atomic():
        strategy = models.Strategy.objects.select_for_update().get(strategy_id=strategy_id)
        previous = strategy.status
        holding = models.Position.objects.filter(strategy=strategy, closed_at__isnull=True).exists()
        if active:
            strategy.status = models.Strategy.Status.ACTIVE
        else:
            # An open position is never left unwatched: the strategy drains (or closes) it, then goes dormant.
            strategy.status = models.Strategy.Status.DRAINING if holding else models.Strategy.Status.DORMANT
        resumed = []
        if active:
            strategy.last_error = ""
            if previous not in models.TAKING_CANDLES:
                # It takes the market's next candle, not the ones it missed (its indicators warm up on those).
                resumed = strategy.resume_at_market()
        events = [
            append_event(
                strategy,
                EventType.STRATEGY_ACTIVATED if active else EventType.STRATEGY_DEACTIVATED,
                now,
                user=user.get_username(),
                previous_status=previous,
                status=strategy.status,
                **({"wind_down": strategy.wind_down} if strategy.status == models.Strategy.Status.DRAINING else {}),
            )
        ]
        cancelled = [] if active else cancel_pending_orders(strategy, user, now)
        events += [
            append_event(strategy, EventType.ORDER_CANCELLED, now, order_id=order_id, reason="strategy deactivated")
            for order_id in cancelled
        ]
        strategy.save(update_fields=["status", "last_error", "last_sequence", "updated_at", *resumed])
        detail = f"status {previous} -> {strategy.status}"
        if cancelled:
            detail += f"; cancelled {len(cancelled)} pending order{'s' if len(cancelled) > 1 else ''}"
        models.ControlAction.objects.create(strategy=strategy, user=user, action=action, detail=detail)
        ChannelsEventPublisher().publish(events)
    return strategy


def cancel_pending_orders(strategy: models.Strategy, user: AbstractBaseUser, now: datetime) -> list[str]:
    """Cancel the entries waiting for the next open: a strategy switched off opens nothing, and a dormant
    one must not trade when it wakes up on an order made hours earlier. Exits waiting for the open stay:
    they are how a draining strategy gets flat. Returns the cancelled order ids."""
    pending = models.Order.objects.filter(
        strategy=strategy, status=models.Order.Status.PENDING, intent="open"
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
