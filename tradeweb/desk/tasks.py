"""Celery tasks: small, idempotent, acknowledged late; they call into the desk's live module."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.db import InterfaceError, OperationalError
from redis import RedisError

from tradeweb.desk.live import ingest_candle


@shared_task(
    name="desk.process_candle",
    acks_late=True,
    reject_on_worker_lost=True,
    # An outage of the database or Redis is retried, not lost: the candle is replayed safely
    # because every step is idempotent.
    autoretry_for=(OperationalError, InterfaceError, RedisError),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=10,
)
def process_candle(candle: dict[str, Any]) -> dict[str, Any]:
    """Store one closed candle and run it through the active strategies of its market."""
    outcome = ingest_candle(candle)
    return {"status": outcome.status, "reason": outcome.reason, "processed": outcome.processed, "failed": outcome.failed}
