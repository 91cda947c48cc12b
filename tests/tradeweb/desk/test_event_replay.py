"""Replay over the event websocket: a client that missed events asks for those after the last sequence it saw
per strategy and gets the stored ones, in order, at most REPLAY_LIMIT per request, validated like every message."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.template.loader import render_to_string

from tests.tradeweb.desk.test_consumers import connect, subscribe
from tradeweb.desk import models
from tradeweb.desk.control import set_active
from tradeweb.desk.event_feed import REPLAY_LIMIT

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest.fixture
def two_strategies(make_strategy, redis_url):
    return make_strategy("alpha"), make_strategy("beta", symbol="GBP/USD", strategy_class="rsi_mean_reversion")


@sync_to_async
def switched(strategy_id: str, user, times: int) -> None:
    """`times` control events of the strategy, off and on in turn."""
    for number in range(times):
        set_active(strategy_id, user, number % 2 == 1)


@sync_to_async
def stored_events(strategy_id: str, count: int) -> None:
    """`count` stored events of the strategy, numbered on from its last one, as a busy worker leaves them."""
    strategy = models.Strategy.objects.get(strategy_id=strategy_id)
    start = datetime(2022, 1, 1, tzinfo=timezone.utc)
    models.Event.objects.bulk_create(
        models.Event(strategy_id=strategy_id, sequence=strategy.last_sequence + n, type="SIGNAL_GENERATED",
                     symbol=strategy.symbol, time=start + timedelta(minutes=n),
                     payload={"action": "enter_long", "reason": f"signal {n}", "close": "47000"})
        for n in range(1, count + 1)
    )
    models.Strategy.objects.filter(pk=strategy.pk).update(last_sequence=strategy.last_sequence + count)


async def replay(client, after) -> dict:
    await client.send_json_to({"action": "replay", "after": after})
    return await client.receive_json_from(timeout=5)


async def logged_in(make_user, username: str = "watcher"):
    client = await connect(await sync_to_async(make_user)(username, can_control=True))
    assert (await client.connect())[0]
    return client


async def test_it_sends_the_stored_events_after_the_last_seen_of_each_strategy_in_order(two_strategies, make_user):
    user = await sync_to_async(make_user)("operator", can_control=True)
    await switched("alpha", user, 5)
    await switched("beta", user, 2)
    client = await logged_in(make_user)

    reply = await replay(client, {"beta": 0, "alpha": 2})

    assert reply["type"] == "replay"
    assert reply["strategy_ids"] == ["alpha", "beta"] and reply["more"] == [] and reply["limit"] == REPLAY_LIMIT
    assert [(e["event"]["strategy_id"], e["event"]["sequence"]) for e in reply["events"]] == [
        ("alpha", 3), ("alpha", 4), ("alpha", 5), ("beta", 1), ("beta", 2),
    ]
    third = reply["events"][0]
    assert third["event"]["type"] == "STRATEGY_DEACTIVATED" and third["event"]["payload"]["user"] == "operator"
    # The row the page shows: the partial a live event is rendered with.
    assert third["html"] == await sync_to_async(render_to_string)("partials/event_row.html", {"event": third["event"]})
    assert "Deactivated by operator, now dormant" in third["html"]
    await client.disconnect()


async def test_a_strategy_with_nothing_new_gets_an_empty_replay(two_strategies, make_user):
    await switched("alpha", await sync_to_async(make_user)("operator", can_control=True), 2)
    client = await logged_in(make_user)

    reply = await replay(client, {"alpha": 2, "beta": 0})

    assert reply == {"type": "replay", "strategy_ids": ["alpha", "beta"], "events": [], "more": [], "limit": REPLAY_LIMIT}
    await client.disconnect()


async def test_a_long_replay_comes_in_bounded_parts_the_client_asks_for_again(two_strategies, make_user):
    await stored_events("alpha", REPLAY_LIMIT + 50)
    await stored_events("beta", 3)
    client = await logged_in(make_user)

    first = await replay(client, {"alpha": 0, "beta": 0})
    last_seen = {"alpha": first["events"][-1]["event"]["sequence"], "beta": 0}
    second = await replay(client, last_seen)

    assert len(first["events"]) == REPLAY_LIMIT
    assert [e["event"]["sequence"] for e in first["events"]] == list(range(1, REPLAY_LIMIT + 1))
    assert first["more"] == ["alpha", "beta"]
    assert [(e["event"]["strategy_id"], e["event"]["sequence"]) for e in second["events"]] == (
        [("alpha", n) for n in range(REPLAY_LIMIT + 1, REPLAY_LIMIT + 51)] + [("beta", 1), ("beta", 2), ("beta", 3)]
    )
    assert second["more"] == []
    await client.disconnect()


async def test_unknown_strategy_ids_are_named_and_known_ones_still_replayed(two_strategies, make_user):
    await switched("alpha", await sync_to_async(make_user)("operator", can_control=True), 1)
    client = await logged_in(make_user)

    error = await replay(client, {"alpha": 0, "ghost": 0})
    reply = await client.receive_json_from(timeout=5)
    only_unknown = await replay(client, {"ghost": 3, "phantom": 0})

    assert error == {"type": "error", "message": "unknown strategy ids: ghost", "unknown": ["ghost"]}
    assert reply["strategy_ids"] == ["alpha"] and [e["event"]["sequence"] for e in reply["events"]] == [1]
    assert only_unknown["unknown"] == ["ghost", "phantom"]
    assert await client.receive_nothing(timeout=0.3)
    await client.disconnect()


@pytest.mark.parametrize(
    "after, error",
    [
        (None, "after must map strategy ids to the last sequence seen"),
        ([["alpha", 1]], "after must map strategy ids to the last sequence seen"),
        ({}, "after must map strategy ids to the last sequence seen"),
        ({f"s{n}": 0 for n in range(201)}, "at most 200 strategy ids per message"),
        ({"alpha": 0, "no spaces": 0, "<script>": 1}, "2 of 3 strategy ids are not slugs"),
        ({"alpha": -1}, "1 of 1 sequences are not whole numbers of 0 or more"),
        ({"alpha": 1.5, "beta": "7"}, "2 of 2 sequences are not whole numbers of 0 or more"),
        ({"alpha": True}, "1 of 1 sequences are not whole numbers of 0 or more"),
        ({"alpha": 2**63}, "1 of 1 sequences are not whole numbers of 0 or more"),
    ],
    ids=["missing", "list", "empty", "too-many-ids", "not-slugs", "negative", "not-integers", "boolean", "too-large"],
)
async def test_a_malformed_replay_gets_a_short_error_and_keeps_the_connection(two_strategies, make_user, after, error):
    client = await logged_in(make_user)
    message = {"action": "replay"} if after is None else {"action": "replay", "after": after}

    await client.send_json_to(message)
    reply = await client.receive_json_from(timeout=5)

    assert reply["type"] == "error" and error in reply["message"]
    assert "<script>" not in reply["message"] and "no spaces" not in reply["message"]
    assert set(reply) == {"type", "message"}
    assert await subscribe(client, "alpha") == {"type": "subscribed", "strategy_ids": ["alpha"]}
    await client.disconnect()


async def test_replays_count_against_the_rate_limit(two_strategies, make_user):
    client = await logged_in(make_user)
    sent = settings.WEBSOCKET_BURST * 5

    for _ in range(sent):
        await client.send_json_to({"action": "replay", "after": {"alpha": 0}})
    outputs = []
    while not outputs or outputs[-1]["type"] != "websocket.close":
        outputs.append(await client.receive_output(timeout=10))

    texts = [o["text"] for o in outputs[:-1]]
    assert outputs[-1] == {"type": "websocket.close", "code": 4429}
    assert "closing with 4429" in texts[-1]
    assert settings.WEBSOCKET_BURST <= sum('"type": "replay"' in t for t in texts) == len(texts) - 1 < sent
    await client.disconnect()


async def test_an_anonymous_client_cannot_replay(two_strategies):
    client = await connect(user=None)

    connected, _ = await client.connect()

    assert not connected
    await client.disconnect()
