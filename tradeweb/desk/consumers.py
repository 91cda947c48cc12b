"""The event websocket: a logged-in client subscribes to strategies and receives only their events, asks for
the stored events it missed (replay), and follows backtest runs to receive their progress.

Client input is bounded before it is read: a rate limit per connection, a frame size limit, and
strategy ids that must be slugs. Error replies never repeat unbounded input, so each stays small.
"""

from __future__ import annotations

import json
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.template.loader import render_to_string

from orchestrator.events import EventType
from tradeweb.desk import models
from tradeweb.desk.backtest_runs import backtest_group
from tradeweb.desk.config_history import MARKET_FIELDS
from tradeweb.desk.control import CONTROL_PERMISSION
from tradeweb.desk.event_feed import REPLAY_LIMIT, events_after
from tradeweb.desk.publishing import SYSTEM_GROUP, market_group, strategy_group

MAX_IDS_PER_MESSAGE = 200
MAX_ID_LENGTH = models.Strategy._meta.get_field("strategy_id").max_length
BACKTEST_ACTIONS = ("follow_backtest", "unfollow_backtest")
ACTIONS = ("subscribe", "unsubscribe", "replay", *BACKTEST_ACTIONS)
MAX_FOLLOWED_RUNS = 20
LARGEST_RUN_ID = 2**63 - 1
LARGEST_SEQUENCE = 2**63 - 1
REPLAY_EXAMPLE = '{"action": "replay", "after": {"btc-sma-cross": 117}}'
CLOSE_NOT_LOGGED_IN = 4401
CLOSE_TOO_MANY_MESSAGES = 4429


class TokenBucket:
    """A rate limit: `burst` messages at once, then `rate` a second; one bucket per connection."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.refilled_at = time.monotonic()

    def take(self) -> bool:
        """Spend one token for a message; False when none is left."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.refilled_at) * self.rate)
        self.refilled_at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class EventConsumer(AsyncJsonWebsocketConsumer):
    """Relays `desk.event` messages of the subscribed strategies (and system events to everyone), and the
    marks of their markets' candles (`desk.marks`, kept to the subscribed strategies); validates every client
    message."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_NOT_LOGGED_IN)
            return
        self.subscribed: set[str] = set()
        self.markets: dict[str, set[str]] = {}  # market group -> the subscribed strategies of that market
        self.followed: set[int] = set()
        self.can_cancel: bool | None = None  # whether the user may cancel a backtest: looked up at the first follow
        self.closing = False
        self.rate_limit = TokenBucket(rate=settings.WEBSOCKET_RATE, burst=settings.WEBSOCKET_BURST)
        await self.channel_layer.group_add(SYSTEM_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(SYSTEM_GROUP, self.channel_name)
        for strategy_id in getattr(self, "subscribed", set()):
            await self.channel_layer.group_discard(strategy_group(strategy_id), self.channel_name)
        for group in getattr(self, "markets", {}):
            await self.channel_layer.group_discard(group, self.channel_name)
        for run_id in getattr(self, "followed", set()):
            await self.channel_layer.group_discard(backtest_group(run_id), self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        # Daphne queues everything a flooding client sent before the close; the rest is dropped unread,
        # and nothing may be sent on a closing socket.
        if self.closing:
            return
        if not self.rate_limit.take():
            await self.send_error(
                f"more than {settings.WEBSOCKET_BURST} messages at once or {settings.WEBSOCKET_RATE:g} a second; "
                f"closing with {CLOSE_TOO_MANY_MESSAGES}"
            )
            self.closing = True
            await self.close(code=CLOSE_TOO_MANY_MESSAGES)
            return
        if text_data is None:
            await self.send_error("send JSON text frames, not binary")
            return
        size = len(text_data.encode())
        if size > settings.WEBSOCKET_MAX_FRAME_BYTES:
            await self.send_error(f"frame of {size} bytes is over the {settings.WEBSOCKET_MAX_FRAME_BYTES}-byte limit")
            return
        try:
            message = json.loads(text_data)
        except RecursionError:
            await self.send_error("message is nested too deeply")
            return
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
            await self.send_error(f"unknown action; use one of {', '.join(ACTIONS)}")
            return
        if action in BACKTEST_ACTIONS:
            await self.follow(action, content.get("run_id"))
            return
        if action == "replay":
            await self.replay(content.get("after"))
            return
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            await self.send_error("strategy_ids must be a list of strategy id strings")
            return
        if len(ids) > MAX_IDS_PER_MESSAGE:
            await self.send_error(f"at most {MAX_IDS_PER_MESSAGE} strategy ids per message")
            return
        if not await self.valid_ids(ids):
            return
        markets = await self.markets_of(set(ids))
        known = set(markets)
        unknown = sorted(set(ids) - known)
        if action == "subscribe":
            for strategy_id in sorted(known - self.subscribed):
                await self.channel_layer.group_add(strategy_group(strategy_id), self.channel_name)
                await self.join_market(markets[strategy_id], strategy_id)
            self.subscribed |= known
        else:
            for strategy_id in sorted(known & self.subscribed):
                await self.channel_layer.group_discard(strategy_group(strategy_id), self.channel_name)
                await self.leave_markets(strategy_id)
            self.subscribed -= known
        if unknown:
            # Safe to name: at most MAX_IDS_PER_MESSAGE slugs of MAX_ID_LENGTH characters.
            await self.send_error(f"unknown strategy ids: {', '.join(unknown)}", unknown=unknown)
        await self.send_json({"type": "subscribed", "strategy_ids": sorted(self.subscribed)})

    async def join_market(self, group: str, strategy_id: str) -> None:
        """Receive the marks of the market `group` for this strategy (one membership per market)."""
        if not self.markets.get(group):
            await self.channel_layer.group_add(group, self.channel_name)
        self.markets.setdefault(group, set()).add(strategy_id)

    async def leave_markets(self, strategy_id: str, but: str = "") -> None:
        """Stop taking marks for this strategy from every market group (except `but`), leaving a group no other
        followed strategy trades in."""
        for group, followed in list(self.markets.items()):
            if group == but or strategy_id not in followed:
                continue
            followed.discard(strategy_id)
            if not followed:
                del self.markets[group]
                await self.channel_layer.group_discard(group, self.channel_name)

    async def follow_market_of(self, strategy_id: str) -> None:
        """Move a followed strategy to the market its row names now: an admin changed its symbol or timeframe, and
        its marks come from the other market's candles from then on."""
        group = (await self.markets_of({strategy_id})).get(strategy_id)
        await self.leave_markets(strategy_id, but=group or "")
        if group is not None:
            await self.join_market(group, strategy_id)

    async def valid_ids(self, ids: list[str]) -> bool:
        """Whether every id could be a strategy's; if not, an error that counts the others."""
        invalid = sum(not models.is_strategy_id(i) for i in ids)
        if invalid:
            await self.send_error(
                f"{invalid} of {len(ids)} strategy ids are not slugs of at most {MAX_ID_LENGTH} characters "
                "(letters, digits, '-' and '_')"
            )
        return not invalid

    async def replay(self, after: Any) -> None:
        """Send the stored events of each strategy after the last sequence the client saw, in order, in one
        `replay` reply of at most REPLAY_LIMIT events; `more` names the strategies to ask again for."""
        if not isinstance(after, dict) or not after:
            await self.send_error(f"after must map strategy ids to the last sequence seen, like {REPLAY_EXAMPLE}")
            return
        if len(after) > MAX_IDS_PER_MESSAGE:
            await self.send_error(f"at most {MAX_IDS_PER_MESSAGE} strategy ids per message")
            return
        if not await self.valid_ids(list(after)):
            return
        bad = sum(type(n) is not int or not 0 <= n <= LARGEST_SEQUENCE for n in after.values())
        if bad:
            await self.send_error(f"{bad} of {len(after)} sequences are not whole numbers of 0 or more, like {REPLAY_EXAMPLE}")
            return
        known = set(await self.markets_of(set(after)))
        unknown = sorted(set(after) - known)
        if unknown:
            # Safe to name: at most MAX_IDS_PER_MESSAGE slugs of MAX_ID_LENGTH characters.
            await self.send_error(f"unknown strategy ids: {', '.join(unknown)}", unknown=unknown)
        if not known:
            return
        events, more = await self.stored_after({i: after[i] for i in known})
        await self.send_json(
            {"type": "replay", "strategy_ids": sorted(known), "events": events, "more": more, "limit": REPLAY_LIMIT}
        )

    async def desk_event(self, message: dict[str, Any]) -> None:
        """A stored event from a worker: relayed, with its feed row rendered here (only for a client that
        shows it), if it is a system event or the client follows its strategy."""
        if self.closing:
            return
        event = message["event"]
        if not event["strategy_id"] or event["strategy_id"] in self.subscribed:
            if event["type"] == EventType.CONFIG_CHANGED and MARKET_FIELDS & set(event["payload"].get("changes", ())):
                await self.follow_market_of(event["strategy_id"])
            html = render_to_string("partials/event_row.html", {"event": event})
            await self.send_json({"type": "event", "event": event, "html": html})

    async def desk_marks(self, message: dict[str, Any]) -> None:
        """A market's candle, processed: the marks of the subscribed strategies among it, if any."""
        if self.closing:
            return
        marks = {sid: mark for sid, mark in message["marks"].items() if sid in self.subscribed}
        if marks:
            await self.send_json({"type": "marks", "marks": marks, "published_at": message.get("published_at")})

    async def follow(self, action: str, run_id: Any) -> None:
        """Follow a backtest run (its current progress is sent at once, then every report) or stop following it;
        answered with the runs followed."""
        if type(run_id) is not int or not 0 < run_id <= LARGEST_RUN_ID:
            await self.send_error('run_id must be a backtest run\'s number, like {"action": "follow_backtest", "run_id": 12}')
            return
        if action == "unfollow_backtest":
            if run_id in self.followed:
                await self.channel_layer.group_discard(backtest_group(run_id), self.channel_name)
                self.followed.discard(run_id)
            await self.send_json({"type": "following", "run_ids": sorted(self.followed)})
            return
        if run_id not in self.followed and len(self.followed) >= MAX_FOLLOWED_RUNS:
            await self.send_error(f"at most {MAX_FOLLOWED_RUNS} backtest runs per connection; unfollow one first")
            return
        # Joined before the row is read: a report sent in between arrives after the state read, never lost.
        await self.channel_layer.group_add(backtest_group(run_id), self.channel_name)
        progress = await self.run_progress(run_id)
        if progress is None:
            if run_id not in self.followed:
                await self.channel_layer.group_discard(backtest_group(run_id), self.channel_name)
            # Safe to name: a bounded integer.
            await self.send_error(f"no backtest run {run_id}", run_id=run_id)
            return
        self.followed.add(run_id)
        if self.can_cancel is None:
            self.can_cancel = await database_sync_to_async(self.scope["user"].has_perm)(CONTROL_PERMISSION)
        await self.send_json({"type": "following", "run_ids": sorted(self.followed)})
        await self.send_progress(progress)

    async def backtest_progress(self, message: dict[str, Any]) -> None:
        """A followed run's progress, from its worker or a cancel: relayed with its progress partial."""
        if self.closing:
            return
        if message["progress"]["run_id"] in self.followed:
            await self.send_progress(message["progress"])

    async def send_progress(self, progress: dict[str, Any]) -> None:
        html = render_to_string("partials/backtest_progress.html", {"progress": progress, "can_cancel": self.can_cancel})
        await self.send_json({"type": "backtest", "progress": progress, "html": html})

    async def send_error(self, text: str, **extra: Any) -> None:
        """An `error` reply; callers keep `text` and `extra` bounded, never echoing what the client sent."""
        await self.send_json({"type": "error", "message": text, **extra})

    @database_sync_to_async
    def run_progress(self, run_id: int) -> dict[str, Any] | None:
        run = models.BacktestRun.objects.filter(pk=run_id).first()
        return run.progress() if run is not None else None

    @database_sync_to_async
    def stored_after(self, after: dict[str, int]) -> tuple[list[dict[str, Any]], list[str]]:
        """The replayed events with their feed rows (rendered here, off the event loop), and the ids with more."""
        replay = events_after(after)
        events = [
            {"event": event, "html": render_to_string("partials/event_row.html", {"event": event})}
            for event in replay.events
        ]
        return events, replay.more

    @database_sync_to_async
    def markets_of(self, ids: set[str]) -> dict[str, str]:
        """The market group of each of these strategies that exists."""
        rows = models.Strategy.objects.filter(strategy_id__in=ids).values_list("strategy_id", "symbol", "timeframe")
        return {sid: market_group(symbol, timeframe) for sid, symbol, timeframe in rows}
