"""A listener on a strategy's channel-layer group, in its own loop and thread as a Daphne consumer would be."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

from channels.layers import get_channel_layer

from tradeweb.desk.publishing import strategy_group


@dataclass
class GroupListener:
    """Joined to the group once `ready` is set; `messages` holds what arrived, `join()` waits for them."""

    ready: threading.Event = field(default_factory=threading.Event)
    messages: list[dict] = field(default_factory=list)
    thread: threading.Thread | None = None

    def join(self, timeout: float = 15) -> list[dict]:
        self.thread.join(timeout)
        return self.messages


def listen(strategy_id: str, count: int, timeout: float = 10) -> GroupListener:
    """Start listening for `count` messages to `strategy_id`'s group; wait on `.ready` before sending."""
    listener = GroupListener()

    async def receive() -> None:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(strategy_group(strategy_id), channel)
        listener.ready.set()
        try:
            for _ in range(count):
                listener.messages.append(await asyncio.wait_for(layer.receive(channel), timeout))
        finally:
            await layer.group_discard(strategy_group(strategy_id), channel)

    listener.thread = threading.Thread(target=asyncio.run, args=(receive(),))
    listener.thread.start()
    return listener
