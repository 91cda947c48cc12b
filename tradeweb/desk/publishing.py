"""Messages to the browsers' websockets through the channel layer: the groups they listen to, and the loop sync
code (workers, views) publishes through."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
from datetime import datetime
from decimal import Decimal
from typing import Any, Coroutine, Iterable, Mapping

from channels.layers import get_channel_layer
from django.conf import settings

log = logging.getLogger(__name__)

SYSTEM_GROUP = "system"
# How long a publish may take before it is logged as failed; the events are stored either way.
PUBLISH_TIMEOUT = 10.0


def strategy_group(strategy_id: str) -> str:
    """Channel-layer group of one strategy's watchers."""
    return f"strategy.{strategy_id}"


def market_group(symbol: str, timeframe: str) -> str:
    """Channel-layer group of the watchers of a market's strategies: every candle's marks go there once, for
    all of them, and each consumer keeps those of the strategies it follows."""
    return "market." + re.sub(r"[^A-Za-z0-9_.-]", "-", f"{symbol}.{timeframe}")


# What a mark carries of a strategy's row after a candle: where it stands, for the figures a page shows.
MARK_FIELDS = ("last_candle_time", "last_close", "equity", "realized_pnl", "unrealized_pnl", "last_sequence", "status")


def marks_message(symbol: str, timeframe: str, heads: Mapping[str, Mapping[str, Any]]) -> dict:
    """The channel-layer message of a market's candle (or batch of candles): each strategy's row as the batch
    left it (times in ISO 8601, amounts as exact text). Not stored: the rows are, and a page loads them."""

    def text(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, Decimal):
            return str(value)
        return value

    marks = {
        sid: {name: text(head[name]) for name in MARK_FIELDS if head.get(name) is not None}
        for sid, head in heads.items()
    }
    return {"type": "desk.marks", "symbol": symbol, "timeframe": timeframe, "marks": marks}


def event_message(event: dict) -> dict:
    """The channel-layer message for one event: its JSON (the consumer renders its feed row)."""
    return {"type": "desk.event", "event": event}


class PublishingLoop:
    """An event loop of this process's own, in a thread, through which sync code publishes.

    `async_to_sync` would start a new loop on every call, and the channel layer opens its Redis
    connections per loop; this loop lives as long as the process, so they stay open. A forked
    worker process starts its own on first use.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    def run(self, coroutine: Coroutine[Any, Any, None], timeout: float = PUBLISH_TIMEOUT) -> None:
        """Run `coroutine` on the loop and wait for it; its exception is raised here."""
        asyncio.run_coroutine_threadsafe(coroutine, self._running_loop()).result(timeout)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="channel-layer-publisher", daemon=True).start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop


publishing_loop = PublishingLoop()


def send_messages(messages: Iterable[dict], marks: dict | None = None) -> None:
    """Deliver event messages to their strategies' groups and `marks` (if given) to its market's group, after
    the events: in order within a group, the groups at once. A broken
    channel layer is logged, not raised, because the events are already stored and the page shows them
    on the next load.

    After Redis restarted, the first send on each pooled connection fails and the connection is
    made again: what was not sent is sent once more, so no event is lost to a restart."""
    unsent: dict[str, list[dict]] = {}
    for message in messages:
        sid = message["event"]["strategy_id"]
        unsent.setdefault(strategy_group(sid) if sid else SYSTEM_GROUP, []).append(message)
    if marks is not None and marks["marks"]:
        # Wall time of the send, which a page may compare with its own clock to know how fresh the marks are.
        marks = {**marks, "published_at": time.time()}
        unsent.setdefault(market_group(marks["symbol"], marks["timeframe"]), []).append(marks)
    if not unsent:
        return
    layer = get_channel_layer()

    async def send_group(group: str, queue: list[dict]) -> None:
        while queue:
            await layer.group_send(group, queue[0])
            queue.pop(0)

    async def send_rest() -> None:
        outcomes = await asyncio.gather(*(send_group(g, q) for g, q in unsent.items() if q), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    for attempt in range(2):
        try:
            publishing_loop.run(send_rest())
            return
        except Exception:
            if attempt:
                log.exception("could not publish events to the channel layer at %s", settings.REDIS_URL)
