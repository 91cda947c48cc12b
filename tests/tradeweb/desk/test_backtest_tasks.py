"""Backtests on a real Celery worker, with real Redis and the channels_redis layer: a run goes queued -> running ->
done with the result `run_backtest` gives for the same spec, and a cancel stops a run before its end."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer

from orchestrator.backtest import run_backtest
from tradeweb.desk import backtest_runs, models
from tradeweb.desk.backtest_requests import BacktestRequest, PortfolioPart, build_spec, candle_streams
from tradeweb.desk.backtest_results import result_json, stored_json
from tradeweb.desk.tasks import queue_backtest

pytestmark = pytest.mark.django_db(transaction=True)

ENDED = ("done", "failed", "cancelled")


@pytest.fixture
def desk(make_strategy):
    make_strategy("btc-sma", fast_period=10, slow_period=30)
    make_strategy("btc-rsi", strategy_class="rsi_mean_reversion", rsi_period=7)
    make_strategy("gbp-rsi", strategy_class="rsi_mean_reversion", symbol="GBP/USD", rsi_period=14)


def held_back(request: BacktestRequest, user) -> models.BacktestRun:
    """A queued run whose task the test sends itself, once it listens to the run's group."""
    return backtest_runs.start(request, user, send=lambda run_id, task_id: None)


def follow(run: models.BacktestRun, while_running=None, timeout: float = 120) -> list[dict]:
    """Send the run's task to the worker and collect every progress it publishes until the run ends;
    `while_running(progress)` is called on each report of a running run."""

    async def collect() -> list[dict]:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(backtest_runs.backtest_group(run.pk), channel)
        await sync_to_async(queue_backtest)(run.pk, run.task_id)
        seen: list[dict] = []
        while not seen or seen[-1]["status"] not in ENDED:
            seen.append((await asyncio.wait_for(layer.receive(channel), timeout))["progress"])
            if while_running is not None and seen[-1]["status"] == "running":
                await sync_to_async(while_running)(seen[-1])
        return seen

    return async_to_sync(collect)()


def test_a_run_goes_queued_running_done_with_the_result_run_backtest_gives(celery_worker, desk, make_user):
    request = BacktestRequest(
        (PortfolioPart("btc-sma", Decimal("0.5")), PortfolioPart("btc-rsi", Decimal("0.3"))), Decimal(20_000),
        datetime(2022, 1, 3, tzinfo=timezone.utc), datetime(2022, 1, 3, 12, tzinfo=timezone.utc),
        fee_rate=Decimal("0.001"),
    )
    run = held_back(request, make_user("operator", can_control=True))
    assert models.BacktestRun.objects.get(pk=run.pk).status == "queued"

    seen = follow(run)

    statuses = [p["status"] for p in seen]
    assert statuses[0] == "running" and statuses[-1] == "done" and set(statuses) == {"running", "done"}
    done = [p["candles_done"] for p in seen]
    assert done == sorted(done) and done[-1] == seen[-1]["candles_total"] == 720
    assert any(0 < p["candles_done"] < 720 for p in seen), "progress is reported on the way, not only at the end"
    assert len(seen) < 720 / 50, "not every candle"
    stored = models.BacktestRun.objects.get(pk=run.pk)
    assert (stored.status, stored.candles_done, stored.candles_total) == ("done", 720, 720)
    assert stored.started_at <= stored.finished_at and models.BacktestRun.objects.count() == 1
    spec = build_spec(request)
    expected = json.loads(json.dumps(result_json(run_backtest(spec, candle_streams(spec)))))
    assert stored_json(stored) == expected
    assert expected["strategies"]["btc-sma"]["metrics"]["trades"] > 0
    assert expected["strategies"]["btc-sma"]["metrics"]["fees"] != "0"


def test_a_cancel_stops_a_run_before_its_end_and_stores_nothing(celery_worker, desk, make_user):
    operator = make_user("operator", can_control=True)
    # Every shipped candle of both markets for three strategies: many seconds of work, so the cancel lands mid-run.
    request = BacktestRequest(
        tuple(PortfolioPart(sid, Decimal("0.3")) for sid in ("btc-sma", "btc-rsi", "gbp-rsi")), Decimal(10_000),
    )
    run = held_back(request, operator)
    cancelled_at: list[int] = []

    def cancel_once_under_way(progress: dict) -> None:
        if progress["candles_done"] > 0 and not cancelled_at:
            cancelled_at.append(progress["candles_done"])
            backtest_runs.cancel(run.pk, operator)

    seen = follow(run, while_running=cancel_once_under_way)

    stored = models.BacktestRun.objects.get(pk=run.pk)
    assert seen[-1]["status"] == stored.status == "cancelled"
    assert any(p["cancel_requested"] for p in seen[:-1]), "the page learns the cancel is on its way"
    assert cancelled_at[0] <= stored.candles_done < stored.candles_total == 45_031 + 30_117
    assert (stored.spec, stored.portfolio, stored.strategies.count()) == ({}, {}, 0)
    assert stored.cancelled_by == operator and stored.finished_at is not None
