"""Backtests started from the desk: a `BacktestRun` row queued with a Celery task, run by a worker that reports how
far it got and looks for a cancel as it goes, and stored into the same row when it ends.

A run moves queued -> running -> done, failed or cancelled; only these functions move it, each with a conditional
update or under the row's lock, so a cancel and a worker never both win. Every move is published to the run's
channel-layer group (`backtest_group`) for the pages that follow it; the row holds the same, for a page opened later.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timezone
from typing import Callable

from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from kombu.exceptions import OperationalError as BrokerUnavailable

from orchestrator.backtest import BacktestResult, InvalidBacktest, run_backtest
from orchestrator.candles import CandleRejected
from tradeweb.desk import models
from tradeweb.desk.backtest_requests import BacktestRequest, build_spec, candle_streams
from tradeweb.desk.backtest_results import store_run
from tradeweb.desk.publishing import publishing_loop

log = logging.getLogger(__name__)

Status = models.BacktestRun.Status
# The worker looks at the clock every this many candles; it reports (and looks for a cancel) at the first look
# and then once BACKTEST_PROGRESS_SECONDS have passed since the last report.
CLOCK_EVERY_CANDLES = 100


class BacktestCancelled(Exception):
    """A user asked to cancel the run: raised from its progress callback, it stops the candle loop."""


class AttemptSuperseded(Exception):
    """Another delivery of the run's task took it over (this one went silent too long): this attempt stops, storing
    nothing."""


class RunningElsewhere(Exception):
    """A delivery of the run's task found it running, its attempt heard of within BACKTEST_SILENT_SECONDS: the task is
    delivered again (a broker redelivers a task that runs longer than its visibility timeout), and that attempt goes on."""


class RunEnded(Exception):
    """The run is done, failed or cancelled already: there is nothing to cancel."""


def backtest_group(run_id: int) -> str:
    """Channel-layer group of the pages following one backtest run."""
    return f"backtest-{run_id}"


def publish_progress(run: models.BacktestRun) -> None:
    """Send the run's progress to its followers. A broken channel layer is logged, not raised: the row holds the
    same progress, which a page shows when it is opened or reconnects."""
    message = {"type": "backtest.progress", "progress": run.progress()}
    try:
        publishing_loop.run(get_channel_layer().group_send(backtest_group(run.pk), message))
    except Exception:
        log.exception("could not publish the progress of backtest %s", run.pk)


def now() -> datetime:
    return datetime.now(timezone.utc)


def start(request: BacktestRequest, user: AbstractBaseUser, send: Callable[[int, str], None]) -> models.BacktestRun:
    """Store the run as queued and, once that is committed, hand it to a worker through `send(run id, task id)`.
    The caller has checked the request (`build_spec`)."""
    with transaction.atomic():
        run = models.BacktestRun.objects.create(created_by=user, request=request.to_json(), task_id=uuid.uuid4().hex)
        transaction.on_commit(lambda: hand_over(run, send))
    return run


def hand_over(run: models.BacktestRun, send: Callable[[int, str], None]) -> None:
    """Queue the run's task; a broker that cannot take it fails the run, saying so, rather than leave it queued."""
    try:
        send(run.pk, run.task_id)
    except BrokerUnavailable as error:
        log.exception("could not queue backtest %s", run.pk)
        end(run.pk, Status.FAILED, error=f"could not be queued: the task broker is unavailable ({error})")


def cancel(run_id: int, user: AbstractBaseUser) -> models.BacktestRun:
    """Cancel a run: a queued one at once, a running one at its worker's next report (it stores nothing). Raises
    BacktestRun.DoesNotExist, or RunEnded for a run that has ended."""
    with transaction.atomic():
        run = models.BacktestRun.objects.select_for_update().get(pk=run_id)
        if run.ended:
            raise RunEnded(run)
        run.cancel_requested_at = run.cancel_requested_at or now()
        run.cancelled_by = user
        if run.status == Status.QUEUED:
            run.status, run.finished_at = Status.CANCELLED, now()
        run.save(update_fields=["cancel_requested_at", "cancelled_by", "status", "finished_at"])
        transaction.on_commit(lambda: publish_progress(run))
    return run


def execute(run_id: int) -> str:
    """Run a queued backtest in this worker to its end and return how it ended. A run no longer waiting for a
    worker (cancelled while queued, or ended by an earlier delivery of its task) is left as it is; one running in
    another attempt that reports raises RunningElsewhere, one whose attempt went silent is taken over."""
    run = claim(run_id)
    if run is None:
        return models.BacktestRun.objects.filter(pk=run_id).values_list("status", flat=True).first() or "missing"
    publish_progress(run)
    try:
        spec = build_spec(BacktestRequest.from_json(run.request))
        streams = candle_streams(spec)
        run.candles_total = sum(len(candles) for candles in streams.values())
        report = ProgressReport(run)
        report.write(candles_total=run.candles_total)
        result = run_backtest(spec, streams, progress=report)
    except AttemptSuperseded:
        return "superseded"
    except BacktestCancelled:
        return end(run_id, Status.CANCELLED, attempt=run.attempt)
    except (InvalidBacktest, CandleRejected) as error:
        return end(run_id, Status.FAILED, error=str(error), attempt=run.attempt)
    except Exception as error:
        # A strategy's own code may raise anything; the run fails with it, and the worker goes on.
        log.exception("backtest %s failed", run_id)
        return end(run_id, Status.FAILED, error=f"{type(error).__name__}: {error}", attempt=run.attempt)
    return store(run_id, result, attempt=run.attempt)


def claim(run_id: int) -> models.BacktestRun | None:
    """Take the run for a new attempt: a queued one, or a running one not heard of for BACKTEST_SILENT_SECONDS (its
    worker was lost). None for a run that is missing or ended; raises RunningElsewhere for one another attempt runs."""
    with transaction.atomic():
        run = models.BacktestRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.ended:
            return None
        silent = run.heard_at is None or (now() - run.heard_at).total_seconds() >= settings.BACKTEST_SILENT_SECONDS
        if run.status == Status.RUNNING and not silent:
            raise RunningElsewhere(run_id)
        run.status, run.attempt, run.started_at, run.heard_at = Status.RUNNING, run.attempt + 1, now(), now()
        run.candles_done = run.candles_total = 0
        run.save(update_fields=["status", "attempt", "started_at", "heard_at", "candles_done", "candles_total"])
    return run


class ProgressReport:
    """The progress callback of a running backtest: at the first look at the clock, then at most every
    BACKTEST_PROGRESS_SECONDS, it writes the candles done to the row (only while no cancel is asked: one
    statement for both) and publishes them; a cancel raises BacktestCancelled."""

    def __init__(self, run: models.BacktestRun) -> None:
        self.run = run
        self.interval = settings.BACKTEST_PROGRESS_SECONDS
        self.reported_at: float | None = None
        # The candles done when the clock was last read: it is read once every CLOCK_EVERY_CANDLES at most.
        self.clocked_at = 0

    def __call__(self, done: int) -> None:
        if done - self.clocked_at < CLOCK_EVERY_CANDLES:
            return
        self.clocked_at = done
        clock = time.monotonic()
        if self.reported_at is not None and clock - self.reported_at < self.interval:
            return
        self.reported_at = clock
        self.write(candles_done=done)
        self.run.candles_done = done
        publish_progress(self.run)

    def write(self, **progress: int) -> None:
        """Write how far the run got and that this attempt was heard of (one statement, while it is this attempt's
        and no cancel is asked); raises AttemptSuperseded or BacktestCancelled if not."""
        going_on = models.BacktestRun.objects.filter(
            pk=self.run.pk, status=Status.RUNNING, attempt=self.run.attempt, cancel_requested_at__isnull=True,
        ).update(heard_at=now(), **progress)
        if going_on:
            return
        if models.BacktestRun.objects.filter(pk=self.run.pk, attempt=self.run.attempt).exists():
            raise BacktestCancelled(self.run.pk)
        raise AttemptSuperseded(self.run.pk)


def end(run_id: int, status: str, error: str = "", attempt: int | None = None) -> str:
    """End a running (or, when its task cannot be queued, a queued) run without a result; given the `attempt`
    ending it, only while the run is still that attempt's."""
    with transaction.atomic():
        run = models.BacktestRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None:
            return "missing"  # deleted (in the admin) while it ran
        if run.ended or (attempt is not None and run.attempt != attempt):
            return run.status
        run.status, run.error, run.finished_at = status, error, now()
        run.save(update_fields=["status", "error", "finished_at"])
        transaction.on_commit(lambda: publish_progress(run))
    return status


def store(run_id: int, result: BacktestResult, attempt: int) -> str:
    """Store a finished run's result into its row, unless a cancel came in meanwhile (then nothing is stored) or
    another attempt took the run over."""
    with transaction.atomic():
        run = models.BacktestRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None:
            return "missing"
        if run.status != Status.RUNNING or run.attempt != attempt:
            return run.status
        if run.cancel_requested_at is not None:
            run.status, run.finished_at = Status.CANCELLED, now()
            run.save(update_fields=["status", "finished_at"])
        else:
            store_run(result, run=run)
        transaction.on_commit(lambda: publish_progress(run))
    return run.status
