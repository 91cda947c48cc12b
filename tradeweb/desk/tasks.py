"""Celery tasks: small, idempotent, acknowledged late; they call into the desk's live module."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError
from redis import RedisError

from tradeweb.desk import backtest_runs, history_checkpoints, models
from tradeweb.desk.advance_requests import request_advance, take_request
from tradeweb.desk.live import advance_market
from tradeweb.desk.market_data import receive_candle

# An outage of the database or Redis is retried, not lost: every step is idempotent, so a candle
# or an advance is replayed safely.
RETRIED = dict(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, InterfaceError, RedisError),
    retry_backoff=True,
    retry_backoff_max=30,
    max_retries=None,
)


@shared_task(name="desk.process_candle", **RETRIED)
def process_candle(candle: dict[str, Any]) -> dict[str, str]:
    """Store one closed candle and ask for an advance of its market (a duplicate asks too: its first
    delivery may have been lost with a worker before the advance was asked for)."""
    status, stored, reason = receive_candle(candle)
    if stored is not None:
        request_advance(stored.symbol, stored.timeframe, queue_advance)
    return {"status": status, "reason": reason}


@shared_task(name="desk.advance_market", **RETRIED)
def advance(symbol: str, timeframe: str) -> int:
    """Advance one market's strategies along its stored candles (asked for by its candles, after a
    restart, or to carry on a long run)."""
    take_request(symbol, timeframe)
    outcome = advance_market(symbol, timeframe)
    if outcome.more:
        request_advance(symbol, timeframe, queue_advance)
    return len(outcome.taken)


def queue_advance(symbol: str, timeframe: str) -> None:
    advance.delay(symbol, timeframe)


def advance_every_market() -> int:
    """Ask for an advance of every market that has an active strategy: what a worker does when it starts,
    so candles stored before a crash are processed even if the feed has stopped. Returns how many."""
    markets = (
        models.Strategy.objects.filter(status__in=models.TAKING_CANDLES)
        .values_list("symbol", "timeframe").distinct()
    )
    count = 0
    for symbol, timeframe in markets:
        advance.delay(symbol, timeframe)
        count += 1
    return count


@shared_task(name="desk.run_backtest", bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def execute_backtest(self, run_id: int) -> str:
    """Run a queued backtest and store its result. Delivered again while the worker running it still reports (a long
    run outlives the broker's visibility timeout), it leaves the run to it and looks again later; after that worker
    was lost (silent), it runs the run again from the start (nothing of it was stored); finding the run ended
    (cancelled while queued, or done), it leaves it."""
    try:
        return backtest_runs.execute(run_id)
    except backtest_runs.RunningElsewhere as running:
        raise self.retry(exc=running, countdown=settings.BACKTEST_SILENT_SECONDS) from None


def queue_backtest(run_id: int, task_id: str) -> None:
    """Hand a queued run to a worker, on the backtest queue if there is one of its own."""
    routing = {"queue": settings.BACKTEST_QUEUE} if settings.BACKTEST_QUEUE else {}
    execute_backtest.apply_async((run_id,), task_id=task_id, **routing)


@shared_task(name="desk.store_history_checkpoint", acks_late=True, reject_on_worker_lost=True)
def store_history_checkpoint(strategy_id: str) -> bool:
    """Store a strategy's P&L history checkpoint again if it lags its last candle by CHECKPOINT_EVERY marks or more
    (asked for by a web process); a copy of the task finds it stored and stores nothing."""
    return history_checkpoints.refresh(strategy_id)


def queue_history_checkpoint(strategy_id: str) -> None:
    """Hand a strategy's checkpoint to a worker, on the backtest queue if there is one of its own: a history derived
    from scratch takes a second, which no live market's candles should wait for. Sent once, never retried: a page
    asks for it, and goes on without it."""
    routing = {"queue": settings.BACKTEST_QUEUE} if settings.BACKTEST_QUEUE else {}
    store_history_checkpoint.apply_async((strategy_id,), retry=False, **routing)
