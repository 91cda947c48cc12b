"""A strategy's derived P&L history stored in the database (`HistoryCheckpoint`, one row per strategy), so that a
web process that has not derived it yet (a new one, or one of several) reads it and derives only what came after,
instead of replaying every fill and reading every candle again.

What a history holds up to a candle never changes (the ledger is append-only, see `strategy_history`), so a
checkpoint never goes stale while what it was derived from besides the ledger stays: the strategy's row (created
again under the same id, it is another), its capital (every mark moves with it) and its market. Another value of
any of these, and the checkpoint is not used; the history is derived from scratch, and its checkpoint replaces the
stale one. A checkpoint that cannot be read (damaged, or packed in another format version, `history_packing`) is
not used either: a page never depends on one, it only goes faster with it.

Who writes it: a worker (`tasks.store_history_checkpoint`, on the queue of the desk's long jobs), asked by a web
process whose history holds CHECKPOINT_EVERY marks more than the checkpoint it knows of (`history_cache`). Packing
and writing a long history takes about a tenth of a second, and the desk's first derivation of it a second: in a
request, the page that happens to cross the threshold would miss its 200 ms, and in the workers that advance live
markets, their candles would wait. The worker reads the checkpoint there is, extends it (or derives the history if
there is none) and stores it if it holds CHECKPOINT_EVERY marks more; so a fresh web process derives fewer than
about CHECKPOINT_EVERY candles after reading it, and a strategy's checkpoint is written once every CHECKPOINT_EVERY
candles at most, while its page is open. A write never goes back: a checkpoint through a later candle, of the same
identity, stays.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError, transaction

from tradeweb.desk import models
from tradeweb.desk.equity_curve import FillReplay
from tradeweb.desk.history_packing import CheckpointUnreadable, pack, unpack
from tradeweb.desk.strategy_history import (
    StrategyHistory,
    collector_paused,
    history_identity,
)

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 1_000  # marks a history holds beyond its stored checkpoint before a newer one is stored
IDENTITY = ("strategy_created_at", "capital", "symbol", "timeframe")  # with the row's key, `StrategyHistory.identity`


def due(history: StrategyHistory, every: int = CHECKPOINT_EVERY) -> bool:
    """Whether the history holds `every` marks more than its stored checkpoint (as far as the caller knows)."""
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


def refresh(strategy_id: str, every: int = CHECKPOINT_EVERY) -> bool:
    """Store the strategy's history as its checkpoint if it holds `every` marks or more beyond the stored one (none:
    0): read from that one and extended, or derived. Whether it stored it."""
    strategy = models.Strategy.objects.filter(strategy_id=strategy_id).first()
    if strategy is None:
        return False
    history = StrategyHistory(history_identity(strategy), FillReplay(strategy_id, strategy.symbol, strategy.capital))
    with collector_paused():
        restore(history, strategy)
        history.extend(strategy)
        return due(history, every) and store(history, strategy)


def store(history: StrategyHistory, strategy: models.Strategy) -> bool:
    """Store the history as the strategy's checkpoint, unless the stored one is of the same identity and holds as
    much or more; whether it did. A database that refuses is logged."""
    if history.through is None:
        return False
    pk, *identity = history.identity
    try:
        with transaction.atomic():
            stored = models.HistoryCheckpoint.objects.select_for_update().filter(strategy=pk).values_list(
                *IDENTITY, "through").first()
            if stored is not None and list(stored[:-1]) == identity and stored[-1] >= history.through:
                return False
            models.HistoryCheckpoint.objects.update_or_create(
                strategy_id=pk, defaults=dict(zip(IDENTITY, identity)) | {
                    "through": history.through, "data": pack(history)})
    except DatabaseError as error:
        log.warning("history checkpoint of %s not stored: %s", strategy.strategy_id, error)
        return False
    history.checkpoint_marks = len(history.times)
    return True
