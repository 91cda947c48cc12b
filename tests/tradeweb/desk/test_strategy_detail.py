"""One strategy's page: its positions, trades, journal, events and control actions, and nobody else's."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tradeweb.desk import orchestrators, live, models
from tradeweb.desk.control import set_active

pytestmark = pytest.mark.django_db


def url(strategy_id: str) -> str:
    return reverse("strategy_detail", args=[strategy_id])


@pytest.fixture
def two_traded_strategies(make_strategy, make_user, btc_candles):
    """Two BTC strategies with different SMA periods, both traded over real candles, each switched once."""
    orchestrators.forget_all()
    alpha = make_strategy("alpha", fast_period=3, slow_period=8)
    beta = make_strategy("beta", fast_period=4, slow_period=12)
    for candle in btc_candles:
        live.ingest_candle(candle.to_mapping())
    orchestrators.forget_all()
    set_active("alpha", make_user("alice", can_control=True), False)
    set_active("beta", make_user("bob", can_control=True), False)
    for strategy in (alpha, beta):
        assert models.Fill.objects.filter(strategy=strategy).exists(), "both strategies must trade for this test"
    return alpha, beta


def test_it_works(client, make_user, two_traded_strategies):
    alpha, _ = two_traded_strategies
    client.force_login(make_user())

    response = client.get(url("alpha"))

    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="card-alpha"' in html
    assert "version 1" in html
    for position in models.Position.objects.filter(strategy=alpha)[:100]:
        assert f"<td>{position.position_id}</td>" in html
    for fill in models.Fill.objects.filter(strategy=alpha)[:100]:
        assert f"<td>{fill.order_id}</td>" in html
    assert "SMA 3 crossed above SMA 8" in html
    assert "<td>alice</td><td>deactivate</td><td>status active -&gt; dormant</td>" in html
    last = models.Strategy.objects.get(strategy_id="alpha").last_sequence
    assert f'data-strategy-id="alpha" data-sequence="{last}"' in html


def test_it_shows_nothing_of_another_strategy(client, make_user, two_traded_strategies):
    client.force_login(make_user())

    html = client.get(url("alpha")).content.decode()

    assert "beta-" not in html  # every order and position id of beta starts with its id
    assert "SMA 4 crossed" not in html
    assert "bob" not in html
    assert 'data-strategy-id="beta"' not in html
    assert 'id="card-beta"' not in html
    assert '<script id="strategy-ids" type="application/json">["alpha"]</script>' in html


def test_it_shows_empty_tables_for_a_strategy_that_never_traded(client, make_strategy, make_user):
    make_strategy("alpha")
    client.force_login(make_user())

    html = client.get(url("alpha")).content.decode()

    assert "No positions yet." in html
    assert "No trades yet." in html
    assert "No control actions yet." in html
    assert "No events yet." in html


def test_it_returns_404_for_an_unknown_strategy(client, make_strategy, make_user):
    make_strategy("alpha")
    client.force_login(make_user())

    response = client.get(url("nope"))

    assert response.status_code == 404


def test_it_rejects_post(client, make_strategy, make_user):
    make_strategy("alpha")
    client.force_login(make_user())

    response = client.post(url("alpha"))

    assert response.status_code == 405


def test_it_checks_access(client, make_strategy):
    make_strategy("alpha")

    response = client.get(url("alpha"))

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url('alpha')}"
