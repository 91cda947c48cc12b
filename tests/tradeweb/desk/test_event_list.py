"""The event feed partial, for all strategies or the one picked in the feed's filter."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tradeweb.desk import live
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
