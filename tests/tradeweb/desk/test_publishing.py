"""Publishing from sync code (workers, views): one call per candle, in order, over the real Redis layer."""

from __future__ import annotations

from channels.layers import get_channel_layer

from tests.group_listener import listen
from tradeweb.desk.publishing import publishing_loop, send_messages


def message(sequence: int) -> dict:
    event = {"strategy_id": "alpha", "sequence": sequence, "type": "SIGNAL_GENERATED"}
    return {"type": "desk.event", "event": event}


def test_a_batch_of_events_arrives_in_order_and_the_publishing_loop_stays_up(redis_url):
    listener = listen("alpha", 12)
    assert listener.ready.wait(10)

    send_messages([message(n) for n in range(1, 6)])
    first_loop = publishing_loop._running_loop()
    send_messages([message(n) for n in range(6, 13)])

    assert [m["event"]["sequence"] for m in listener.join()] == list(range(1, 13))
    assert publishing_loop._running_loop() is first_loop and first_loop.is_running()


def test_nothing_to_publish_sends_nothing(redis_url):
    listener = listen("alpha", 1)
    assert listener.ready.wait(10)

    send_messages([])
    send_messages([message(99)])

    assert [m["event"]["sequence"] for m in listener.join()] == [99]


def test_a_broken_channel_layer_is_logged_not_raised(redis_url, caplog, monkeypatch):
    async def refuse(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(get_channel_layer(), "group_send", refuse)

    send_messages([message(1)])

    assert "could not publish events to the channel layer" in caplog.text
    assert "redis is down" in caplog.text


def test_a_send_that_fails_once_is_carried_on_from_the_first_unsent_message(redis_url, caplog, monkeypatch):
    """What a Redis restart does to the pooled connection: one send fails; the rest go once, in order."""
    listener = listen("alpha", 5)
    assert listener.ready.wait(10)
    layer = get_channel_layer()
    real_send, calls = layer.group_send, []

    async def fail_third(group, message):
        calls.append(message["event"]["sequence"])
        if len(calls) == 3:
            raise ConnectionError("Connection closed by server.")
        await real_send(group, message)

    monkeypatch.setattr(layer, "group_send", fail_third)

    send_messages([message(n) for n in range(1, 6)])

    assert [m["event"]["sequence"] for m in listener.join()] == [1, 2, 3, 4, 5]
    assert calls == [1, 2, 3, 3, 4, 5]
    assert "could not publish" not in caplog.text
