"""The event feed partial, for the strategies and kinds of event picked in the feed's filter (all by default)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tradeweb.desk import live, models
from tradeweb.desk.control import set_active

pytestmark = pytest.mark.django_db

URL = reverse("event_list")


@pytest.fixture
def events_of_two_strategies(make_strategy, make_user):
    """alpha gets two events, beta one, and the system feed one rejected candle of a market nobody trades."""
    make_strategy("alpha")
    make_strategy("beta", strategy_class="rsi_mean_reversion", symbol="GBP/USD")
    user = make_user("operator", can_control=True)
    set_active("alpha", user, False)
    set_active("beta", user, False)
    set_active("alpha", user, True)
    live.ingest_candle({"symbol": "ETH/USD", "timeframe": "1m", "time": "2022-01-01T00:00:00+00:00",
                        "open": "-1", "high": "1", "low": "1", "close": "1"})


def test_it_works(client, make_user, events_of_two_strategies):
    client.force_login(make_user())

    response = client.get(URL)

    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<ol id="event-list"')
    assert html.count('class="event event-') == 4
    assert html.count('data-strategy-id="alpha"') == 2
    assert html.count('data-strategy-id="beta"') == 1
    assert '<span class="event-strategy">system</span>' in html


def test_it_shows_only_the_events_of_the_picked_strategy(client, make_user, events_of_two_strategies):
    client.force_login(make_user())

    response = client.get(URL, {"strategy_id": "alpha"})

    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('class="event event-') == 2
    assert 'data-strategy-id="alpha" data-sequence="2"' in html
    assert 'data-strategy-id="alpha" data-sequence="1"' in html
    assert html.index('data-sequence="2"') < html.index('data-sequence="1"')
    assert "beta" not in html
    assert "system" not in html


def test_it_shows_the_events_of_several_picked_strategies_without_the_system_ones(
    client, make_strategy, make_user, events_of_two_strategies
):
    make_strategy("gamma")
    client.force_login(make_user())

    html = client.get(URL, {"strategy_id": ["alpha", "beta"]}).content.decode()

    assert html.count('class="event event-') == 3
    assert html.count('data-strategy-id="alpha"') == 2 and html.count('data-strategy-id="beta"') == 1
    assert "system" not in html
    # The sequences the live stream goes on from: the picked strategies' own, as the list was read.
    assert 'data-sequences="{&quot;alpha&quot;: 2, &quot;beta&quot;: 1}"' in html


def test_it_shows_only_the_picked_kinds_of_event(client, make_user, events_of_two_strategies):
    client.force_login(make_user())

    control = client.get(URL, {"kind": "control"}).content.decode()
    data = client.get(URL, {"kind": "data"}).content.decode()
    both = client.get(URL, {"kind": ["data", "control"]}).content.decode()

    assert control.count('class="event event-strategy_') == control.count('class="event event-') == 3
    assert "Deactivated by operator, now dormant" in control and "Activated by operator (was dormant)" in control
    assert data.count('class="event event-data_rejected kind-data tone-loss"') == data.count('class="event event-') == 1
    assert '<span class="event-strategy">system</span>' in data
    assert "Rejected a candle of ETH/USD 1m: " in data
    assert both.count('class="event event-') == 4


def test_strategies_and_kinds_narrow_the_list_together(client, make_user, events_of_two_strategies):
    client.force_login(make_user())

    html = client.get(URL, {"strategy_id": "alpha", "kind": ["control", "order"]}).content.decode()
    nothing = client.get(URL, {"strategy_id": "alpha", "kind": "data"}).content.decode()

    assert html.count('class="event event-') == html.count('data-strategy-id="alpha"') == 2
    assert "No events yet." in nothing and 'class="event event-' not in nothing


def test_events_of_a_type_the_feed_does_not_know_are_the_other_kind(client, make_user, events_of_two_strategies):
    models.Event.objects.create(strategy_id="beta", sequence=2, type="MARGIN_CALL", symbol="GBP/USD",
                                time="2022-01-01T00:00:00+00:00", payload={"level": "0.8"})
    client.force_login(make_user())

    others = client.get(URL, {"kind": "other"}).content.decode()
    known = client.get(URL, {"kind": ["control", "data"]}).content.decode()

    assert others.count('class="event event-') == 1
    assert 'class="event event-margin_call kind-other"' in others and "Margin call: level=0.8" in others
    assert "MARGIN_CALL" not in known.replace('data-type="MARGIN_CALL"', "") and known.count('class="event event-') == 4


def test_a_rare_kind_is_read_through_the_type_index_without_scanning_every_event(
        client, make_user, events_of_two_strategies):
    if connection.vendor != "postgresql":
        pytest.skip("the plan asserted is PostgreSQL's")
    models.Event.objects.bulk_create([
        models.Event(strategy_id="alpha", sequence=100 + n, type="ORDER_FILLED", symbol="BTC/USD",
                     time="2022-01-01T00:00:00+00:00")
        for n in range(5_000)
    ])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE desk_event")
    client.force_login(make_user())

    with CaptureQueriesContext(connection) as queries:
        control = client.get(URL, {"kind": "control"}).content.decode()
    (feed,) = [query["sql"] for query in queries.captured_queries if 'FROM "desk_event"' in query["sql"]]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {feed}")
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert control.count('class="event event-') == 3
    assert "event_type_recent" in plan and "Seq Scan" not in plan, plan


def test_it_says_so_when_the_strategy_has_no_events(client, make_strategy, make_user, events_of_two_strategies):
    make_strategy("gamma")
    client.force_login(make_user())

    html = client.get(URL, {"strategy_id": "gamma"}).content.decode()

    assert "No events yet." in html
    assert 'class="event event-' not in html


def test_it_returns_404_for_an_unknown_strategy(client, make_user, events_of_two_strategies):
    client.force_login(make_user())

    response = client.get(URL, {"strategy_id": "nope"})

    assert response.status_code == 404


def test_it_returns_404_when_any_picked_strategy_is_unknown(client, make_user, events_of_two_strategies):
    client.force_login(make_user())

    response = client.get(URL, {"strategy_id": ["alpha", "nope"]})

    assert response.status_code == 404
    assert "No such strategy." in response.content.decode()


def test_it_returns_400_for_an_unknown_kind_without_echoing_it(client, make_user, events_of_two_strategies):
    client.force_login(make_user())

    response = client.get(URL, {"kind": ["control", "<b>gossip</b>"]})

    assert response.status_code == 400
    html = response.content.decode()
    assert "No such kind of event." in html and "gossip" not in html


def test_it_refuses_more_strategies_than_a_filter_may_name(client, make_user, events_of_two_strategies):
    client.force_login(make_user())

    response = client.get(URL, {"strategy_id": ["alpha"] + [f"s{n}" for n in range(200)]})

    assert response.status_code == 404


def test_it_rejects_post(client, make_user):
    client.force_login(make_user())

    response = client.post(URL)

    assert response.status_code == 405


def test_it_checks_access(client, events_of_two_strategies):
    response = client.get(URL, {"strategy_id": "alpha"})

    assert response.status_code == 302
    assert response["Location"].startswith(f"{reverse('login')}?next=")


@pytest.mark.parametrize("crafted", [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "alpha<svg/onload=alert(1)>",
    "a" * 65,
])
def test_it_never_echoes_a_crafted_strategy_id(client, make_user, events_of_two_strategies, crafted):
    client.force_login(make_user())

    response = client.get(URL, {"strategy_id": crafted})

    assert response.status_code == 404
    html = response.content.decode()
    assert "No such strategy." in html
    assert "<script" not in html and "<img" not in html and "<svg" not in html and "alert" not in html
    assert response["Content-Type"].startswith("text/html")
