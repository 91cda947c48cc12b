"""The desk's front page: a card per strategy, the portfolio table and combined chart, and the live event feed, for
logged-in users only."""

from __future__ import annotations

import json
import re
from html import unescape
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from django.template.defaultfilters import floatformat
from django.urls import reverse
from django.utils.html import escape

from orchestrator.datasets import load_candles
from tests.tradeweb.desk.test_equity_samples import take
from tradeweb.desk import models, strategy_figures
from tradeweb.desk.control import set_active
from tradeweb.desk.event_feed import RECENT_EVENTS
from tradeweb.desk.event_sentences import sentence

pytestmark = pytest.mark.django_db

URL = reverse("dashboard")
# Session, user, permissions, strategies, their figures (market windows 2, fills to replay, last events 2, open
# positions, trades), exclusive slots, the feed (its strategies' sequences, then its events), account limits.
DASHBOARD_QUERIES = 15


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


@pytest.fixture
def desk(make_strategy, make_user, fresh_worker):
    """Two strategies that traded a day of real BTC/USD five-minute candles, one switched off by an operator after,
    and one on GBP/USD that never took a candle."""
    make_strategy("alpha", timeframe="5m", fast_period=3, slow_period=8, stop_loss_pct="0.003", take_profit_pct="0.004")
    make_strategy("beta", timeframe="5m", fast_period=5, slow_period=13, allow_short=True, stop_loss_pct="0.002")
    make_strategy("gbp", strategy_class="rsi_mean_reversion", symbol="GBP/USD", status="dormant")
    take(load_candles("BTC/USD", "5m", limit=340))
    operator = make_user("operator", can_control=True)
    assert set_active("beta", operator, False).status == "dormant"  # it was flat after the last candle
    return {s.strategy_id: s for s in models.Strategy.objects.all()}


def figures_of(html: str, strategy_id: str) -> str:
    """The card of one strategy in a page."""
    start = html.index(f'id="card-{strategy_id}"')
    return html[start:html.index("</article>", start)]


def test_each_card_shows_its_status_and_why_its_equity_sparkline_pnl_today_exposure_and_last_event(
    desk, client, make_user
):
    client.force_login(make_user("viewer"))

    html = client.get(URL).content.decode()

    alpha, beta, gbp = (figures_of(html, sid) for sid in ("alpha", "beta", "gbp"))
    samples = strategy_figures.figures(list(desk.values()))
    assert f'<polyline points="{samples["alpha"].sparkline}"' in alpha and 'data-points="97"' in alpha
    assert f'<dd class="pnl-today {"loss" if samples["alpha"].pnl_today < 0 else "gain"}">' \
           f'{floatformat(samples["alpha"].pnl_today, "2g")}</dd>' in alpha
    assert "Today <small>01-02 UTC</small>" in alpha
    last = models.Event.objects.filter(strategy_id="alpha").first()
    said = sentence(last.to_mapping())
    assert f'>{last.time:%Y-%m-%d %H:%M}</time> <span class="{said.tone}">{escape(said.text)}</span></p>' in alpha
    assert '<span class="status" data-status="dormant">Dormant</span>' in beta
    assert '<p class="status-reason">Deactivated by operator, now dormant</p>' in beta
    # Its last event: the entry it had waiting for the next open, cancelled as it was switched off.
    cancelled = sentence(models.Event.objects.filter(strategy_id="beta").first().to_mapping())
    assert cancelled.text.startswith("Order cancelled") and f"{escape(cancelled.text)}</span></p>" in beta
    assert '<p class="status-reason">Not activated yet</p>' in gbp
    assert "No events yet." in gbp and "<svg" not in gbp
    assert "<form" not in alpha + beta + gbp


def test_a_card_shows_the_open_exposure_at_the_last_close_as_a_share_of_equity(client, make_strategy, make_user):
    strategy = make_strategy("alpha", capital="10000")
    models.Strategy.objects.filter(strategy_id="alpha").update(last_close=Decimal("40000"), equity=Decimal("10000"))
    models.Position.objects.create(
        strategy=strategy, position_id="alpha-1", symbol="BTC/USD", side="long", quantity=Decimal("0.05"),
        initial_quantity=Decimal("0.05"), entry_price=Decimal("41000"), entry_fee=Decimal("1"),
        opened_at=datetime(2022, 1, 1, tzinfo=timezone.utc),
    )
    client.force_login(make_user())

    html = client.get(URL).content.decode()

    assert '<dd class="exposure">2,000.00 <small>20%</small></dd>' in figures_of(html, "alpha")


def test_the_card_says_halted_with_its_status_when_its_risk_limits_halted_it(client, make_strategy, make_user):
    make_strategy("alpha")
    models.Strategy.objects.filter(strategy_id="alpha").update(snapshot={"risk": {"halted": "drawdown 3% from peak"}})
    client.force_login(make_user())

    card = figures_of(client.get(URL).content.decode(), "alpha")

    assert '<span class="status" data-status="halted">Halted</span>' in card
    assert "Halted by its risk limits: drawdown 3% from peak." in card


def test_the_portfolio_table_compares_every_strategy_with_a_totals_row(desk, client, make_user):
    client.force_login(make_user())

    html = client.get(URL).content.decode()

    table = html[html.index('<table class="grid portfolio">'):html.index("</table>")]
    rows = re.findall(r'<tr data-strategy-id="([^"]+)">', table)
    assert rows == ["alpha", "beta", "gbp"]
    figures = strategy_figures.figures(list(desk.values()))
    totals = table[table.index('<tr class="totals">'):]
    assert f"<td>{floatformat(sum(f.equity for f in figures.values()), '2g')}</td>" in totals
    assert f"<td>{sum(f.trades for f in figures.values())}</td>" in totals
    assert "<td>Total, 3 strategies</td>" in totals and "<td>1 active, 2 dormant</td>" in totals
    wins, trades = sum(f.wins for f in figures.values()), sum(f.trades for f in figures.values())
    assert trades > 10 and f"{floatformat(wins / trades * 100, 1)}%" in totals
    assert 'id="combined-chart" class="chart combined" data-points="97"' in html
    series = json.loads(unescape(re.search(r'<div id="portfolio" [^>]*data-chart="([^"]*)"', html).group(1)))
    assert len(series) == 97 and series[-1][1] == pytest.approx(float(sum(s.current_equity for s in desk.values())))


def test_the_portfolio_table_sorts_on_the_server_by_the_query_string(desk, client, make_user):
    trades = {sid: models.Position.objects.filter(strategy_id=sid, closed_at__isnull=False).count() for sid in desk}
    wins = {sid: models.Position.objects.filter(strategy_id=sid, realized_pnl__gt=0).count() / trades[sid]
            for sid in ("alpha", "beta")}
    assert trades["alpha"] != trades["beta"] and wins["alpha"] != wins["beta"]
    client.force_login(make_user())

    def rows(query: str) -> list[str]:
        return re.findall(r'<tr data-strategy-id="([^"]+)">', client.get(f"{URL}?{query}").content.decode())

    assert rows("sort=trades&order=desc") == sorted(desk, key=lambda sid: -trades[sid])
    assert rows("sort=trades&order=asc") == sorted(desk, key=lambda sid: trades[sid])
    assert rows("sort=equity&order=desc") == sorted(desk, key=lambda sid: -desk[sid].current_equity)
    assert rows("sort=name&order=desc") == ["gbp", "beta", "alpha"]
    # A strategy without trades has no win rate: last, whichever the direction.
    assert rows("sort=win_rate&order=asc") == sorted(wins, key=wins.get) + ["gbp"]
    assert rows("sort=win_rate&order=desc") == sorted(wins, key=wins.get, reverse=True) + ["gbp"]


def test_an_unknown_sort_falls_back_to_the_names(desk, client, make_user):
    client.force_login(make_user())

    response = client.get(f"{URL}?sort=<script>&order=sideways")

    assert response.status_code == 200
    html = response.content.decode()
    assert re.findall(r'<tr data-strategy-id="([^"]+)">', html) == ["alpha", "beta", "gbp"]
    assert '<th aria-sort="ascending" data-column="name">' in html
    assert "<script>&" not in html


def test_the_number_of_queries_does_not_grow_with_the_number_of_strategies(
    client, make_strategy, make_user, django_assert_max_num_queries, fresh_worker
):
    def queries(count: int) -> int:
        for n in range(count):
            sid = f"s-{count}-{n}"
            strategy = make_strategy(sid, symbol=["BTC/USD", "ETH/USD"][n % 2], status=["active", "dormant"][n % 2])
            set_active(sid, user, n % 2 == 0)
            models.Position.objects.create(
                strategy=strategy, position_id=f"{sid}-1", symbol=strategy.symbol, side="long", quantity=Decimal("1"),
                initial_quantity=Decimal("1"), entry_price=Decimal("100"), entry_fee=Decimal("0"),
                opened_at=datetime(2022, 1, 1, tzinfo=timezone.utc),
            )
        with django_assert_max_num_queries(DASHBOARD_QUERIES) as captured:
            assert client.get(URL).status_code == 200
        return len(captured)

    user = make_user("trader", can_control=True)
    client.force_login(user)
    models.Market.objects.create(symbol="BTC/USD", timeframe="1m")
    take(load_candles("BTC/USD", limit=30))

    few = queries(2)
    many = queries(20)

    assert models.Strategy.objects.count() == 22
    assert few == many
