"""The desk's front page: a card per strategy and the live event feed, for logged-in users only."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tradeweb.desk import models
from tradeweb.desk.control import set_active
from tradeweb.desk.event_feed import RECENT_EVENTS

pytestmark = pytest.mark.django_db

URL = reverse("dashboard")


def test_it_works(client, make_strategy, make_user):
    make_strategy("alpha")
    make_strategy("beta", strategy_class="rsi_mean_reversion", symbol="GBP/USD", status="dormant")
    user = make_user("watcher", can_control=True)
    set_active("alpha", user, False)
    client.force_login(user)

    response = client.get(URL)

    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="card-alpha"' in html
    assert 'id="card-beta"' in html
    assert html.count('class="card status-') == 2
    assert 'data-strategy-id="alpha" data-sequence="1"' in html
    assert "STRATEGY_DEACTIVATED" in html
    assert "Deactivated by watcher, now dormant" in html


def test_it_lists_every_strategy_in_the_event_filter(client, make_strategy, make_user):
    make_strategy("alpha")
    make_strategy("beta", strategy_class="rsi_mean_reversion", symbol="GBP/USD")
    client.force_login(make_user())

    html = client.get(URL).content.decode()

    assert '<input type="checkbox" name="strategy_id" value="alpha" checked> Alpha' in html
    assert '<input type="checkbox" name="strategy_id" value="beta" checked> Beta' in html
    assert '<script id="strategy-ids" type="application/json">["alpha", "beta"]</script>' in html


def test_it_says_so_when_there_are_no_strategies_or_events(client, make_user):
    client.force_login(make_user())

    html = client.get(URL).content.decode()

    assert "No strategies yet." in html
    assert "No events yet." in html


def test_it_shows_only_the_newest_events(client, make_strategy, make_user):
    make_strategy("alpha")
    user = make_user("watcher", can_control=True)
    for number in range(RECENT_EVENTS + 5):
        set_active("alpha", user, number % 2 == 1)
    client.force_login(user)

    html = client.get(URL).content.decode()

    assert models.Event.objects.count() == RECENT_EVENTS + 5
    assert html.count('class="event event-') == RECENT_EVENTS
    assert f'data-sequence="{RECENT_EVENTS + 5}"' in html
    assert 'data-sequence="5"' not in html
    assert html.index(f'data-sequence="{RECENT_EVENTS + 5}"') < html.index(f'data-sequence="{RECENT_EVENTS + 4}"')


def test_it_rejects_post(client, make_user):
    client.force_login(make_user())

    response = client.post(URL)

    assert response.status_code == 405


def test_it_checks_access(client, make_strategy):
    make_strategy("alpha")

    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={URL}"


def test_it_groups_the_cards_by_slot_and_asks_before_a_switch_in_an_exclusive_one(client, make_strategy, make_user):
    make_strategy("alpha")
    make_strategy("beta", status="dormant")
    make_strategy("gbp", strategy_class="rsi_mean_reversion", symbol="GBP/USD", status="dormant")
    models.Slot.objects.filter(symbol="BTC/USD").update(exclusive=True)
    client.force_login(make_user("trader", can_control=True))

    html = client.get(URL).content.decode()

    btc = html.index('aria-label="Slot paper BTC/USD" data-exclusive="true"')
    gbp = html.index('aria-label="Slot paper GBP/USD" data-exclusive="false"')
    assert btc < html.index('id="card-alpha"') < html.index('id="card-beta"') < gbp < html.index('id="card-gbp"')
    assert "exclusive: one active" in html[btc:gbp] and "shared" in html[gbp:]
    beta = html[html.index('id="card-beta"'):gbp]
    assert 'hx-confirm="Switch paper · BTC/USD to Beta? The active strategy of this slot stops taking entries."' in beta
    assert ">Switch to this</button>" in beta
    assert ">Activate</button>" in html[html.index('id="card-gbp"'):]
    assert "hx-confirm" not in html[gbp:]


def test_a_viewer_sees_the_slots_without_the_switch(client, make_strategy, make_user):
    make_strategy("alpha")
    make_strategy("beta", status="dormant")
    models.Slot.objects.update(exclusive=True)
    client.force_login(make_user("viewer"))

    html = client.get(URL).content.decode()

    assert "exclusive: one active" in html
    cards = html[html.index('id="card-alpha"'):html.index('class="feed"')]
    assert "Switch to this" not in html and "<form" not in cards
