"""The feed as `run_feed` plays it, sending real candles to a test's own workers through its own Redis."""

from __future__ import annotations

import time
from functools import partial
from typing import Callable

import kombu
import pytest

from orchestrator.market_rules import feed_messages
from tests.worker_processes import WorkerStack
from tradeweb.desk import models
from tradeweb.desk.delivery import CandleDelivery
from tradeweb.desk.management.commands.run_feed import interleave
from tradeweb.desk.tasks import process_candle

RESEND_AFTER = 4.0
# Candles sent and not yet confirmed, at most: the workers always have a backlog (candles in flight),
# and a resend is not triggered by the backlog alone.
MAX_IN_FLIGHT = 40
# Every wait ends within pytest-timeout's 300 s (the workers die with the test process: setpriv --pdeathsig);
# generous, because a machine busy with other work slows the workers several times over.
FINISH_TIMEOUT = 120.0


def feed_order(candles: dict[tuple[str, str], list]) -> list[dict]:
    """Every market's linked messages, stepped through together as run_feed sends them."""
    return [m for step in interleave([list(feed_messages(c)) for c in candles.values()]) for m in step]


class Feed:
    """The feed as run_feed plays it, through the stack's Redis: each candle sent until confirmed, at most
    MAX_IN_FLIGHT unconfirmed. `during(sent)` is called between sends and while the feed waits."""

    def __init__(self, stack: WorkerStack, broker: kombu.Connection) -> None:
        self.stack = stack
        send = partial(process_candle.apply_async, connection=broker, queue=stack.queue)
        self.delivery = CandleDelivery(lambda message: send((message,)), resend_after=RESEND_AFTER)
        self.sent = 0
        self._checked = time.monotonic()

    def tick(self) -> None:
        """Forget what is confirmed and resend what is overdue, twice a second."""
        if time.monotonic() - self._checked > 0.5:
            self.delivery.check()
            self._checked = time.monotonic()

    def play(self, messages: list[dict], during: Callable[[int], object] = lambda sent: None) -> None:
        for message in messages:
            during(self.sent)
            deadline = time.monotonic() + FINISH_TIMEOUT
            while len(self.delivery.pending) >= MAX_IN_FLIGHT and self.delivery.check() >= MAX_IN_FLIGHT:
                if time.monotonic() > deadline:
                    pytest.fail(f"no candle confirmed for {FINISH_TIMEOUT}s after {self.sent} sent\n{self.stack.logs()}")
                during(self.sent)
                time.sleep(0.02)
            self.tick()
            self.delivery.send(message)
            self.sent += 1

    def wait_until(self, condition: Callable[[], object], what: str, timeout: float = FINISH_TIMEOUT) -> None:
        """Keep the feed going (resending) until `condition()` is true."""
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}\n{self.stack.logs()}"
            self.tick()
            time.sleep(0.02)

    def settle(self) -> None:
        """Wait until every candle sent is stored and processed by every strategy taking its market."""
        pending = self.delivery.wait(FINISH_TIMEOUT, interval=0.05)
        assert pending == 0, f"{pending} candles still unprocessed after {FINISH_TIMEOUT}s\n{self.stack.logs()}"

    def finish(self, candles: dict[tuple[str, str], list]) -> None:
        """Settle, and check that every strategy is active and took its market's last candle."""
        self.settle()
        for strategy in models.Strategy.objects.all():
            assert (strategy.status, strategy.last_error) == ("active", ""), f"{strategy.strategy_id}: {strategy.last_error}"
            assert strategy.last_candle_time == candles[(strategy.symbol, strategy.timeframe)][-1].time
