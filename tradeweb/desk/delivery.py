"""The feed's side of exactly once: every candle sent is sent again until it is stored and processed.

A candle can be lost on its way: in a Redis that restarted without persistence, with a
worker's main process killed while it held the message, or with a broker that refused it.
The feed keeps what it sent until the database shows it stored and taken by every active
strategy of its market; what stays unconfirmed for `resend_after` seconds is sent again.
Sending twice is safe: the second copy is a duplicate, which changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from datetime import datetime
from typing import Callable

from django.db import DatabaseError, close_old_connections

from orchestrator.candles import to_utc
from tradeweb.desk import models

log = logging.getLogger(__name__)

Key = tuple[str, str, datetime]


class CandleDelivery:
    """Candle messages in flight from a feed to the workers, sent until confirmed."""

    def __init__(
        self, send: Callable[[dict], None], resend_after: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._send = send
        self.resend_after = resend_after
        self._clock = clock
        # key -> [message, when last sent (None: not sent yet)]
        self.pending: OrderedDict[Key, list] = OrderedDict()
        self.resent = 0

    def send(self, message: dict) -> None:
        """Send a message and keep it until it is confirmed."""
        key = (message["symbol"], message["timeframe"], to_utc(message["time"]))
        self.pending[key] = [message, None]
        self._deliver(key)

    def _deliver(self, key: Key) -> None:
        entry = self.pending[key]
        try:
            self._send(entry[0])
        except Exception as error:  # the broker is down: the candle stays pending and goes out again later
            log.warning("could not send the candle %s %s %s: %s; it will be sent again", *key[:2], key[2].isoformat(), error)
            entry[1] = None
            return
        entry[1] = self._clock()

    def check(self) -> int:
        """Forget what is confirmed, send again what is overdue; returns how many are still pending.
        A database that cannot be asked confirms nothing (and is asked again next time)."""
        if not self.pending:
            return 0
        try:
            for market in {key[:2] for key in self.pending}:
                for key in self._confirmed(*market):
                    self.pending.pop(key, None)
        except DatabaseError as error:
            log.warning("could not check which candles were processed: %s", error)
            close_old_connections()
        now = self._clock()
        overdue = [k for k, (_, sent) in self.pending.items() if sent is None or now - sent >= self.resend_after]
        if overdue:
            log.warning("sending %d candle%s again: not yet stored and processed", len(overdue), "" if len(overdue) == 1 else "s")
            for key in overdue:
                self._deliver(key)
            self.resent += len(overdue)
        return len(self.pending)

    def _confirmed(self, symbol: str, timeframe: str) -> list[Key]:
        times = [key[2] for key in self.pending if key[:2] == (symbol, timeframe)]
        stored = set(
            models.Candle.objects.filter(symbol=symbol, timeframe=timeframe, time__in=times).values_list("time", flat=True)
        )
        cursors = list(
            models.Strategy.objects.filter(symbol=symbol, timeframe=timeframe, status__in=models.TAKING_CANDLES)
            .values_list("last_candle_time", flat=True)
        )
        return [
            (symbol, timeframe, t) for t in times
            if t in stored and all(cursor is not None and cursor >= t for cursor in cursors)
        ]

    def wait(self, timeout: float, interval: float = 0.5) -> int:
        """Check until nothing is pending or `timeout` seconds passed; returns how many are still pending."""
        deadline = self._clock() + timeout
        while self.check() and self._clock() < deadline:
            time.sleep(interval)
        return len(self.pending)
