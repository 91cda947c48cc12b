"""A strategy's derived P&L history stored in the database (`HistoryCheckpoint`, one row per strategy), so that a
web process that has not derived it yet (a new one, or one of several) loads it and derives only what came after,
instead of replaying every fill and reading every candle again.

What a history holds up to a candle never changes (the ledger is append-only, see `strategy_history`), so a
checkpoint never goes stale while what it was derived from besides the ledger stays: the strategy's row (created
again under the same id, it is another), its capital (every mark moves with it) and its market. Another value of
any of these, and the checkpoint is not used; the history is derived from scratch and its checkpoint replaces the
stale one. A checkpoint that cannot be read (damaged, or packed in another format version, `history_packing`) is
not used either: a page never depends on one, it only goes faster with it.

Who writes it: the web process that has just derived or extended the history, when it holds CHECKPOINT_EVERY marks
more than the stored checkpoint (none: 0), in the same request. It has the history in hand, so storing costs the
packing and one row; a Celery task would derive the whole history again in a worker (processes share no memory),
beside the candles the workers advance, and the workers' own candle path would pay for every batch of every
strategy, viewed or not. The threshold bounds both the writes (one per CHECKPOINT_EVERY candles of a strategy
whose page is open) and what a fresh process derives after loading (fewer than CHECKPOINT_EVERY candles). A write
never goes back: a checkpoint through a later candle, of the same identity, stays.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from django.db import DatabaseError, transaction

from tradeweb.desk import models
from tradeweb.desk.history_packing import CheckpointUnreadable, pack, unpack

if TYPE_CHECKING:
    from tradeweb.desk.strategy_history import StrategyHistory

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 1_000  # marks the history holds beyond its stored checkpoint before it is stored again
IDENTITY = ("strategy_created_at", "capital", "symbol", "timeframe")  # with the row's key, `StrategyHistory.identity`


def due(history: StrategyHistory, every: int = CHECKPOINT_EVERY) -> bool:
    """Whether the history holds `every` marks more than its stored checkpoint, as far as this process knows (it
    stored it, or loaded it)."""
    return len(history.times) - (history.checkpoint_marks or 0) >= every


def restore(history: StrategyHistory, strategy: models.Strategy) -> bool:
    """Fill the empty `history` from the strategy's stored checkpoint if it has a usable one (of the same identity,
    readable); whether it did. An unusable one is logged and left for the next store to replace."""
    history.checkpoint_marks = 0
    if strategy.last_candle_time is None:
        return False
    row = models.HistoryCheckpoint.objects.filter(strategy=strategy.pk).values_list(*IDENTITY, "data").first()
    if row is None:
        return False
    if (strategy.pk, *row[:-1]) != history.identity:
        log.info("history checkpoint of %s is of another strategy row, capital or market: not used",
                 strategy.strategy_id)
        return False
    try:
        fields = unpack(row[-1], history)
    except CheckpointUnreadable as unreadable:
        log.warning("history checkpoint of %s not used: %s", strategy.strategy_id, unreadable)
        return False
    for name, value in fields.items():
        setattr(history, name, value)
    history.checkpoint_marks = len(history.times)
    return True


def store(history: StrategyHistory, strategy: models.Strategy) -> None:
    """Store the history as the strategy's checkpoint, unless the stored one is of the same identity and holds as
    much or more. A database that refuses is logged: the page goes on without it."""
    if history.through is None:
        return
    pk, *identity = history.identity
    try:
        with transaction.atomic():
            stored = models.HistoryCheckpoint.objects.select_for_update().filter(strategy=pk).values_list(
                *IDENTITY, "through").first()
            if stored is None or list(stored[:-1]) != identity or stored[-1] < history.through:
                models.HistoryCheckpoint.objects.update_or_create(
                    strategy_id=pk, defaults=dict(zip(IDENTITY, identity)) | {
                        "through": history.through, "data": pack(history)})
    except DatabaseError as error:
        log.warning("history checkpoint of %s not stored: %s", strategy.strategy_id, error)
        return
    history.checkpoint_marks = len(history.times)
