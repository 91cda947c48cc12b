"""The derived histories a web process keeps (`strategy_history`): those of the P&L pages it served, the
HISTORIES_KEPT most recently viewed, each extended as its strategy moves on. One it does not keep starts from the
strategy's checkpoint in the database, if it has a usable one, and is extended from there (`history_checkpoints`);
once a kept history holds CHECKPOINT_EVERY marks more than the checkpoint the process knows of, the process asks a
worker to store a newer one, and never stores it itself: that costs a tenth of a second, which no page waits for."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable

from kombu.exceptions import OperationalError as BrokerUnavailable

from tradeweb.desk import history_checkpoints, models, tasks
from tradeweb.desk.equity_curve import FillReplay
from tradeweb.desk.strategy_history import (
    StrategyHistory,
    collector_paused,
    history_identity,
)

log = logging.getLogger(__name__)

HISTORIES_KEPT = 8


class StrategyHistories:
    """The histories of the strategies whose P&L pages were opened in this process, least recently used first;
    `ask` hands a strategy's checkpoint to a worker (`tasks.queue_history_checkpoint`)."""

    def __init__(self, size: int = HISTORIES_KEPT, checkpoint_every: int = history_checkpoints.CHECKPOINT_EVERY,
                 ask: Callable[[str], object] = tasks.queue_history_checkpoint) -> None:
        self.size = size
        self.checkpoint_every = checkpoint_every
        self.ask = ask
        self._kept: OrderedDict[str, StrategyHistory] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, strategy: models.Strategy) -> StrategyHistory:
        """The strategy's history up to its last candle (as its row says): kept, else read from its checkpoint,
        extended (or derived) as needed."""
        identity = history_identity(strategy)
        with self._lock:
            history = self._kept.pop(strategy.strategy_id, None)
            if history is None or history.identity != identity:
                history = StrategyHistory(identity, FillReplay(strategy.strategy_id, strategy.symbol, strategy.capital))
            self._kept[strategy.strategy_id] = history
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        with history.lock, collector_paused(history.through is None):
            try:
                if history.checkpoint_marks is None:
                    history_checkpoints.restore(history, strategy)
                history.extend(strategy)
            except BaseException:
                # Half extended, it would be wrong from here on: the next request derives it again.
                self._drop(strategy.strategy_id, history)
                raise
            if history_checkpoints.due(history, self.checkpoint_every):
                self._ask_for_checkpoint(history, strategy)
        return history

    def _ask_for_checkpoint(self, history: StrategyHistory, strategy: models.Strategy) -> None:
        # Asked once: this process counts the checkpoint as stored, and asks again CHECKPOINT_EVERY marks later.
        history.checkpoint_marks = len(history.times)
        try:
            self.ask(strategy.strategy_id)
        except BrokerUnavailable as error:
            log.warning("history checkpoint of %s not asked for: %s", strategy.strategy_id, error)

    def _drop(self, strategy_id: str, history: StrategyHistory) -> None:
        with self._lock:
            if self._kept.get(strategy_id) is history:
                del self._kept[strategy_id]

    def forget(self) -> None:
        """Drop every history (the next request reads it from its checkpoint, or derives it again)."""
        with self._lock:
            self._kept.clear()


histories = StrategyHistories()
