"""The event websocket: a logged-in client subscribes to strategies and receives only their events."""

from __future__ import annotations

import json
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from tradeweb.desk import models
from tradeweb.desk.storage import SYSTEM_GROUP, strategy_group

MAX_IDS_PER_MESSAGE = 200
ACTIONS = ("subscribe", "unsubscribe")


class EventConsumer(AsyncJsonWebsocketConsumer):
    """Relays `desk.event` messages of the subscribed strategies (and system events to everyone);
    validates every client message."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.subscribed: set[str] = set()
        await self.channel_layer.group_add(SYSTEM_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(SYSTEM_GROUP, self.channel_name)
        for strategy_id in getattr(self, "subscribed", set()):
            await self.channel_layer.group_discard(strategy_group(strategy_id), self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        if text_data is None:
            await self.send_error("send JSON text frames, not binary")
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            await self.send_error("message is not valid JSON")
            return
        await self.receive_json(message)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict):
            await self.send_error('message must be an object like {"action": "subscribe", "strategy_ids": ["..."]}')
            return
        action, ids = content.get("action"), content.get("strategy_ids")
        if action not in ACTIONS:
            await self.send_error(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
            return
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            await self.send_error("strategy_ids must be a list of strategy id strings")
            return
        if len(ids) > MAX_IDS_PER_MESSAGE:
            await self.send_error(f"at most {MAX_IDS_PER_MESSAGE} strategy ids per message")
            return
        known = await self.known_ids(set(ids))
        unknown = sorted(set(ids) - known)
        if action == "subscribe":
            for strategy_id in sorted(known - self.subscribed):
                await self.channel_layer.group_add(strategy_group(strategy_id), self.channel_name)
            self.subscribed |= known
        else:
            for strategy_id in sorted(known & self.subscribed):
                await self.channel_layer.group_discard(strategy_group(strategy_id), self.channel_name)
            self.subscribed -= known
        if unknown:
            await self.send_error(f"unknown strategy ids: {', '.join(unknown)}", unknown=unknown)
        await self.send_json({"type": "subscribed", "strategy_ids": sorted(self.subscribed)})

    async def desk_event(self, message: dict[str, Any]) -> None:
        """A stored event from a worker: relay it if it is a system event or the client follows its strategy."""
        event = message["event"]
        if not event["strategy_id"] or event["strategy_id"] in self.subscribed:
            await self.send_json({"type": "event", "event": event, "html": message.get("html", "")})

    async def send_error(self, text: str, **extra: Any) -> None:
        await self.send_json({"type": "error", "message": text, **extra})

    @database_sync_to_async
    def known_ids(self, ids: set[str]) -> set[str]:
        return set(models.Strategy.objects.filter(strategy_id__in=ids).values_list("strategy_id", flat=True))
