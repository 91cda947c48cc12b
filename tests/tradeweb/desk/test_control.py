"""Activating and deactivating a strategy from the desk: permission, CSRF, the record and the event."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest
from django.test import Client
from django.urls import reverse

from tests.group_listener import listen
from tradeweb.desk import orchestrators, live, models
from tradeweb.desk.control import stored_time

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def activate_url(strategy_id: str) -> str:
    return reverse("strategy_activate", args=[strategy_id])


def deactivate_url(strategy_id: str) -> str:
    return reverse("strategy_deactivate", args=[strategy_id])


def snapshot(strategy_id: str = "alpha") -> tuple:
    """Everything a control action changes, to show that a refused one changed nothing."""
    row = models.Strategy.objects.get(strategy_id=strategy_id)
    return (
        row.status, row.last_sequence, row.last_error,
        models.Event.objects.count(), models.ControlAction.objects.count(),
    )


def assert_switched(response, strategy_id: str) -> None:
    """An htmx switch's answer: no content to swap in, a trigger naming the strategy (the page refreshes its card)."""
    assert response.status_code == 204
    assert response.content == b""
    assert json.loads(response["HX-Trigger"]) == {"strategy-switched": {"strategy_id": strategy_id}}


def card(client: Client, strategy_id: str) -> str:
    """The strategy's card as the page refreshes it."""
    response = client.get(reverse("strategy_card", args=[strategy_id]))
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def traded_alpha(make_strategy, btc_candles):
    """An active BTC strategy that already has events of its own, so the next number is not simply 1."""
    orchestrators.forget_all()
    strategy = make_strategy("alpha", fast_period=3, slow_period=8)
    for candle in btc_candles[:60]:
        live.ingest_candle(candle.to_mapping())
    orchestrators.forget_all()
    strategy.refresh_from_db()
    assert strategy.last_sequence > 0
    return strategy


@pytest.fixture
def operator(make_user):
    return make_user("operator", can_control=True)


def test_it_works(client, traded_alpha, operator):
    before = traded_alpha.last_sequence
    client.force_login(operator)

    response = client.post(deactivate_url("alpha"), headers=HTMX)

    assert_switched(response, "alpha")
    strategy = models.Strategy.objects.get(strategy_id="alpha")
    assert strategy.status == "dormant"
    assert strategy.last_sequence == before + 1
    action = models.ControlAction.objects.get()
    assert (action.strategy_id, action.user, action.action) == ("alpha", operator, "deactivate")
    assert action.detail == "status active -> dormant"
    event = models.Event.objects.get(strategy_id="alpha", sequence=before + 1)
    assert event.type == "STRATEGY_DEACTIVATED"
    assert event.payload == {"user": "operator", "previous_status": "active", "status": "dormant"}
    assert models.Event.objects.filter(strategy_id="alpha").order_by("-sequence").first() == event


def test_activating_records_the_action_and_the_next_event(client, traded_alpha, operator):
    models.Strategy.objects.filter(strategy_id="alpha").update(status="dormant")
    before = traded_alpha.last_sequence
    client.force_login(operator)

    response = client.post(activate_url("alpha"), headers=HTMX)

    assert_switched(response, "alpha")
    assert ">Deactivate</button>" in card(client, "alpha")
    strategy = models.Strategy.objects.get(strategy_id="alpha")
    assert (strategy.status, strategy.last_sequence) == ("active", before + 1)
    event = models.Event.objects.get(strategy_id="alpha", sequence=before + 1)
    assert event.type == "STRATEGY_ACTIVATED"
    action = models.ControlAction.objects.get()
    assert (action.user, action.action, action.detail) == (operator, "activate", "status dormant -> active")


def test_a_strategy_activated_after_candles_it_missed_takes_the_next_one_and_trades_none_it_missed(
    client, traded_alpha, operator, btc_candles
):
    models.Strategy.objects.filter(strategy_id="alpha").update(status="dormant")
    for candle in btc_candles[60:90]:
        live.ingest_candle(candle.to_mapping())
    client.force_login(operator)

    client.post(activate_url("alpha"), headers=HTMX)

    strategy = models.Strategy.objects.get(strategy_id="alpha")
    assert (strategy.status, strategy.last_candle_time) == ("active", btc_candles[89].time)
    assert live.ingest_candle(btc_candles[90].to_mapping()).processed == ["alpha"]
    missed = (btc_candles[60].time, btc_candles[89].time)
    assert not models.Fill.objects.filter(strategy_id="alpha", time__range=missed).exists()
    assert not models.Event.objects.filter(strategy_id="alpha", time__range=missed).exists()


@pytest.mark.parametrize("value", [
    "2022-01-01 00:05:00", "2022-01-01T00:05:00+00:00", datetime(2022, 1, 1, 0, 5, tzinfo=timezone.utc),
])
def test_a_time_read_by_a_written_out_statement_is_utc_from_either_database(value):
    assert stored_time(value) == datetime(2022, 1, 1, 0, 5, tzinfo=timezone.utc)
    assert stored_time(None) is None


def test_activating_an_errored_strategy_clears_its_error(client, make_strategy, operator):
    make_strategy("alpha")
    models.Strategy.objects.filter(strategy_id="alpha").update(status="error", last_error="ValueError: boom")
    client.force_login(operator)

    response = client.post(activate_url("alpha"), headers=HTMX)

    assert_switched(response, "alpha")
    assert "boom" not in card(client, "alpha")
    strategy = models.Strategy.objects.get(strategy_id="alpha")
    assert (strategy.status, strategy.last_error) == ("active", "")
    assert models.Event.objects.get(strategy_id="alpha").payload["previous_status"] == "error"


def test_deactivating_an_errored_strategy_keeps_its_error(client, make_strategy, operator):
    make_strategy("alpha")
    models.Strategy.objects.filter(strategy_id="alpha").update(status="error", last_error="ValueError: boom")
    client.force_login(operator)

    client.post(deactivate_url("alpha"), headers=HTMX)

    strategy = models.Strategy.objects.get(strategy_id="alpha")
    assert (strategy.status, strategy.last_error) == ("dormant", "ValueError: boom")


def test_a_plain_form_post_is_redirected_to_the_strategy_page(client, make_strategy, operator):
    make_strategy("alpha")
    client.force_login(operator)

    response = client.post(deactivate_url("alpha"))

    assert response.status_code == 302
    assert response["Location"] == reverse("strategy_detail", args=["alpha"])
    assert models.Strategy.objects.get(strategy_id="alpha").status == "dormant"


def test_the_event_is_published_to_the_strategys_group_once_committed(
    client, make_strategy, operator, redis_url, django_capture_on_commit_callbacks
):
    make_strategy("alpha")
    listener = listen("alpha", 1)
    assert listener.ready.wait(10)
    client.force_login(operator)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(deactivate_url("alpha"), headers=HTMX)
    [message] = listener.join()

    assert_switched(response, "alpha")
    assert len(callbacks) == 1
    assert message["type"] == "desk.event"
    assert message["event"]["type"] == "STRATEGY_DEACTIVATED"
    assert message["event"]["strategy_id"] == "alpha"
    assert message["event"]["sequence"] == 1


@pytest.mark.parametrize("url", [activate_url, deactivate_url], ids=["activate", "deactivate"])
def test_it_rejects_get(client, make_strategy, operator, url):
    make_strategy("alpha")
    client.force_login(operator)
    before = snapshot()

    response = client.get(url("alpha"))

    assert response.status_code == 405
    assert snapshot() == before


@pytest.mark.parametrize("url", [activate_url, deactivate_url], ids=["activate", "deactivate"])
def test_it_returns_404_for_an_unknown_strategy(client, make_strategy, operator, url):
    make_strategy("alpha")
    client.force_login(operator)
    before = snapshot()

    response = client.post(url("nope"), headers=HTMX)

    assert response.status_code == 404
    assert snapshot() == before


@pytest.mark.parametrize("url", [activate_url, deactivate_url], ids=["activate", "deactivate"])
def test_it_checks_the_permission(client, make_strategy, make_user, url):
    make_strategy("alpha", status="error")
    models.Strategy.objects.filter(strategy_id="alpha").update(last_error="ValueError: boom")
    client.force_login(make_user("viewer"))
    before = snapshot()

    response = client.post(url("alpha"), headers=HTMX)

    assert response.status_code == 403
    assert snapshot() == before


@pytest.mark.parametrize("url", [activate_url, deactivate_url], ids=["activate", "deactivate"])
def test_it_checks_access(client, make_strategy, url):
    make_strategy("alpha", status="error")
    before = snapshot()

    response = client.post(url("alpha"), headers=HTMX)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url('alpha')}"
    assert snapshot() == before


def csrf_token_of_the_dashboard(client: Client) -> str:
    """The token the page hands htmx in its hx-headers attribute."""
    html = client.get(reverse("dashboard")).content.decode()
    found = re.search(r"""hx-headers='\{"X-CSRFToken": "([^"]+)"\}'""", html)
    assert found, "the dashboard must give htmx a CSRF token"
    return found.group(1)


def test_it_refuses_a_post_without_the_csrf_token(make_strategy, operator):
    make_strategy("alpha")
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    csrf_token_of_the_dashboard(client)  # the page sets the cookie; the request below still lacks the token
    before = snapshot()

    response = client.post(deactivate_url("alpha"), headers=HTMX)

    assert response.status_code == 403
    assert snapshot() == before


def test_it_refuses_a_post_with_a_wrong_csrf_token(make_strategy, operator):
    make_strategy("alpha")
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    csrf_token_of_the_dashboard(client)
    before = snapshot()

    response = client.post(deactivate_url("alpha"), headers=HTMX | {"X-CSRFToken": "x" * 64})

    assert response.status_code == 403
    assert snapshot() == before


def test_it_accepts_the_csrf_token_in_the_header_as_htmx_sends_it(make_strategy, operator):
    make_strategy("alpha")
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    token = csrf_token_of_the_dashboard(client)

    response = client.post(deactivate_url("alpha"), headers=HTMX | {"X-CSRFToken": token})

    assert_switched(response, "alpha")
    assert models.Strategy.objects.get(strategy_id="alpha").status == "dormant"


def test_deactivating_cancels_pending_orders_so_the_strategy_does_not_trade_on_them_when_it_wakes(
    client, make_strategy, operator, btc_candles
):
    orchestrators.forget_all()
    make_strategy("alpha", fast_period=3, slow_period=8)
    for index, candle in enumerate(btc_candles):
        live.ingest_candle(candle.to_mapping())
        if models.Order.objects.filter(strategy_id="alpha", status="pending").exists():
            break
    else:
        pytest.fail("no order was created on the sample")
    order = models.Order.objects.get(strategy_id="alpha", status="pending")
    client.force_login(operator)

    client.post(deactivate_url("alpha"))
    client.post(activate_url("alpha"))
    live.ingest_candle(btc_candles[index + 1].to_mapping())

    order.refresh_from_db()
    assert order.status == "cancelled"
    assert not models.Fill.objects.filter(order_id=order.order_id).exists()
    cancelled = models.Event.objects.get(strategy_id="alpha", type="ORDER_CANCELLED")
    assert cancelled.payload == {"order_id": order.order_id, "reason": "strategy deactivated"}
    assert "cancelled 1 pending order" in models.ControlAction.objects.get(action="deactivate").detail
    assert models.JournalEntry.objects.filter(strategy_id="alpha", message__startswith="Cancelled pending order").count() == 1
