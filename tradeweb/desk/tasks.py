"""Celery tasks: small, idempotent, acknowledged late; they call into the desk's live module."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from tradeweb.desk.live import ingest_candle


@shared_task(name="desk.process_candle", acks_late=True, reject_on_worker_lost=True)
def process_candle(candle: dict[str, Any]) -> dict[str, Any]:
    """Store one closed candle and run it through the active strategies of its market."""
    outcome = ingest_candle(candle)
    return {"status": outcome.status, "reason": outcome.reason, "processed": outcome.processed, "failed": outcome.failed}
