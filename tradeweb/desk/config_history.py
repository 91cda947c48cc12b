"""A strategy's settings over time: each save that changes them is a new version, with who saved it, when,
and what changed, announced as a CONFIG_CHANGED event.

A new version applies from the strategy's next candle: the worker sees the row's config version move and
rebuilds the orchestrator, which keeps its positions, journal and risk state, and the exact state of
every indicator whose kind and period did not change (see `StrategyOrchestrator.restore`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from orchestrator.events import Event, EventType
from tradeweb.desk import models
from tradeweb.desk.storage import ChannelsEventPublisher
from tradeweb.desk.strategy_events import append_event

# A change to one of these leaves nothing of the old orchestrator's memory usable (its market or its class).
REBUILT_FIELDS = {"strategy_class", "symbol", "timeframe"}
# A change to one of these moves the strategy to another market, with a chain of candles of its own.
MARKET_FIELDS = {"symbol", "timeframe"}


@dataclass(frozen=True)
class Change:
    """One setting that differs between two versions; a config key is named `config.<key>`."""

    name: str
    before: Any
    after: Any


def changes(before: dict[str, Any] | None, after: dict[str, Any]) -> list[Change]:
    """What differs from `before` to `after`, config keys one by one; everything, for a first version."""
    before = before or {}
    # The settings in the order `Strategy.versioned_settings` gives them, the config's keys last.
    found = [Change(name, before.get(name), value) for name, value in after.items()
             if name != "config" and before.get(name) != value]
    old, new = before.get("config") or {}, after["config"]
    found += [Change(f"config.{key}", old.get(key), new.get(key)) for key in sorted(old.keys() | new.keys())
              if old.get(key) != new.get(key)]
    return found


def save_settings(strategy: models.Strategy, user: AbstractBaseUser, fields: list[str]) -> Event | None:
    """Save the edited `fields` of a validated strategy and nothing else, so that what a worker wrote to
    the row meanwhile (its last candle, snapshot, equity) stays. When a versioned setting changed, the
    config version moves on with a new ConfigVersion row and a CONFIG_CHANGED event (returned, and sent
    once stored). The row is locked while this happens: a worker's batch finishes first, or waits."""
    now = datetime.now(timezone.utc)
    event = None
    with transaction.atomic():
        stored = models.Strategy.objects.select_for_update().get(pk=strategy.pk)
        before, after = stored.versioned_settings(), strategy.versioned_settings()
        changed = changes(before, after)
        update = [*fields, "updated_at"]
        if changed:
            strategy.config_version = stored.config_version + 1
            names = {change.name for change in changed}
            if REBUILT_FIELDS & names:
                # The snapshot is of another market or class: the rebuilt orchestrator warms up instead.
                strategy.snapshot = None
                update.append("snapshot")
            if MARKET_FIELDS & names:
                update += strategy.start_at_new_market()
            event = append_event(
                stored, EventType.CONFIG_CHANGED, now, user=user.get_username(), version=strategy.config_version,
                changes={change.name: [change.before, change.after] for change in changed},
            )
            strategy.last_sequence = stored.last_sequence
            update += ["config_version", "last_sequence"]
            models.ConfigVersion.objects.create(strategy=stored, version=strategy.config_version, saved=after, user=user)
        strategy.save(update_fields=update)
        if event is not None:
            ChannelsEventPublisher().publish([event])
    return event


def history(strategy: models.Strategy) -> list[tuple[models.ConfigVersion, list[Change]]]:
    """Every version of the strategy, newest first, each with what it changed from the one before."""
    versions = list(models.ConfigVersion.objects.filter(strategy=strategy).select_related("user").order_by("-version"))
    return [
        (version, changes(versions[n + 1].saved if n + 1 < len(versions) else None, version.saved))
        for n, version in enumerate(versions)
    ]
