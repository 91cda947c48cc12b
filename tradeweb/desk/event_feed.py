"""What the event feed reads from the stored events: the filter a page asks for (strategies and kinds), the
recent events it picks with the sequence each strategy's live stream goes on from, and the events a page
missed (a dropped socket, an event lost in the channel layer), replayed in order."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from django.db.models import Q

from tradeweb.desk import models
from tradeweb.desk.event_sentences import KIND_CHOICES, KIND_OF_TYPE, types_of

RECENT_EVENTS = 50
# Events one replay request returns at most; the reply names the strategies that may have more.
REPLAY_LIMIT = 200
# Strategies one filter may name, as many as a websocket message may.
MAX_FILTER_IDS = 200
KINDS = [kind for kind, _ in KIND_CHOICES]


class NoSuchStrategy(LookupError):
    """The filter names a strategy that does not exist (or could not be a strategy id at all)."""


class NoSuchKind(LookupError):
    """The filter names a kind of event the feed does not have."""


@dataclass(frozen=True, slots=True)
class FeedPage:
    """The events a feed shows first, newest first, and each strategy's last event number when they were
    read: the page's live stream goes on from there."""

    events: list[dict]
    sequences: dict[str, int]

    @property
    def sequences_json(self) -> str:
        """The sequences as JSON, for the list's data attribute."""
        return json.dumps(self.sequences, sort_keys=True)


@dataclass(frozen=True, slots=True)
class FeedFilter:
    """Which strategies and kinds of event a feed shows; empty means all (with every strategy, the system
    events too)."""

    strategy_ids: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()

    @classmethod
    def parse(cls, strategy_ids: Iterable[str], kinds: Iterable[str]) -> FeedFilter:
        """A filter from untrusted values (a query string); blank values are ignored. Raises NoSuchStrategy
        or NoSuchKind, whose messages never repeat the values."""
        ids, kinds = tuple(sorted({i for i in strategy_ids if i})), [kind for kind in kinds if kind]
        if len(ids) > MAX_FILTER_IDS or not all(models.is_strategy_id(i) for i in ids):
            raise NoSuchStrategy("No such strategy.")
        if ids and models.Strategy.objects.filter(strategy_id__in=ids).count() != len(ids):
            raise NoSuchStrategy("No such strategy.")
        if not set(kinds) <= set(KINDS):
            raise NoSuchKind("No such kind of event.")
        chosen = tuple(kind for kind in KINDS if kind in kinds)
        return cls(ids, () if len(chosen) == len(KINDS) else chosen)

    def read(self, limit: int = RECENT_EVENTS) -> FeedPage:
        """The latest events the filter picks, and the sequences the page goes on from."""
        # Read before the events: an event stored in between is then replayed, never skipped.
        strategies = models.Strategy.objects.all()
        if self.strategy_ids:
            strategies = strategies.filter(strategy_id__in=self.strategy_ids)
        sequences = dict(strategies.values_list("strategy_id", "last_sequence"))
        rows = models.Event.objects.all()
        if self.strategy_ids:
            rows = rows.filter(strategy_id__in=self.strategy_ids)
        if self.kinds:
            types, others = types_of(self.kinds)
            wanted = Q(type__in=types)
            if others:
                wanted |= ~Q(type__in=list(KIND_OF_TYPE))
            rows = rows.filter(wanted)
        return FeedPage([row.to_mapping() for row in rows[:limit]], sequences)


@dataclass(frozen=True, slots=True)
class Replay:
    """Stored events after the sequences asked for, in order per strategy, and the strategies that may have
    more than one request returned."""

    events: list[dict]
    more: list[str] = field(default_factory=list)


def events_after(after: Mapping[str, int], limit: int = REPLAY_LIMIT) -> Replay:
    """The stored events of each strategy with a sequence above `after[strategy_id]`, strategy by strategy,
    each in order, at most `limit` in all (one query)."""
    if not after:
        return Replay([])
    wanted = Q()
    for strategy_id, sequence in after.items():
        wanted |= Q(strategy_id=strategy_id, sequence__gt=sequence)
    rows = list(models.Event.objects.filter(wanted).order_by("strategy_id", "sequence")[: limit + 1])
    if len(rows) <= limit:
        return Replay([row.to_mapping() for row in rows])
    rows, cut = rows[:limit], rows[limit].strategy_id
    # The strategy cut short, and those the rows did not reach (in the database's order, which may not
    # be Python's): asked again, one with nothing new answers with nothing.
    served = {row.strategy_id for row in rows} - {cut}
    return Replay([row.to_mapping() for row in rows], sorted(set(after) - served))
