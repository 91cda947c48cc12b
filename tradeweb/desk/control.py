"""Switching strategies on and off: recorded (who, what, when) and announced as events."""

from __future__ import annotations

from datetime import datetime, timezone

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from orchestrator.events import EventType
from tradeweb.desk import models
from tradeweb.desk.live import append_event
from tradeweb.desk.storage import ChannelsEventPublisher

CONTROL_PERMISSION = "desk.control_strategy"


def set_active(strategy_id: str, user: AbstractBaseUser, active: bool) -> models.Strategy:
    """Activate or deactivate a strategy; raises Strategy.DoesNotExist for an unknown id."""
    now = datetime.now(timezone.utc)
    action = "activate" if active else "deactivate"
    with transaction.atomic():
        strategy = models.Strategy.objects.select_for_update().get(strategy_id=strategy_id)
        previous = strategy.status
        strategy.status = models.Strategy.Status.ACTIVE if active else models.Strategy.Status.DORMANT
        if active:
            strategy.last_error = ""
        event = append_event(
            strategy,
            EventType.STRATEGY_ACTIVATED if active else EventType.STRATEGY_DEACTIVATED,
            now,
            user=user.get_username(),
            previous_status=previous,
        )
        strategy.save(update_fields=["status", "last_error", "last_sequence", "updated_at"])
        models.ControlAction.objects.create(
            strategy=strategy, user=user, action=action, detail=f"status {previous} -> {strategy.status}"
        )
        ChannelsEventPublisher().publish([event])
    return strategy
