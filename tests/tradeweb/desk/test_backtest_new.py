"""The New backtest form: every field's error on its field (from BacktestSpec.problems() and the configs), the
default period, who may start a backtest, and CSRF. A refused form queues nothing."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from tradeweb.desk import models

pytestmark = pytest.mark.django_db

URL = reverse("backtest_new")


@pytest.fixture
def desk(make_strategy):
    make_strategy("btc-sma", fast_period=10, slow_period=30)
    make_strategy("gbp-rsi", strategy_class="rsi_mean_reversion", symbol="GBP/USD", rsi_period=14)


@pytest.fixture
def operator(make_user):
    return make_user("operator", can_control=True)


def valid(**changes) -> dict:
    data = {"weight_btc-sma": "0.5", "weight_gbp-rsi": "", "start": "2022-01-03T00:00", "end": "2022-01-03T06:00",
            "capital": "20000", "fee": "", "slippage": ""}
    return data | changes


def test_it_works(client, desk, operator, django_capture_on_commit_callbacks):
    client.force_login(operator)

    with django_capture_on_commit_callbacks() as handed_over:
        response = client.post(URL, valid(**{"weight_gbp-rsi": "0.3", "fee": "0.001", "start": "2012-02-01T00:00"}))

    run = models.BacktestRun.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("backtest_progress", args=[run.pk])
    assert (run.status, run.created_by, run.candles_done) == ("queued", operator, 0)
    assert run.request == {
        "strategies": [{"strategy_id": "btc-sma", "weight": "0.5"}, {"strategy_id": "gbp-rsi", "weight": "0.3"}],
        "capital": "20000", "from": "2012-02-01T00:00:00+00:00", "to": "2022-01-03T06:00:00+00:00",
        "fee_rate": "0.001", "slippage": None,
    }
    assert run.task_id and len(handed_over) == 1, "the task is sent once the run is committed"


def test_it_lists_the_strategies_with_their_candles_and_defaults_to_the_whole_period(client, make_strategy, operator):
    make_strategy("btc-sma", fast_period=10, slow_period=30)
    client.force_login(operator)

    page = client.get(URL)

    form = page.context["form"]
    assert [row.strategy.strategy_id for row in form.rows] == ["btc-sma"]
    # Nothing stored on the desk: the shipped BTC/USD minutes, the last one included.
    assert form.initial["start"] == datetime(2021, 12, 31, 23, 1, tzinfo=timezone.utc)
    assert form.initial["end"] == datetime(2022, 2, 1, 5, 32, tzinfo=timezone.utc)
    html = page.content.decode()
    assert 'value="2021-12-31T23:01"' in html and 'value="2022-02-01T05:32"' in html
    assert "shipped: 2021-12-31 23:01 to 2022-02-01 05:32" in html


def test_the_default_period_is_the_range_of_stored_candles_once_there_are_some(client, make_strategy, operator):
    make_strategy("btc-sma", fast_period=10, slow_period=30)
    first = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    for n in range(3):
        models.Candle.objects.create(symbol="BTC/USD", timeframe="1m", time=first + timedelta(minutes=n),
                                     open=Decimal(1), high=Decimal(1), low=Decimal(1), close=Decimal(1))
    client.force_login(operator)

    form = client.get(URL).context["form"]

    assert (form.initial["start"], form.initial["end"]) == (first, first + timedelta(minutes=3))


@pytest.mark.parametrize("changes, field, message", [
    ({"weight_btc-sma": "0"}, "weight_btc-sma", "must be above 0, got 0"),
    ({"weight_btc-sma": "-0.2"}, "weight_btc-sma", "must be above 0, got -0.2"),
    ({"weight_btc-sma": "half"}, "weight_btc-sma", "Enter a number."),
    ({"weight_btc-sma": "0.7", "weight_gbp-rsi": "0.6", "start": "2012-02-01T00:00"}, "__all__",
     "weights: add up to 1.3, more than 1"),
    ({"weight_btc-sma": ""}, "__all__", "Give at least one strategy a weight."),
    ({"weight_gbp-rsi": "0.2"}, "weight_gbp-rsi", "no candles of GBP/USD 1m in this period (shipped from 2012-02-01"),
    ({"capital": "0"}, "capital", "must be above 0, got 0"),
    ({"capital": "NaN"}, "capital", "Enter a number."),
    ({"start": "2022-01-04T00:00"}, "end", "starts at 2022-01-04T00:00:00+00:00, not before its end"),
    ({"start": "yesterday"}, "start", "Enter a valid date/time."),
    ({"end": "2022-13-01T00:00"}, "end", "Enter a valid date/time."),
    ({"fee": "0.5"}, "fee", "must be between 0 and 0.1"),
    ({"slippage": "-0.001"}, "slippage", "must be between 0 and 0.1"),
])
def test_each_wrong_input_is_refused_with_the_message_on_its_field(client, desk, operator, changes, field, message):
    client.force_login(operator)

    response = client.post(URL, valid(**changes))

    assert response.status_code == 400
    errors = response.context["form"].errors
    assert any(text.startswith(message) for text in errors[field]), errors
    assert list(errors) == [field], "only the field at fault"
    html = response.content.decode()
    shown = re.search(r'<td class="field">.*?</td>', html.split(f'id="row-{field[7:]}"')[1], re.S)[0] \
        if field.startswith("weight_") else html
    assert message.replace("'", "&#x27;") in shown
    assert not models.BacktestRun.objects.exists()


def test_it_checks_access(client, desk, make_user):
    assert client.get(URL)["Location"].startswith(reverse("login"))
    client.force_login(make_user("viewer"))

    assert client.get(URL).status_code == 403
    assert client.post(URL, valid()).status_code == 403
    assert "New backtest" not in client.get(reverse("backtest_list")).content.decode()
    assert not models.BacktestRun.objects.exists()


def test_the_list_links_the_form_for_an_operator(client, desk, operator):
    client.force_login(operator)

    assert f'href="{URL}"' in client.get(reverse("backtest_list")).content.decode()


def test_it_rejects_other_methods(client, desk, operator):
    client.force_login(operator)

    assert client.put(URL, valid()).status_code == 405
    assert not models.BacktestRun.objects.exists()


def test_it_refuses_a_post_without_the_csrf_token(desk, operator):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    client.get(URL)  # sets the CSRF cookie; the post below still lacks the token

    assert client.post(URL, valid()).status_code == 403
    assert client.post(URL, valid(csrfmiddlewaretoken="x" * 64)).status_code == 403
    assert not models.BacktestRun.objects.exists()


def test_it_accepts_the_token_the_form_carries(desk, operator):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', client.get(URL).content.decode())[1]

    assert client.post(URL, valid(csrfmiddlewaretoken=token)).status_code == 302
    assert models.BacktestRun.objects.get().status == "queued"
