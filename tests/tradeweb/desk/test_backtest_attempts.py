"""A backtest's task delivered again (a broker redelivers a task that outlives its visibility timeout; a lost worker's
task comes back): it leaves a run whose attempt still reports, takes over one gone silent, and only the latest
attempt of a run reports and stores."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from orchestrator.backtest import run_backtest
from tradeweb.desk import backtest_runs, models
from tradeweb.desk.backtest_requests import BacktestRequest, PortfolioPart, build_spec, candle_streams

pytestmark = pytest.mark.django_db

REQUEST = BacktestRequest(
    (PortfolioPart("btc-sma", Decimal(1)),), Decimal(10_000),
    datetime(2022, 1, 3, tzinfo=timezone.utc), datetime(2022, 1, 3, 6, tzinfo=timezone.utc),
)
SILENT = 60


@pytest.fixture
def run(make_strategy, make_user, redis_url, settings):
    settings.BACKTEST_SILENT_SECONDS = SILENT
    make_strategy("btc-sma", fast_period=10, slow_period=30)
    return backtest_runs.start(REQUEST, make_user("operator", can_control=True), send=lambda run_id, task_id: None)


def heard(run: models.BacktestRun, seconds_ago: float | None, attempt: int = 1) -> None:
    """The run as an attempt left it that last reported `seconds_ago` (None: never, as before attempts counted)."""
    heard_at = None if seconds_ago is None else datetime.now(timezone.utc) - timedelta(seconds=seconds_ago)
    models.BacktestRun.objects.filter(pk=run.pk).update(status="running", attempt=attempt, heard_at=heard_at)


def stands(run: models.BacktestRun) -> tuple:
    row = models.BacktestRun.objects.get(pk=run.pk)
    return row.status, row.attempt, row.strategies.count()


def test_a_delivery_leaves_a_run_whose_attempt_still_reports(run):
    heard(run, SILENT - 5)

    with pytest.raises(backtest_runs.RunningElsewhere):
        backtest_runs.execute(run.pk)

    assert stands(run) == ("running", 1, 0)


@pytest.mark.parametrize("seconds_ago", [SILENT + 1, None], ids=["silent", "never-heard"])
def test_a_delivery_takes_over_a_run_gone_silent_and_runs_it_to_the_end(run, seconds_ago):
    heard(run, seconds_ago)

    assert backtest_runs.execute(run.pk) == "done"

    assert stands(run) == ("done", 2, 1)


def test_the_attempt_taken_over_stops_at_its_next_report_and_stores_nothing(run):
    first = backtest_runs.claim(run.pk)
    heard(run, SILENT + 1, attempt=first.attempt)
    second = backtest_runs.claim(run.pk)
    assert (first.attempt, second.attempt) == (1, 2)
    spec = build_spec(REQUEST)
    result = run_backtest(spec, candle_streams(spec))

    with pytest.raises(backtest_runs.AttemptSuperseded):
        backtest_runs.ProgressReport(first).write(candles_done=100)
    assert backtest_runs.store(run.pk, result, attempt=first.attempt) == "running"
    assert backtest_runs.end(run.pk, "failed", error="boom", attempt=first.attempt) == "running"
    assert stands(run) == ("running", 2, 0)

    backtest_runs.ProgressReport(second).write(candles_done=100)
    assert backtest_runs.store(run.pk, result, attempt=second.attempt) == "done"
    assert stands(run) == ("done", 2, 1)


def test_a_cancel_still_stops_the_attempt_that_runs(run, make_user):
    attempt = backtest_runs.claim(run.pk)
    backtest_runs.cancel(run.pk, make_user("other", can_control=True))

    with pytest.raises(backtest_runs.BacktestCancelled):
        backtest_runs.ProgressReport(attempt).write(candles_done=100)
