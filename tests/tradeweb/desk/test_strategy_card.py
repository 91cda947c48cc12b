"""The strategy card partial that the dashboard refreshes when one of the strategy's events arrives."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest
from django.template.defaultfilters import floatformat
from django.urls import reverse

from orchestrator.datasets import load_candles
from tests.tradeweb.desk.test_equity_samples import take
from tradeweb.desk import models, strategy_figures

pytestmark = pytest.mark.django_db
# Session, user, permissions, the strategy, its slot, and its figures (market window 2, fills to replay, last
# events 2, open positions, trades).
CARD_QUERIES = 12


def url(strategy_id: str) -> str:
    return reverse("strategy_card", args=[strategy_id])


def test_it_works(client, make_strategy, make_user):
    strategy = make_strategy("alpha", capital="5000")
    models.Position.objects.create(
        strategy=strategy, position_id="alpha-1", symbol="BTC/USD", side="long", quantity=Decimal("0.25"),
        initial_quantity=Decimal("0.25"), entry_price=Decimal("41000.5"), entry_fee=Decimal("1"),
        opened_at=datetime(2022, 1, 1, tzinfo=timezone.utc),
    )
    models.Position.objects.create(
        strategy=strategy, position_id="alpha-0", symbol="BTC/USD", side="short", quantity=Decimal("0"),
        initial_quantity=Decimal("1"), entry_price=Decimal("40000"), entry_fee=Decimal("1"),
        opened_at=datetime(2021, 12, 31, tzinfo=timezone.utc), closed_at=datetime(2022, 1, 1, tzinfo=timezone.utc),
    )
    client.force_login(make_user())

    response = client.get(url("alpha"))

    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<article id="card-alpha"')
    assert "<html" not in html
    assert '<dd class="equity" data-mark="equity">5,000.00</dd>' in html
    assert '<p class="position">long 0.250000 @ 41000.5000</p>' in html
    assert "short" not in html  # the closed position is not on the card


def test_it_shows_flat_and_the_last_error(client, make_strategy, make_user):
    make_strategy("alpha")
    models.Strategy.objects.filter(strategy_id="alpha").update(status="error", last_error="ValueError: boom")
    client.force_login(make_user())

    html = client.get(url("alpha")).content.decode()

    assert "Flat" in html
    assert '<p class="error">ValueError: boom</p>' in html
    assert 'data-status="error"' in html


def test_it_shows_the_control_button_only_to_users_with_the_permission(client, make_strategy, make_user):
    make_strategy("alpha")
    make_strategy("beta", status="dormant")

    client.force_login(make_user("viewer"))
    assert 'class="control"' not in client.get(url("alpha")).content.decode()
    assert 'class="control"' not in client.get(url("beta")).content.decode()

    client.force_login(make_user("operator", can_control=True))
    active = client.get(url("alpha")).content.decode()
    dormant = client.get(url("beta")).content.decode()
    assert f'hx-post="{reverse("strategy_deactivate", args=["alpha"])}"' in active
    assert ">Deactivate</button>" in active
    assert f'hx-post="{reverse("strategy_activate", args=["beta"])}"' in dormant
    assert ">Activate</button>" in dormant


def test_it_returns_404_for_an_unknown_strategy(client, make_user):
    client.force_login(make_user())

    response = client.get(url("nope"))

    assert response.status_code == 404


def test_it_rejects_post(client, make_strategy, make_user):
    make_strategy("alpha")
    client.force_login(make_user(can_control=True))

    response = client.post(url("alpha"))

    assert response.status_code == 405


def test_it_checks_access(client, make_strategy):
    make_strategy("alpha")

    response = client.get(url("alpha"))

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url('alpha')}"


@pytest.mark.parametrize(("status", "warned"), [("dormant", True), ("error", True), ("active", False)])
def test_it_warns_that_an_inactive_strategys_open_position_is_not_watched(client, make_strategy, make_user, status, warned):
    strategy = make_strategy("alpha", status=status)
    models.Position.objects.create(
        strategy=strategy, position_id="alpha-1", symbol="BTC/USD", side="long", quantity=Decimal("0.25"),
        initial_quantity=Decimal("0.25"), entry_price=Decimal("41000.5"), entry_fee=Decimal("1"),
        opened_at=datetime(2022, 1, 1, tzinfo=timezone.utc), stop_price=Decimal("40000"),
    )
    client.force_login(make_user())

    html = client.get(url("alpha")).content.decode()

    assert ('class="warning"' in html) is warned


def test_it_shows_the_figures_of_the_dashboard_in_the_same_few_queries_however_long_the_history(
    client, make_strategy, make_user, fresh_worker, django_assert_max_num_queries
):
    make_strategy("alpha", timeframe="5m", fast_period=3, slow_period=8, stop_loss_pct="0.003", take_profit_pct="0.004")
    client.force_login(make_user())

    def card() -> tuple[str, int]:
        with django_assert_max_num_queries(CARD_QUERIES) as queries:
            html = client.get(url("alpha")).content.decode()
        return html, len(queries)

    take(load_candles("BTC/USD", "5m", limit=100))
    short, few = card()
    take(load_candles("BTC/USD", "5m", limit=340)[100:])
    html, many = card()

    assert few == many
    strategy = models.Strategy.objects.get(strategy_id="alpha")
    figures = strategy_figures.figures([strategy])["alpha"]
    assert models.Position.objects.filter(strategy=strategy, closed_at__isnull=False).count() == figures.trades > 5
    assert f'<polyline points="{figures.sparkline}"' in html and f'points="{figures.sparkline}"' not in short
    assert f'{floatformat(figures.pnl_today, "2g")}</dd>' in html
