"""The activity partial: positions, trades and journal of one strategy, refreshed live on its page."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils.html import escape

from tradeweb.desk import orchestrators, live, models

pytestmark = pytest.mark.django_db


def url(strategy_id: str) -> str:
    return reverse("strategy_activity", args=[strategy_id])


def test_it_works(client, make_strategy, make_user, btc_candles):
    orchestrators.forget_all()
    make_strategy("alpha", fast_period=3, slow_period=8)
    make_strategy("beta", fast_period=4, slow_period=12)
    for candle in btc_candles[:150]:
        live.ingest_candle(candle.to_mapping())
    client.force_login(make_user())

    response = client.get(url("alpha"))

    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-live-url="/strategies/alpha/activity/"' in html
    alpha_fill = models.Fill.objects.filter(strategy_id="alpha").first()
    assert alpha_fill is not None, "the sample must trade"
    assert alpha_fill.order_id in html
    assert not any(f.order_id in html for f in models.Fill.objects.filter(strategy_id="beta"))
    assert escape(models.JournalEntry.objects.filter(strategy_id="alpha").first().message) in html


def test_it_rejects_post(client, make_strategy, make_user):
    make_strategy("alpha")
    client.force_login(make_user())
    assert client.post(url("alpha")).status_code == 405


def test_it_returns_404_for_an_unknown_strategy(client, make_user):
    client.force_login(make_user())
    assert client.get(url("ghost")).status_code == 404


def test_it_checks_access(client, make_strategy):
    make_strategy("alpha")
    response = client.get(url("alpha"))
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url('alpha')}"
