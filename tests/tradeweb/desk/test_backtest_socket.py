"""Following a backtest run on the event websocket, over the real Redis channel layer: its current progress at
once, every report as the run goes, junk and unknown runs answered with an error, the connection kept."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async

from tests.tradeweb.desk.test_consumers import connect, subscribe
from tradeweb.desk import backtest_runs, models
from tradeweb.desk.backtest_requests import BacktestRequest, PortfolioPart

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest.fixture
def queued(make_strategy, make_user, redis_url):
    """A queued run of one strategy over a day of BTC/USD minutes (1440 candles), its task held back."""
    make_strategy("btc-sma", fast_period=10, slow_period=30)
    request = BacktestRequest(
        (PortfolioPart("btc-sma", Decimal("0.5")),), Decimal(10_000),
        datetime(2022, 1, 3, tzinfo=timezone.utc), datetime(2022, 1, 4, tzinfo=timezone.utc),
    )
    return backtest_runs.start(request, make_user("operator", can_control=True), send=lambda run_id, task_id: None)


async def follow(client, run_id) -> list[dict]:
    await client.send_json_to({"action": "follow_backtest", "run_id": run_id})
    return [await client.receive_json_from(timeout=5), await client.receive_json_from(timeout=5)]


async def test_it_works(queued, settings):
    settings.BACKTEST_PROGRESS_SECONDS = 0  # a report at every look at the clock: every 100 candles
    client = await connect(queued.created_by)
    assert (await client.connect())[0]

    following, current = await follow(client, queued.pk)
    assert following == {"type": "following", "run_ids": [queued.pk]}
    assert current["type"] == "backtest" and current["progress"]["status"] == "queued"
    assert 'id="backtest-progress"' in current["html"] and 'class="cancel"' in current["html"]

    assert await sync_to_async(backtest_runs.execute)(queued.pk) == "done"

    reports = []
    while not reports or reports[-1]["progress"]["status"] != "done":
        reports.append(await client.receive_json_from(timeout=5))
    done = [r["progress"]["candles_done"] for r in reports]
    assert [r["progress"]["status"] for r in reports] == ["running"] * (len(reports) - 1) + ["done"]
    assert done == [0, *range(100, 1440, 100), 1440]
    assert reports[4]["progress"]["candles_total"] == 1440 and reports[4]["progress"]["percent"] == 27.8
    assert '<progress max="1440" value="400">' in reports[4]["html"]
    assert "Done" in reports[-1]["html"] and 'class="cancel"' not in reports[-1]["html"]
    await client.disconnect()


async def test_a_page_opened_later_gets_the_state_from_the_row(queued):
    await sync_to_async(models.BacktestRun.objects.filter(pk=queued.pk).update)(
        status="failed", candles_done=200, candles_total=1440, error="ValueError: the strategy raised")
    client = await connect(queued.created_by)
    await client.connect()

    _, current = await follow(client, queued.pk)

    assert current["progress"] | {"run_id": 0} == {
        "run_id": 0, "status": "failed", "status_label": "Failed", "candles_done": 200, "candles_total": 1440,
        "percent": 13.9, "cancel_requested": False, "error": "ValueError: the strategy raised",
    }
    assert "ValueError: the strategy raised" in current["html"]
    await client.disconnect()


async def test_a_viewer_follows_a_run_but_gets_no_cancel_button(queued, make_user):
    viewer = await sync_to_async(make_user)("viewer")
    client = await connect(viewer)
    await client.connect()

    _, current = await follow(client, queued.pk)

    assert current["progress"]["status"] == "queued" and "cancel" not in current["html"]
    await client.disconnect()


async def test_an_unfollowed_run_sends_nothing_more(queued):
    client = await connect(queued.created_by)
    await client.connect()
    await follow(client, queued.pk)

    await client.send_json_to({"action": "unfollow_backtest", "run_id": queued.pk})
    assert await client.receive_json_from(timeout=5) == {"type": "following", "run_ids": []}
    await sync_to_async(backtest_runs.cancel)(queued.pk, queued.created_by)

    assert await client.receive_nothing(timeout=0.5)
    await client.disconnect()


@pytest.mark.parametrize("frame, error", [
    ({"action": "follow_backtest"}, "run_id must be a backtest run's number"),
    ({"action": "follow_backtest", "run_id": "1"}, "run_id must be a backtest run's number"),
    ({"action": "follow_backtest", "run_id": 1.0}, "run_id must be a backtest run's number"),
    ({"action": "follow_backtest", "run_id": True}, "run_id must be a backtest run's number"),
    ({"action": "follow_backtest", "run_id": -3}, "run_id must be a backtest run's number"),
    ({"action": "follow_backtest", "run_id": 2**80}, "run_id must be a backtest run's number"),
    ({"action": "unfollow_backtest", "run_id": [1]}, "run_id must be a backtest run's number"),
    ({"action": "follow_backtest", "run_id": 987654321}, "no backtest run 987654321"),
    ({"action": "follow", "run_id": 1}, "unknown action"),
])
async def test_junk_and_unknown_runs_get_a_clear_error_and_keep_the_connection(queued, frame, error):
    client = await connect(queued.created_by)
    await client.connect()

    await client.send_json_to(frame)
    reply = await client.receive_json_from(timeout=5)

    assert reply["type"] == "error" and reply["message"].startswith(error)
    assert str(2**80) not in reply["message"], "never the client's input, except a run id that is a valid number"
    _, current = await follow(client, queued.pk)
    assert current["progress"]["run_id"] == queued.pk
    await subscribe(client, "btc-sma")
    await client.disconnect()


async def test_an_anonymous_client_cannot_follow_a_run(queued):
    client = await connect(user=None)

    connected, _ = await client.connect()

    assert not connected
    await client.disconnect()
