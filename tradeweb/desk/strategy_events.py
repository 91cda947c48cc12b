"""Events a strategy gets outside its candles: control actions and failures, and the active ids of a market."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Max

from orchestrator.events import Event as CoreEvent
from orchestrator.events import EventType
from tradeweb.desk import models
from tradeweb.desk.storage import ChannelsEventPublisher, event_row


def active_strategy_ids(symbol: str, timeframe: str) -> list[str]:
    """Ids of the strategies taking a market's candles (active or draining): the only ones they go to."""
    return list(
        models.Strategy.objects.filter(symbol=symbol, timeframe=timeframe, status__in=models.TAKING_CANDLES)
        .order_by("strategy_id")
        .values_list("strategy_id", flat=True)
    )


def append_event(
    strategy: models.Strategy, type: EventType, time: datetime, after_stored: bool = False, **payload: Any
) -> CoreEvent:
    """Store the strategy's next event outside candle processing (control, errors); the row must be locked,
    and its event number is then the last one stored (a batch writes both together).

    `after_stored` numbers it after the highest stored event as well: a strategy put in error because its
    events got ahead of its row must still get its STRATEGY_ERROR event stored."""
    if after_stored:
        highest = models.Event.objects.filter(strategy_id=strategy.strategy_id).aggregate(Max("sequence"))["sequence__max"]
        strategy.last_sequence = max(strategy.last_sequence, highest or 0)
    event = next_event(strategy, type, time, **payload)
    event_row(event).save()
    return event


def next_event(strategy: models.Strategy, type: EventType, time: datetime, **payload: Any) -> CoreEvent:
    """The strategy's next event, numbered after its last one (the row must be locked), not stored: a caller making
    several stores them together."""
    strategy.last_sequence += 1
    return CoreEvent(type, strategy.strategy_id, strategy.symbol, time, strategy.last_sequence, payload)


def mark_failed(strategy_id: str, time: datetime, error: Exception) -> None:
    """Put a strategy in error with a STRATEGY_ERROR event, so the desk sees it and it takes no more candles."""
    message = f"{type(error).__name__}: {error}"
    with transaction.atomic():
        strategy = models.Strategy.objects.select_for_update().get(strategy_id=strategy_id)
        strategy.status = models.Strategy.Status.ERROR
        strategy.last_error = message
        event = append_event(strategy, EventType.STRATEGY_ERROR, time, after_stored=True, error=message)
        strategy.save(update_fields=["status", "last_error", "last_sequence", "updated_at"])
        ChannelsEventPublisher().publish([event])
