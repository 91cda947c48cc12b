"""The core's ports implemented with the ORM and the channel layer, and the way back: state from rows."""

from __future__ import annotations

import json
import logging
import threading
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any, Iterator, Sequence

from django.db import connection, transaction

from orchestrator import candles as core_candles
from orchestrator import orders as core_orders
from orchestrator import positions as core_positions
from orchestrator.engine import OrchestratorState
from orchestrator.events import Event as CoreEvent
from orchestrator.ports import CandleResult
from tradeweb.desk import models
from tradeweb.desk.publishing import event_message, marks_message, send_messages

log = logging.getLogger(__name__)

class LedgerBatch:
    """What several candles did to several strategies, written to the database together.

    A worker advancing a market collects every strategy's results for a run of candles and
    writes them in a handful of statements: one insert per kind of row, one upsert of the
    changed positions and one update of the strategies' heads. Their events are published
    in one send once the transaction commits.
    """

    def __init__(self) -> None:
        self.results: list[CandleResult] = []
        self.messages: list[dict] = []

    def write(
        self, worker: str = "", snapshots: dict[str, dict] | None = None, statuses: dict[str, str] | None = None,
        heads: dict[str, dict[str, Any]] | None = None, market: tuple[str, str] | None = None,
    ) -> None:
        """Write the collected results in the current transaction, each strategy's row moved to its last
        result, or to its orchestrator's `head()` from `heads` (a quiet candle stores no result, so a strategy
        that only moved on is known by its head), with its orchestrator's snapshot from `snapshots` (taken
        after that result) and its new status from `statuses`, if given. Once committed, the events are
        published, and the rows' new marks to the watchers of `market` (symbol, timeframe), if given."""
        results, self.results = self.results, []
        messages, self.messages = self.messages, []
        changed = self._write(results, worker, snapshots or {}, statuses or {}, heads or {}) if results or heads else {}
        marks = marks_message(*market, changed) if market is not None and changed else None
        if messages or marks:
            transaction.on_commit(lambda: send_messages(messages, marks))

    def drop(self, strategy_ids: set[str]) -> None:
        """Forget what these strategies produced: they failed, and stay where their rows say."""
        self.results = [r for r in self.results if r.strategy_id not in strategy_ids]
        self.messages = [m for m in self.messages if m["event"]["strategy_id"] not in strategy_ids]

    def _write(
        self, results: list[CandleResult], worker: str, snapshots: dict[str, dict], statuses: dict[str, str],
        heads: dict[str, dict[str, Any]],
    ) -> dict[str, dict[str, Any]]:
        # No savepoint: inside the worker's transaction a failure must roll back every candle of the batch.
        with transaction.atomic(savepoint=False):
            models.Event.objects.bulk_create([event_row(e) for r in results for e in r.events])
            models.Order.objects.bulk_create([
                models.Order(
                    strategy_id=r.strategy_id, order_id=o.order_id, symbol=o.symbol, intent=o.intent,
                    position_side=o.position_side, position_id=o.position_id, quantity=o.quantity,
                    reason=o.reason[:255], created_at=o.created_at,
                )
                for r in results for o in r.orders
            ])
            fills = [f for r in results for f in r.fills]
            if fills:
                models.Fill.objects.bulk_create(
                    models.Fill(
                        strategy_id=f.strategy_id, order_id=f.order_id, symbol=f.symbol,
                        side="buy" if f.is_buy else "sell", intent=f.intent, position_id=f.position_id,
                        quantity=f.quantity, price=f.price, fee=f.fee, trigger=f.trigger, time=f.time,
                    )
                    for f in fills
                )
                models.Order.objects.filter(order_id__in=[f.order_id for f in fills]).update(
                    status=models.Order.Status.FILLED
                )
            cancelled = [order_id for r in results for order_id in r.cancelled]
            if cancelled:
                models.Order.objects.filter(order_id__in=cancelled).update(status=models.Order.Status.CANCELLED)
            # A position changed by several candles of the batch is written once, as the last one left it.
            positions = {p.position_id: (r.strategy_id, p) for r in results for p in r.positions}
            if positions:
                models.Position.objects.bulk_create(
                    [position_row(sid, p) for sid, p in positions.values()],
                    update_conflicts=True, unique_fields=["position_id"], update_fields=POSITION_FIELDS,
                )
            models.JournalEntry.objects.bulk_create([
                models.JournalEntry(strategy_id=r.strategy_id, time=j.time, kind=j.kind, message=j.message, data=j.data)
                for r in results for j in r.journal
            ])
            changed: dict[str, dict[str, Any]] = {}
            for result in results:
                changed.setdefault(result.strategy_id, {}).update(head_fields(result))
            for sid, head in heads.items():
                changed.setdefault(sid, {}).update(head)
            for sid, head in changed.items():
                if sid in snapshots:
                    head["snapshot"] = snapshots[sid]
                if sid in statuses:
                    head["status"] = statuses[sid]
            update_heads(changed, worker)
        return changed


POSITION_FIELDS = [
    "strategy", "symbol", "side", "quantity", "initial_quantity", "entry_price", "entry_fee", "stop_price",
    "take_profit_price", "realized_pnl", "fees", "exit_value", "opened_at", "closed_at",
]


# One statement for every strategy of a batch, its values passed as one JSON array of objects (psycopg
# quotes one string fast, and an array of JSON strings slowly); a value left out or null leaves the
# column as it was. Written out because Django's bulk_update builds a CASE per column and row, which
# cost more than all the rest of a quiet candle.
HEAD_TYPES = {
    "last_candle_time": "timestamptz", "last_close": "numeric", "last_sequence": "bigint", "equity": "numeric",
    "realized_pnl": "numeric", "unrealized_pnl": "numeric", "snapshot": "jsonb", "status": "text",
}


def heads_sql(source: str) -> str:
    """UPDATE of the heads from `source`, a row set `v` with a strategy_id and a column per head field."""
    kept = ",\n    ".join(f"{column} = COALESCE(v.{column}, desk_strategy.{column})" for column in HEAD_TYPES)
    return (
        f"UPDATE desk_strategy SET\n    {kept},\n    last_worker = COALESCE(NULLIF(%s, ''), desk_strategy.last_worker)\n"
        f"FROM {source} WHERE desk_strategy.strategy_id = v.strategy_id"
    )


HEADS_SQL = heads_sql("json_to_recordset(%s::json) AS v(strategy_id text, {})".format(
    ", ".join(f"{column} {kind}" for column, kind in HEAD_TYPES.items())
))
# The same for the embedded SQLite (3.38 or later: UPDATE ... FROM, and ->>).
SQLITE_HEADS_SQL = heads_sql("(SELECT value ->> 'strategy_id' AS strategy_id, {} FROM json_each(%s)) AS v".format(
    ", ".join(f"value {'->' if column == 'snapshot' else '->>'} '{column}' AS {column}" for column in HEAD_TYPES)
))


def update_heads(changes: dict[str, dict[str, Any]], worker: str) -> None:
    """Move the rows of these strategies (by id) to what `changes` says, and name the worker that did
    (if `worker` is given)."""
    if not changes:
        return
    if connection.vendor == "postgresql":
        rows = json.dumps([{"strategy_id": sid, **fields} for sid, fields in changes.items()], default=json_scalar)
        with connection.cursor() as cursor:
            cursor.execute(HEADS_SQL, [worker, rows])
        return
    if connection.vendor == "sqlite":
        # Values as Django stores them in SQLite (naive UTC text for times, text for decimals).
        ops = connection.ops
        rows = json.dumps([
            {"strategy_id": sid, **{
                name: ops.adapt_datetimefield_value(value) if isinstance(value, datetime)
                else str(value) if isinstance(value, Decimal) else value
                for name, value in fields.items()
            }}
            for sid, fields in changes.items()
        ])
        with connection.cursor() as cursor:
            cursor.execute(SQLITE_HEADS_SQL, [worker, rows])
        return
    for sid, fields in changes.items():
        models.Strategy.objects.filter(strategy_id=sid).update(**fields, **({"last_worker": worker} if worker else {}))


def json_scalar(value: Any) -> str:
    """A Decimal as its exact text, a datetime in ISO 8601 (with its offset): as PostgreSQL reads them back."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a head value")


def head_fields(result: CandleResult) -> dict[str, Any]:
    """What a result changes on its strategy's row: equity and P&L always; the candle and the event
    number when it has them."""
    head: dict[str, Any] = dict(equity=result.equity, realized_pnl=result.realized_pnl, unrealized_pnl=result.unrealized_pnl)
    if result.candle is not None:
        head.update(last_candle_time=result.candle.time, last_close=result.candle.close)
    if result.events:
        head["last_sequence"] = result.events[-1].sequence
    return head


def position_row(strategy_id: str, position: core_positions.Position) -> models.Position:
    """A core position as an unsaved row."""
    return models.Position(
        strategy_id=strategy_id, position_id=position.position_id, symbol=position.symbol, side=position.side,
        quantity=position.quantity, initial_quantity=position.initial_quantity, entry_price=position.entry_price,
        entry_fee=position.entry_fee, stop_price=position.stop_price, take_profit_price=position.take_profit_price,
        realized_pnl=position.realized_pnl, fees=position.fees, exit_value=position.exit_value,
        opened_at=position.opened_at, closed_at=position.closed_at,
    )


class _OpenBatch(threading.local):
    batch: LedgerBatch | None = None


_open = _OpenBatch()


@contextmanager
def collecting() -> Iterator[LedgerBatch]:
    """Within this block, what orchestrators store and publish in this thread is collected in one
    batch, to be written with `LedgerBatch.write` (nothing is written if it is not)."""
    if _open.batch is not None:
        raise RuntimeError("a ledger batch is already open in this thread")
    _open.batch = LedgerBatch()
    try:
        yield _open.batch
    finally:
        _open.batch = None


class DjangoStrategyStore:
    """Stores a candle's result: into the open batch if there is one, else at once, in one transaction."""

    def record(self, result: CandleResult) -> None:
        if _open.batch is not None:
            _open.batch.results.append(result)
            return
        batch = LedgerBatch()
        batch.results.append(result)
        batch.write()


def event_row(event: CoreEvent) -> models.Event:
    """A core event as an unsaved row."""
    return models.Event(
        strategy_id=event.strategy_id, sequence=event.sequence, type=str(event.type), symbol=event.symbol,
        time=event.time, payload=event.payload,
    )


class ChannelsEventPublisher:
    """Sends events to the strategy's channel-layer group once the transaction that stored them commits
    (with the open batch's, if there is one)."""

    def publish(self, events: Sequence[CoreEvent]) -> None:
        messages = [event_message(e.to_mapping()) for e in events]
        if _open.batch is not None:
            _open.batch.messages.extend(messages)
        else:
            transaction.on_commit(lambda: send_messages(messages))


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
