"""The event websocket over the real Redis channel layer: login, origin, filtering, junk."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from tradeweb.asgi import application
from tradeweb.desk import live, models, orchestrators
from tradeweb.desk.control import set_active

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

ORIGIN = (b"origin", b"http://localhost")


@sync_to_async
def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def connect(user=None, origin=ORIGIN) -> WebsocketCommunicator:
    headers = [origin, (b"host", b"localhost")]
    if user is not None:
        headers.append((b"cookie", await session_cookie(user)))
    communicator = WebsocketCommunicator(application, "/ws/events/", headers=headers)
    return communicator


async def subscribe(communicator: WebsocketCommunicator, *ids: str) -> dict:
    await communicator.send_json_to({"action": "subscribe", "strategy_ids": list(ids)})
    return await communicator.receive_json_from(timeout=5)


async def next_event(communicator: WebsocketCommunicator) -> dict:
    while True:
        message = await communicator.receive_json_from(timeout=5)
        if message["type"] == "event":
            return message


@pytest.fixture
def two_strategies(make_strategy, redis_url):
    orchestrators.forget_all()
    return make_strategy("alpha"), make_strategy("beta", symbol="GBP/USD", strategy_class="rsi_mean_reversion")


async def test_client_receives_only_the_events_of_the_strategies_it_subscribed_to(two_strategies, make_user):
    user = await sync_to_async(make_user)("watcher", can_control=True)
    alpha_client, beta_client = await connect(user), await connect(user)
    assert (await alpha_client.connect())[0] and (await beta_client.connect())[0]
    assert await subscribe(alpha_client, "alpha") == {"type": "subscribed", "strategy_ids": ["alpha"]}
    assert await subscribe(beta_client, "beta") == {"type": "subscribed", "strategy_ids": ["beta"]}

    await sync_to_async(set_active)("alpha", user, False)

    message = await next_event(alpha_client)
    assert message["event"]["strategy_id"] == "alpha"
    assert message["event"]["type"] == "STRATEGY_DEACTIVATED"
    assert message["event"]["payload"]["user"] == "watcher"
    assert 'data-strategy-id="alpha"' in message["html"]
    assert await beta_client.receive_nothing(timeout=0.5)
    await alpha_client.disconnect()
    await beta_client.disconnect()


async def test_unsubscribed_client_stops_receiving(two_strategies, make_user):
    user = await sync_to_async(make_user)("watcher", can_control=True)
    client = await connect(user)
    await client.connect()
    await subscribe(client, "alpha", "beta")
    await client.send_json_to({"action": "unsubscribe", "strategy_ids": ["alpha"]})
    assert await client.receive_json_from(timeout=5) == {"type": "subscribed", "strategy_ids": ["beta"]}

    await sync_to_async(set_active)("alpha", user, False)
    await sync_to_async(set_active)("beta", user, False)

    message = await next_event(client)
    assert message["event"]["strategy_id"] == "beta"
    assert await client.receive_nothing(timeout=0.5)
    await client.disconnect()


async def test_anonymous_client_is_refused(two_strategies):
    client = await connect(user=None)
    connected, _ = await client.connect()
    assert not connected
    # The refused consumer still waits on the channel layer; end it here, not in the loop's teardown.
    await client.disconnect()


async def test_foreign_origin_is_refused(two_strategies, make_user):
    user = await sync_to_async(make_user)("watcher")
    client = await connect(user, origin=(b"origin", b"http://evil.example"))
    connected, _ = await client.connect()
    assert not connected
    await client.disconnect()


@pytest.mark.parametrize(
    "frame, error",
    [
        ("not json at all", "not valid JSON"),
        ('["subscribe"]', "must be an object"),
        ('{"action": "shout", "strategy_ids": []}', "unknown action"),
        ('{"action": "subscribe", "strategy_ids": "alpha"}', "must be a list"),
        ('{"action": "subscribe", "strategy_ids": [1, 2]}', "must be a list"),
        ('{"action": "subscribe", "strategy_ids": ["alpha", "no spaces"]}', "1 of 2 strategy ids are not slugs"),
        pytest.param("[" * 30_000 + "]" * 30_000, "nested too deeply", id="deeply-nested"),
    ],
)
async def test_junk_messages_get_a_clear_error_and_keep_the_connection(two_strategies, make_user, frame, error):
    user = await sync_to_async(make_user)("watcher")
    client = await connect(user)
    await client.connect()

    await client.send_to(text_data=frame)
    reply = await client.receive_json_from(timeout=5)

    assert reply["type"] == "error"
    assert error in reply["message"]
    assert await subscribe(client, "alpha") == {"type": "subscribed", "strategy_ids": ["alpha"]}
    await client.disconnect()


async def test_unknown_strategy_ids_are_named_and_known_ones_still_subscribed(two_strategies, make_user):
    user = await sync_to_async(make_user)("watcher")
    client = await connect(user)
    await client.connect()

    await client.send_json_to({"action": "subscribe", "strategy_ids": ["alpha", "ghost"]})
    error = await client.receive_json_from(timeout=5)
    ack = await client.receive_json_from(timeout=5)

    assert error["type"] == "error" and error["unknown"] == ["ghost"]
    assert ack == {"type": "subscribed", "strategy_ids": ["alpha"]}
    await client.disconnect()


async def test_candle_events_from_the_live_path_reach_the_subscriber(two_strategies, make_user, btc_candles):
    user = await sync_to_async(make_user)("watcher")
    client = await connect(user)
    await client.connect()
    await subscribe(client, "alpha")
    bad = btc_candles[0].to_mapping() | {"close": "NaN"}

    await sync_to_async(live.ingest_candle)(bad)

    message = await next_event(client)
    assert message["event"]["type"] == "DATA_REJECTED"
    assert message["event"]["strategy_id"] == "alpha"
    await client.disconnect()


async def next_marks(communicator: WebsocketCommunicator) -> dict:
    while True:
        message = await communicator.receive_json_from(timeout=5)
        if message["type"] == "marks":
            return message


async def test_each_candle_sends_the_subscribed_strategies_marks_as_their_rows_stand(make_strategy, make_user, btc_candles, redis_url):
    orchestrators.forget_all()
    await sync_to_async(make_strategy)("alpha")
    await sync_to_async(make_strategy)("gamma", fast_period=3, slow_period=8)
    await sync_to_async(make_strategy)("beta", symbol="GBP/USD", strategy_class="rsi_mean_reversion")
    user = await sync_to_async(make_user)("watcher")
    watcher, other = await connect(user), await connect(user)
    await watcher.connect()
    await other.connect()
    await subscribe(watcher, "alpha")
    await subscribe(other, "beta")

    for candle in btc_candles[:3]:
        before = time.time()
        await sync_to_async(live.ingest_candle)(candle.to_mapping())
        message = await next_marks(watcher)
        assert before <= message["published_at"] <= time.time()

        row = await sync_to_async(models.Strategy.objects.get)(strategy_id="alpha")
        assert list(message["marks"]) == ["alpha"], "only the strategies the client follows"
        mark = message["marks"]["alpha"]
        assert mark["last_candle_time"] == candle.time.isoformat() == row.last_candle_time.isoformat()
        assert Decimal(mark["last_close"]) == candle.close
        assert Decimal(mark["equity"]) == row.equity and Decimal(mark["unrealized_pnl"]) == row.unrealized_pnl
    assert await other.receive_nothing(timeout=0.5), "no marks of another market's candles"
    await watcher.disconnect()
    await other.disconnect()


async def test_a_client_that_unsubscribed_gets_no_more_marks(make_strategy, make_user, btc_candles, redis_url):
    orchestrators.forget_all()
    await sync_to_async(make_strategy)("alpha")
    await sync_to_async(make_strategy)("gamma", fast_period=3, slow_period=8)
    user = await sync_to_async(make_user)("watcher")
    client = await connect(user)
    await client.connect()
    await subscribe(client, "alpha", "gamma")
    await client.send_json_to({"action": "unsubscribe", "strategy_ids": ["alpha"]})
    await client.receive_json_from(timeout=5)

    await sync_to_async(live.ingest_candle)(btc_candles[0].to_mapping())
    assert list((await next_marks(client))["marks"]) == ["gamma"]
    await client.send_json_to({"action": "unsubscribe", "strategy_ids": ["gamma"]})
    assert (await client.receive_json_from(timeout=5))["strategy_ids"] == []
    await sync_to_async(live.ingest_candle)(btc_candles[1].to_mapping())

    assert await client.receive_nothing(timeout=0.5)
    await client.disconnect()


async def test_a_strategy_moved_to_another_market_in_the_admin_brings_that_markets_marks(
    make_strategy, make_user, btc_candles, redis_url
):
    from orchestrator.datasets import load_candles
    from tradeweb.desk import config_history

    orchestrators.forget_all()
    alpha = await sync_to_async(make_strategy)("alpha")
    await sync_to_async(make_strategy)("gamma", fast_period=3, slow_period=8)
    user = await sync_to_async(make_user)("watcher")
    client = await connect(user)
    await client.connect()
    await subscribe(client, "alpha")
    await sync_to_async(live.ingest_candle)(btc_candles[0].to_mapping())
    assert list((await next_marks(client))["marks"]) == ["alpha"]

    alpha.symbol = "GBP/USD"
    await sync_to_async(config_history.save_settings)(alpha, user, ["symbol"])
    changed = await next_event(client)
    assert changed["event"]["type"] == "CONFIG_CHANGED"
    assert changed["event"]["payload"]["changes"]["symbol"] == ["BTC/USD", "GBP/USD"]

    await sync_to_async(live.ingest_candle)(btc_candles[1].to_mapping())
    assert await client.receive_nothing(timeout=0.5), "gamma still trades BTC/USD: its marks are not alpha's"
    gbp = load_candles("GBP/USD", "1m", limit=1)[0]
    await sync_to_async(live.ingest_candle)(gbp.to_mapping())
    mark = (await next_marks(client))["marks"]["alpha"]
    assert mark["last_candle_time"] == gbp.time.isoformat() and Decimal(mark["last_close"]) == gbp.close
    await client.disconnect()
