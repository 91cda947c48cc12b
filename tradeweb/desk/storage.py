"""The core's ports implemented with the ORM and the channel layer, and the way back: state from rows."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from datetime import datetime
from typing import Any, Coroutine, Iterable, Sequence

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.template.loader import render_to_string

from orchestrator import candles as core_candles
from orchestrator import orders as core_orders
from orchestrator import positions as core_positions
from orchestrator.engine import OrchestratorState
from orchestrator.events import Event as CoreEvent
from orchestrator.ports import CandleResult
from tradeweb.desk import models

log = logging.getLogger(__name__)

SYSTEM_GROUP = "system"
# How long a publish may take before it is logged as failed; the events are stored either way.
PUBLISH_TIMEOUT = 10.0


def strategy_group(strategy_id: str) -> str:
    """Channel-layer group of one strategy's watchers."""
    return f"strategy.{strategy_id}"


class DjangoStrategyStore:
    """Stores a candle's result in one transaction: events, orders, fills, positions, journal, head."""

    def record(self, result: CandleResult) -> None:
        sid = result.strategy_id
        # No savepoint: inside the worker's per-strategy transaction a failure must roll back the whole candle.
        with transaction.atomic(savepoint=False):
            models.Event.objects.bulk_create(event_row(e) for e in result.events)
            models.Order.objects.bulk_create(
                models.Order(
                    strategy_id=sid, order_id=o.order_id, symbol=o.symbol, intent=o.intent,
                    position_side=o.position_side, position_id=o.position_id, quantity=o.quantity,
                    reason=o.reason[:255], created_at=o.created_at,
                )
                for o in result.orders
            )
            if result.fills:
                models.Fill.objects.bulk_create(
                    models.Fill(
                        strategy_id=sid, order_id=f.order_id, symbol=f.symbol, side="buy" if f.is_buy else "sell",
                        intent=f.intent, position_id=f.position_id, quantity=f.quantity, price=f.price, fee=f.fee,
                        trigger=f.trigger, time=f.time,
                    )
                    for f in result.fills
                )
                models.Order.objects.filter(order_id__in=[f.order_id for f in result.fills]).update(
                    status=models.Order.Status.FILLED
                )
            for position in result.positions:
                models.Position.objects.update_or_create(
                    position_id=position.position_id,
                    defaults=dict(
                        strategy_id=sid, symbol=position.symbol, side=position.side, quantity=position.quantity,
                        initial_quantity=position.initial_quantity, entry_price=position.entry_price,
                        entry_fee=position.entry_fee, stop_price=position.stop_price,
                        take_profit_price=position.take_profit_price, realized_pnl=position.realized_pnl,
                        fees=position.fees, exit_value=position.exit_value, opened_at=position.opened_at,
                        closed_at=position.closed_at,
                    ),
                )
            models.JournalEntry.objects.bulk_create(
                models.JournalEntry(strategy_id=sid, time=j.time, kind=j.kind, message=j.message, data=j.data)
                for j in result.journal
            )
            head = dict(equity=result.equity, realized_pnl=result.realized_pnl, unrealized_pnl=result.unrealized_pnl)
            if result.candle is not None:
                head.update(last_candle_time=result.candle.time, last_close=result.candle.close)
            if result.events:
                head["last_sequence"] = result.events[-1].sequence
            if result.snapshot is not None:
                head["snapshot"] = result.snapshot
            models.Strategy.objects.filter(strategy_id=sid).update(**head)


def event_row(event: CoreEvent) -> models.Event:
    """A core event as an unsaved row."""
    return models.Event(
        strategy_id=event.strategy_id, sequence=event.sequence, type=str(event.type), symbol=event.symbol,
        time=event.time, payload=event.payload,
    )


class ChannelsEventPublisher:
    """Sends events to the strategy's channel-layer group once the transaction that stored them commits."""

    def publish(self, events: Sequence[CoreEvent]) -> None:
        messages = [event_message(e.to_mapping()) for e in events]
        transaction.on_commit(lambda: send_messages(messages))


def event_message(event: dict) -> dict:
    """The channel-layer message for one event: its JSON and its rendered feed row."""
    return {
        "type": "desk.event",
        "event": event,
        "html": render_to_string("partials/event_row.html", {"event": event}),
    }


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


def send_messages(messages: Iterable[dict]) -> None:
    """Deliver messages to their strategies' groups, in order; a broken channel layer is logged, not
    raised, because the events are already stored and the page shows them on the next load."""
    messages = list(messages)
    if not messages:
        return
    layer = get_channel_layer()

    async def send_all() -> None:
        for message in messages:
            sid = message["event"]["strategy_id"]
            await layer.group_send(strategy_group(sid) if sid else SYSTEM_GROUP, message)

    try:
        publishing_loop.run(send_all())
    except Exception:
        log.exception("could not publish events to the channel layer at %s", settings.REDIS_URL)


def core_position(row: models.Position) -> core_positions.Position:
    """A stored position back as the core's Position."""
    return core_positions.Position(
        position_id=row.position_id, strategy_id=row.strategy_id, symbol=row.symbol,
        side=core_positions.Side(row.side), quantity=row.quantity, entry_price=row.entry_price,
        opened_at=row.opened_at, entry_fee=row.entry_fee, initial_quantity=row.initial_quantity,
        stop_price=row.stop_price, take_profit_price=row.take_profit_price, realized_pnl=row.realized_pnl,
        fees=row.fees, exit_value=row.exit_value, closed_at=row.closed_at,
    )


def core_order(row: models.Order) -> core_orders.Order:
    """A stored pending order back as the core's Order."""
    return core_orders.Order(
        order_id=row.order_id, strategy_id=row.strategy_id, symbol=row.symbol,
        intent=core_orders.OrderIntent(row.intent), position_side=core_positions.Side(row.position_side),
        quantity=row.quantity, created_at=row.created_at, position_id=row.position_id, reason=row.reason,
    )


def core_candle(row: models.Candle) -> core_candles.Candle:
    """A stored candle back as the core's Candle."""
    return core_candles.Candle(
        row.symbol, row.timeframe, row.time, row.open, row.high, row.low, row.close, row.volume
    )


def usable_candle(row: models.Candle) -> core_candles.Candle | None:
    """A stored row as the core's Candle, or None for a row stored before the market rules existed
    (a price rounded to 0): one bad row from the past must not keep a strategy from being rebuilt."""
    try:
        return core_candle(row)
    except core_candles.CandleRejected as unusable:
        log.warning("stored candle %s is unusable and passed over: %s", row, unusable)
        return None


def load_state(strategy: models.Strategy) -> OrchestratorState:
    """What the orchestrator needs to resume: head of the strategy, open positions, pending orders."""
    return OrchestratorState(
        last_candle_time=strategy.last_candle_time,
        last_sequence=strategy.last_sequence,
        realized_pnl=strategy.realized_pnl,
        open_positions=[
            core_position(p) for p in models.Position.objects.filter(strategy_id=strategy.strategy_id, closed_at=None)
        ],
        pending_orders=[
            core_order(o)
            for o in models.Order.objects.filter(
                strategy_id=strategy.strategy_id, status=models.Order.Status.PENDING
            ).order_by("created_at", "id")
        ],
    )


def warm_up_candles(strategy: models.Strategy, count: int, before: datetime) -> list[core_candles.Candle]:
    """The last `count` stored candles of the strategy's market, oldest first, for indicator warm-up.

    A strategy that has processed candles takes those up to its last one. A new strategy takes
    the market's history before `before` (the candle it is about to see), so it starts warm.
    """
    if count <= 0:
        return []
    rows = models.Candle.objects.filter(symbol=strategy.symbol, timeframe=strategy.timeframe)
    if strategy.last_candle_time is not None:
        rows = rows.filter(time__lte=strategy.last_candle_time)
    else:
        rows = rows.filter(time__lt=before)
    candles = (usable_candle(row) for row in reversed(list(rows.order_by("-time")[:count])))
    return [candle for candle in candles if candle is not None]
