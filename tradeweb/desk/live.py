"""Live trading in a worker process: stored candles reach every active strategy of their market, in order, once.

Placement. Candles of a market form a chain (each names the one before it). A strategy's row
says the last candle it processed; the candle it takes next is the stored one that follows
it, whichever worker stored it and whenever. A stored candle has its market advanced (at once
by `ingest_candle`; through one queued task per market by the Celery path, see
`advance_requests`): the worker takes the market's lease (`market_lease`), and, under it, moves
every active strategy of the market along the chain, a batch of candles per transaction,
everything the batch produced written together with each strategy's snapshot as its last
candle left it, the strategies' rows locked (the batch is worked out before, and taken again
under the locks if a row moved meanwhile: see `advance_batch`). A worker that
finds the lease taken leaves: the holder looks for new candles after it lets go. A strategy
whose next candle is missing waits (a gap), and says so with a DATA_GAP event once later
candles have waited CANDLE_GAP_GRACE; the missing candle, when it comes, is applied in order.
A batch also marks, candle by candle, the loss limits of its strategies' accounts (`account_limits`).

Exactly once. A strategy's row moves only with the transaction that stored what its
candles produced; a worker killed half-way rolls back, the lease dies with its database
connection, and the next worker to advance the market carries on from the rows.
"""

from __future__ import annotations

import logging
import time as clock
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction

from orchestrator.engine import StrategyOrchestrator
from orchestrator.ports import CandleResult
from tradeweb.desk import models
from tradeweb.desk.account_limits import AccountWatches, watch_accounts
from tradeweb.desk.market_data import receive_candle
from tradeweb.desk.market_lease import market_lease
from tradeweb.desk.orchestrators import (
    HEAD_COLUMNS, Head, orchestrator_cache, orchestrator_for, report_status, worker_name,
)
from tradeweb.desk.storage import LedgerBatch, collecting, usable_candle
from tradeweb.desk.strategy_events import mark_failed

log = logging.getLogger(__name__)


@dataclass
class Advance:
    """What one call to `advance_market` did."""

    taken: list[tuple[str, datetime]] = field(default_factory=list)  # (strategy id, candle time), in order
    failed: list[str] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    busy: bool = False  # another worker holds the market's lease
    more: bool = False  # stopped at ADVANCE_TASK_SECONDS with candles still to take

    def took(self, time: datetime) -> list[str]:
        """The strategies that processed the candle at `time`."""
        return sorted({sid for sid, t in self.taken if t == time})


def advance_market(symbol: str, timeframe: str, seconds: float | None = None) -> Advance:
    """Move every active strategy of the market along the stored candles it has not processed yet.

    Returns early when another worker holds the lease, or after `seconds`
    (ADVANCE_TASK_SECONDS) with `more` set: the caller then asks for another advance.
    """
    outcome = Advance()
    deadline = clock.monotonic() + (settings.ADVANCE_TASK_SECONDS if seconds is None else seconds)
    try:
        while True:
            with market_lease(symbol, timeframe) as held:
                if not held:
                    outcome.busy = True
                    return outcome
                while advance_batch(symbol, timeframe, outcome):
                    if clock.monotonic() > deadline:
                        outcome.more = has_pending(symbol, timeframe)
                        return outcome
            # The lease is free again: a candle stored while it was held, by a worker that found it taken, is ours.
            if not has_pending(symbol, timeframe):
                return outcome
    finally:
        report_status()


# Written out: asked after every advance, and the ORM's own work on it cost more than the query.
PENDING_SQL = """
SELECT EXISTS (
    SELECT 1 FROM desk_strategy s
    WHERE s.symbol = %s AND s.timeframe = %s AND s.status IN (%s, %s) AND (
        EXISTS (SELECT 1 FROM desk_candle c WHERE c.symbol = s.symbol AND c.timeframe = s.timeframe
                AND c.previous_time = s.last_candle_time)
        OR (s.last_candle_time IS NULL
            AND EXISTS (SELECT 1 FROM desk_candle c WHERE c.symbol = s.symbol AND c.timeframe = s.timeframe))
    )
)
"""


def has_pending(symbol: str, timeframe: str) -> bool:
    """Whether a stored candle follows the last candle of some active strategy of the market (one query)."""
    with connection.cursor() as cursor:
        cursor.execute(PENDING_SQL, [symbol, timeframe, *(status.value for status in models.TAKING_CANDLES)])
        return bool(cursor.fetchone()[0])


@dataclass
class TakenBatch:
    """What a market's strategies did with a batch of candles, in memory until it is written: the rows' heads it
    started from, the orchestrators it moved, and what happened to whom."""

    heads: dict[str, Head]
    used: dict[str, StrategyOrchestrator] = field(default_factory=dict)
    failures: dict[str, tuple[datetime, Exception]] = field(default_factory=dict)
    taken: list[tuple[str, datetime]] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    # A strategy winding down that is flat after a candle is done: dormant from that candle on.
    wound_down: dict[str, CandleResult] = field(default_factory=dict)
    full: bool = False


def advance_batch(symbol: str, timeframe: str, outcome: Advance, only: str | None = None) -> bool:
    """One transaction: the market's active strategies (or just `only`) take the candles that follow
    them, up to ADVANCE_BATCH_CANDLES; returns whether there may be more to take (it took some,
    and the batch was full or a strategy failed).

    The candles are taken before the rows are locked, from the rows as read, and written if the locked rows still
    say the same (no switch, config or resume came in between: those move a row's head); else they are taken again
    under the locks. So a switch waits for a batch only while it is written, not while it is worked out. A market
    whose strategies' accounts have loss limits is taken under the locks (a batch marks the accounts' limits, which
    other markets' batches mark too)."""
    limit = 1 if only else settings.ADVANCE_BATCH_CANDLES
    batch: TakenBatch | None = None
    try:
        stored = False
        if not only:
            with collecting() as ledger:
                heads = read_heads(symbol, timeframe, None, lock=False)
                if not heads:
                    return False
                accounts = {head.account for head in heads.values()}
                if not models.AccountLimit.objects.filter(account__in=accounts).exists():
                    batch = TakenBatch(heads)
                    take(symbol, timeframe, batch, limit, None)
                    with transaction.atomic():
                        # Written if nothing moved the rows meanwhile (and none of the accounts got limits).
                        if read_heads(symbol, timeframe, None, lock=True) == heads and watch_accounts(accounts) is None:
                            write(symbol, timeframe, batch, ledger, None)
                            stored = True
                    if not stored:
                        forget(batch.used)
        if not stored:
            with transaction.atomic(), collecting() as ledger:
                heads = read_heads(symbol, timeframe, only, lock=True)
                if not heads:
                    return False
                batch = TakenBatch(heads)
                watches = watch_accounts({head.account for head in heads.values()})
                take(symbol, timeframe, batch, limit, watches)
                write(symbol, timeframe, batch, ledger, watches)
    except (OperationalError, InterfaceError):
        if batch is not None:
            forget(batch.used)
        raise
    except DatabaseError:
        # What one strategy produced broke a constraint: take the candle strategy by strategy, so only
        # the one at fault is stopped.
        if batch is not None:
            forget(batch.used)
        if only or batch is None:
            raise
        log.exception("a batch of %s %s could not be stored; taking it strategy by strategy", symbol, timeframe)
        return isolate(symbol, timeframe, list(batch.heads), outcome)
    except BaseException:
        if batch is not None:
            forget(batch.used)
        raise
    for sid, (time, error) in batch.failures.items():
        mark_failed(sid, time, error)
    outcome.taken += [(sid, time) for sid, time in batch.taken if sid not in batch.failures]
    outcome.failed += list(batch.failures)
    outcome.gaps += batch.gaps
    return bool(batch.failures) or (bool(batch.taken) and batch.full)


def read_heads(symbol: str, timeframe: str, only: str | None, lock: bool) -> dict[str, Head]:
    """The heads of the market's strategies that take candles (or just `only`), in strategy_id order (the order a
    switch locks rows in), their rows locked whole if `lock`."""
    rows = models.Strategy.objects.filter(symbol=symbol, timeframe=timeframe, status__in=models.TAKING_CANDLES)
    if lock:
        rows = rows.select_for_update()
    if only:
        rows = rows.filter(strategy_id=only)
    # Read narrow: a cached orchestrator needs no more of the row.
    return {row[0]: Head(*row) for row in rows.order_by("strategy_id").values_list(*HEAD_COLUMNS)}


def take(symbol: str, timeframe: str, batch: TakenBatch, limit: int, accounts: AccountWatches | None) -> None:
    """Move the batch's strategies along the stored candles that follow them (up to `limit` after each), in the
    open ledger batch; `accounts` (locked) are marked candle by candle."""
    heads, used, failures, wound_down = batch.heads, batch.used, batch.failures, batch.wound_down
    cursors = {sid: row.last_candle_time for sid, row in heads.items()}
    stored, first, batch.full = candles_after(symbol, timeframe, set(cursors.values()), limit)
    for row in stored:
        candle = usable_candle(row)
        took: list[str] = []
        for sid, head in heads.items():
            cursor = cursors[sid]
            if sid in failures or sid in wound_down or not (
                row.previous_time == cursor if cursor else row.pk == first
            ):
                continue
            cursors[sid] = row.time
            if candle is None:
                continue  # an unusable row from before the market rules: passed over
            try:
                if sid not in used:
                    used[sid] = orchestrator_for(head, candle.time)
                    used[sid].wind_down = head.winding_down
                used[sid].process(candle)
                took.append(sid)
                if used[sid].wind_down is not None and used[sid].is_flat:
                    wound_down[sid] = used[sid].finish_wind_down()
            except Exception as error:
                failures[sid] = (row.time, error)
                orchestrator_cache().discard(sid)
                log.exception("strategy %s failed on candle %s", sid, row.time.isoformat())
        batch.taken += [(sid, row.time) for sid in took]
        if accounts is not None and took:
            accounts.mark(row.time, used, took)
    moved = {sid for sid, _ in batch.taken}
    for sid, head in heads.items():
        if sid in failures or sid in moved:
            continue
        waiting = [row for row in stored if cursors[sid] is not None and row.time > cursors[sid]]
        if waiting and datetime.now(timezone.utc) - waiting[0].received_at >= settings.CANDLE_GAP_GRACE:
            if sid not in used:
                used[sid] = orchestrator_for(head, waiting[0].time)
                used[sid].wind_down = head.winding_down
            if used[sid].report_gap(waiting[0].time, len(waiting)) is not None:
                batch.gaps.append(sid)
    # And one that was flat before its first candle of the batch (its orders cancelled meanwhile).
    wound_down |= {
        sid: used[sid].finish_wind_down() for sid in used
        if sid not in failures and sid not in wound_down and used[sid].wind_down is not None and used[sid].is_flat
    }


def write(symbol: str, timeframe: str, batch: TakenBatch, ledger: LedgerBatch, accounts: AccountWatches | None) -> None:
    """Write what the batch did (its strategies' rows locked): the accounts' marks, then the ledger batch with each
    moved strategy's snapshot, head and, if it wound down, its dormant status."""
    if accounts is not None:
        accounts.save()
    ledger.drop(set(batch.failures))
    kept = [sid for sid in batch.used if sid not in batch.failures]
    ledger.write(
        worker_name(), {sid: batch.used[sid].snapshot() for sid in kept},
        {sid: models.Strategy.Status.DORMANT.value for sid in batch.wound_down},
        {sid: batch.used[sid].head() for sid in kept}, market=(symbol, timeframe),
    )


def candles_after(
    symbol: str, timeframe: str, cursors: set[datetime | None], limit: int
) -> tuple[list[models.Candle], int | None, bool]:
    """The stored candles after each of the strategies' last candles (`limit` after each, so one
    strategy waiting at a gap holds up no other), in time order; the id of the market's first
    candle when a strategy has none yet (it starts there); and whether a query hit the limit."""
    market = models.Candle.objects.filter(symbol=symbol, timeframe=timeframe).order_by("time")
    rows: dict[int, models.Candle] = {}
    first, full = None, False
    for cursor in cursors:
        found = list((market if cursor is None else market.filter(time__gt=cursor))[:limit])
        if cursor is None and found:
            first = found[0].pk
        full |= len(found) == limit
        rows.update((row.pk, row) for row in found)
    return sorted(rows.values(), key=lambda row: row.time), first, full


def isolate(symbol: str, timeframe: str, strategy_ids: list[str], outcome: Advance) -> bool:
    """Advance each strategy alone by one candle; one whose result cannot be stored is put in error."""
    progressed = False
    for sid in strategy_ids:
        try:
            progressed |= advance_batch(symbol, timeframe, outcome, only=sid)
        except (OperationalError, InterfaceError):
            raise
        except DatabaseError as error:
            mark_failed(sid, datetime.now(timezone.utc), error)
            outcome.failed.append(sid)
            progressed = True
    return progressed


def forget(used: dict[str, StrategyOrchestrator]) -> None:
    """Drop orchestrators whose candles were rolled back: they are ahead of their rows."""
    for sid in used:
        orchestrator_cache().discard(sid)


@dataclass
class IngestOutcome:
    """What became of one candle from the feed."""

    status: str
    reason: str = ""
    processed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    more: bool = False


def ingest_candle(data: Any) -> IngestOutcome:
    """Store one closed candle from a feed, then advance its market (see the module's docstring).

    A rejected candle reaches no strategy. A duplicate still advances the market, so a feed
    resending a candle whose first delivery was lost with a worker gets it processed.
    """
    status, candle, reason = receive_candle(data)
    if candle is None:
        return IngestOutcome(status, reason)
    advance = advance_market(candle.symbol, candle.timeframe)
    return IngestOutcome(status, reason, advance.took(candle.time), advance.failed, advance.more)
