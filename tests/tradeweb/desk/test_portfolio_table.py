"""The portfolio table partial: the dashboard swaps it in when a heading is clicked and polls it."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.urls import reverse

from tradeweb.desk import models

pytestmark = pytest.mark.django_db

URL = reverse("portfolio_table")


@pytest.fixture
def three(make_strategy):
    """Three strategies of different equity; gamma made a loss, beta a gain."""
    for sid, equity in (("alpha", "10000"), ("beta", "10250.5"), ("gamma", "9800")):
        make_strategy(sid)
        models.Strategy.objects.filter(strategy_id=sid).update(
            equity=Decimal(equity), realized_pnl=Decimal(equity) - 10000,
        )


def rows(html: str) -> list[str]:
    return re.findall(r'<tr data-strategy-id="([^"]+)">', html)


def test_it_works(client, three, make_user):
    client.force_login(make_user())

    response = client.get(f"{URL}?sort=equity&order=desc")

    assert response.status_code == 200
    html = response.content.decode()
    assert html.startswith('<div id="portfolio" class="portfolio-table"') and "<html" not in html
    assert rows(html) == ["beta", "alpha", "gamma"]
    # Fetched again as it is (the same sort) when the dashboard's cards change.
    assert f'data-live-url="{URL}?sort=equity&amp;order=desc"' in html
    assert 'data-chart="[]"' in html  # no candles, no curve
    # A second click on the sorted column turns it round; another column starts from its own first direction.
    assert '<th aria-sort="descending" data-column="equity"><a href="?sort=equity&amp;order=asc"' in html
    assert '<th aria-sort="none" data-column="name"><a href="?sort=name&amp;order=asc"' in html
    assert '<th aria-sort="none" data-column="pnl_total"><a href="?sort=pnl_total&amp;order=desc"' in html
    totals = html[html.index('<tr class="totals">'):]
    assert "<td>30,050.50</td>" in totals and '<td class="gain">50.50</td>' in totals


def test_it_sorts_ascending_and_by_pnl(client, three, make_user):
    client.force_login(make_user())

    assert rows(client.get(f"{URL}?sort=equity&order=asc").content.decode()) == ["gamma", "alpha", "beta"]
    assert rows(client.get(f"{URL}?sort=pnl_total").content.decode()) == ["beta", "alpha", "gamma"]


def test_an_unknown_sort_or_order_falls_back_without_echoing_it(client, three, make_user):
    client.force_login(make_user())

    unknown_sort = client.get(f"{URL}?sort=password&order=desc")
    unknown_order = client.get(f"{URL}?sort=equity&order=%22%3E%3Cb%3E")

    assert unknown_sort.status_code == unknown_order.status_code == 200
    assert rows(unknown_sort.content.decode()) == ["alpha", "beta", "gamma"]
    assert "password" not in unknown_sort.content.decode()
    # An unknown order takes the column's own first direction: high to low for equity.
    assert rows(unknown_order.content.decode()) == ["beta", "alpha", "gamma"]
    assert "<b>" not in unknown_order.content.decode()


def test_it_rejects_post(client, three, make_user):
    client.force_login(make_user(can_control=True))

    assert client.post(URL).status_code == 405


def test_it_checks_access(client, three):
    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={URL}"


def test_it_says_so_without_strategies(client, make_user):
    client.force_login(make_user())

    html = client.get(URL).content.decode()

    assert "No strategies to compare." in html and "<td>Total, 0 strategies</td>" in html
