"""The admin: a strategy's config is checked against its class before saving; trading rows are read-only."""

from __future__ import annotations

import html
import json
import re
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from django.urls import reverse

from tradeweb.desk import models

pytestmark = pytest.mark.django_db

T0 = datetime(2022, 1, 1, tzinfo=timezone.utc)


def change_url(strategy: models.Strategy) -> str:
    return reverse("admin:desk_strategy_change", args=[strategy.pk])


def form_data(client, strategy: models.Strategy, **changes) -> dict:
    """What the change form posts when nothing is edited, with `changes` applied on top."""
    page = client.get(change_url(strategy))
    assert page.status_code == 200
    # The config has a callable default, so the form also carries its initial value, as a browser posts it.
    initial = re.search(r'<input type="hidden" name="initial-config" value="([^"]*)"', page.content.decode())
    assert initial, "the change form must carry the config's initial value"
    strategy.refresh_from_db()
    data = {
        "initial-config": html.unescape(initial.group(1)),
        "strategy_id": strategy.strategy_id,
        "name": strategy.name,
        "strategy_class": strategy.strategy_class,
        "config": json.dumps(strategy.config),
        "symbol": strategy.symbol,
        "timeframe": strategy.timeframe,
        "status": strategy.status,
        "mode": strategy.mode,
        "capital": str(strategy.capital),
        "_save": "Save",
    }
    data.update(changes)
    return data


def stored(strategy: models.Strategy) -> dict:
    return models.Strategy.objects.filter(pk=strategy.pk).values().get()


def test_it_saves_a_valid_config_normalised_and_bumps_the_config_version(admin_client, make_strategy):
    strategy = make_strategy("alpha", fast_period=5, slow_period=20)
    data = form_data(admin_client, strategy, config=json.dumps({"fast_period": "4", "slow_period": 12}))

    response = admin_client.post(change_url(strategy), data)

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:desk_strategy_changelist")
    strategy.refresh_from_db()
    assert strategy.config["fast_period"] == 4
    assert strategy.config["slow_period"] == 12
    assert strategy.config["stop_loss_pct"] == "0.02"  # defaults are written out, not left implicit
    assert strategy.config_version == 2


def test_saving_without_a_change_keeps_the_config_version(admin_client, make_strategy):
    strategy = make_strategy("alpha")

    response = admin_client.post(change_url(strategy), form_data(admin_client, strategy))

    assert response.status_code == 302
    assert stored(strategy)["config_version"] == 1


def test_renaming_a_strategy_keeps_the_config_version(admin_client, make_strategy):
    strategy = make_strategy("alpha")

    response = admin_client.post(change_url(strategy), form_data(admin_client, strategy, name="Renamed"))

    assert response.status_code == 302
    assert stored(strategy)["name"] == "Renamed"
    assert stored(strategy)["config_version"] == 1


def test_changing_the_capital_bumps_the_config_version(admin_client, make_strategy):
    strategy = make_strategy("alpha")

    response = admin_client.post(change_url(strategy), form_data(admin_client, strategy, capital="2500"))

    assert response.status_code == 302
    assert stored(strategy)["capital"] == Decimal("2500")
    assert stored(strategy)["config_version"] == 2


@pytest.mark.parametrize(
    "config, error",
    [
        ({"fast_period": 50, "slow_period": 10}, "slow_period: must be longer than fast_period (50)"),
        ({"fast_period": "x"}, "fast_period: must be a whole number"),
        ({"fast_period": 3, "fastperiod": 4}, "fastperiod: is not a setting of SmaCrossoverConfig"),
        ([3, 8], "config: must be a JSON object"),
    ],
    ids=["fast-not-shorter", "not-a-number", "unknown-key", "not-an-object"],
)
def test_it_shows_config_errors_and_saves_nothing(admin_client, make_strategy, config, error):
    strategy = make_strategy("alpha")
    data = form_data(admin_client, strategy, config=json.dumps(config), name="Should not be saved")
    before = stored(strategy)

    response = admin_client.post(change_url(strategy), data)

    assert response.status_code == 200
    assert error in response.content.decode()
    assert any(error in message for message in response.context["adminform"].form.errors["config"])
    assert stored(strategy) == before


def test_it_never_saves_an_unknown_strategy_class(admin_client, make_strategy):
    strategy = make_strategy("alpha")
    data = form_data(admin_client, strategy, strategy_class="martingale", name="Should not be saved")
    before = stored(strategy)

    response = admin_client.post(change_url(strategy), data)

    assert response.status_code == 200
    assert "strategy_class" in response.context["adminform"].form.errors
    assert "martingale is not one of the available choices" in response.content.decode()
    assert stored(strategy) == before


def test_it_checks_the_config_against_the_new_strategy_class(admin_client, make_strategy):
    strategy = make_strategy("alpha")  # an SMA config, which RSI mean reversion does not understand
    data = form_data(admin_client, strategy, strategy_class="rsi_mean_reversion")
    before = stored(strategy)

    response = admin_client.post(change_url(strategy), data)

    assert response.status_code == 200
    assert "fast_period: is not a setting of RsiMeanReversionConfig" in response.content.decode()
    assert stored(strategy) == before


def test_it_rejects_a_malformed_json_config(admin_client, make_strategy):
    strategy = make_strategy("alpha")
    data = form_data(admin_client, strategy, config='{"fast_period": 3,')
    before = stored(strategy)

    response = admin_client.post(change_url(strategy), data)

    assert response.status_code == 200
    assert "config" in response.context["adminform"].form.errors
    assert stored(strategy) == before


def test_it_adds_a_strategy_with_its_config_normalised(admin_client):
    data = {
        "strategy_id": "new-one", "name": "New one", "strategy_class": "sma_crossover",
        "config": json.dumps({"fast_period": 3, "slow_period": "8"}), "symbol": "BTC/USD", "timeframe": "1m",
        "status": "dormant", "mode": "paper", "capital": "1000", "_save": "Save",
    }

    response = admin_client.post(reverse("admin:desk_strategy_add"), data)

    assert response.status_code == 302
    strategy = models.Strategy.objects.get(strategy_id="new-one")
    assert (strategy.config["fast_period"], strategy.config["slow_period"]) == (3, 8)
    assert strategy.config_version == 1


def test_the_strategy_id_cannot_be_changed_once_the_strategy_exists(admin_client, make_strategy):
    strategy = make_strategy("alpha")
    models.Position.objects.create(
        strategy=strategy, position_id="alpha-1", symbol="BTC/USD", side="long", quantity=Decimal("0.1"),
        initial_quantity=Decimal("0.1"), entry_price=Decimal("46000"), entry_fee=Decimal("1.84"), opened_at=T0,
    )
    models.Event.objects.create(strategy_id="alpha", sequence=1, type="ORDER_FILLED", symbol="BTC/USD", time=T0)

    response = admin_client.post(change_url(strategy), form_data(admin_client, strategy, strategy_id="renamed"))

    assert response.status_code == 302
    assert list(models.Strategy.objects.values_list("strategy_id", flat=True)) == ["alpha"]
    assert models.Position.objects.get().strategy_id == "alpha"
    assert models.Event.objects.get().strategy_id == "alpha"


def test_it_checks_access_to_the_strategy_form(client, make_strategy, make_user):
    strategy = make_strategy("alpha")
    client.force_login(make_user("operator", can_control=True))
    before = stored(strategy)

    response = client.post(change_url(strategy), {"name": "Hijacked"})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert stored(strategy) == before


@pytest.fixture
def trading_rows(make_strategy):
    """One position, fill and event of a strategy, as the orchestrator would have written them."""
    strategy = make_strategy("alpha")
    models.Position.objects.create(
        strategy=strategy, position_id="alpha-20220101000000-1", symbol="BTC/USD", side="long",
        quantity=Decimal("0.1"), initial_quantity=Decimal("0.1"), entry_price=Decimal("46000"),
        entry_fee=Decimal("1.84"), opened_at=T0,
    )
    models.Fill.objects.create(
        strategy=strategy, order_id="alpha-20220101000000-1", symbol="BTC/USD", side="buy", intent="open",
        position_id="alpha-20220101000000-1", quantity=Decimal("0.1"), price=Decimal("46000"),
        fee=Decimal("1.84"), trigger="market", time=T0,
    )
    models.Event.objects.create(strategy_id="alpha", sequence=1, type="ORDER_FILLED", symbol="BTC/USD", time=T0)
    return strategy


READ_ONLY_LISTS = [
    ("admin:desk_position_changelist", "alpha-20220101000000-1"),
    ("admin:desk_fill_changelist", "alpha-20220101000000-1"),
    ("admin:desk_event_changelist", "ORDER_FILLED"),
]


@pytest.mark.parametrize("name, shown", READ_ONLY_LISTS, ids=["position", "fill", "event"])
def test_the_trading_lists_load_for_a_superuser(admin_client, trading_rows, name, shown):
    response = admin_client.get(reverse(name))

    assert response.status_code == 200
    assert shown in response.content.decode()


@pytest.mark.parametrize("name, shown", READ_ONLY_LISTS, ids=["position", "fill", "event"])
def test_the_trading_lists_refuse_a_non_staff_user(client, make_user, trading_rows, name, shown):
    client.force_login(make_user("operator", can_control=True))

    response = client.get(reverse(name))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_trading_rows_cannot_be_added_or_edited_even_by_a_superuser(admin_client, trading_rows):
    position = models.Position.objects.get()

    add = admin_client.get(reverse("admin:desk_position_add"))
    edit = admin_client.post(reverse("admin:desk_position_change", args=[position.pk]), {"side": "short"})

    assert add.status_code == 403
    assert edit.status_code == 403
    assert models.Position.objects.get().side == "long"


def test_the_status_of_an_existing_strategy_is_switched_on_the_desk_not_in_the_admin(admin_client, make_strategy):
    strategy = make_strategy("alpha", status="active")

    response = admin_client.post(change_url(strategy), form_data(admin_client, strategy, status="dormant"))

    assert response.status_code == 302
    assert models.Strategy.objects.get(strategy_id="alpha").status == "active"
    assert not models.ControlAction.objects.exists()
