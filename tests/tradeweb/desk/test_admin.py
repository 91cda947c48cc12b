"""The admin: a strategy's config is checked against its class before saving, its market and class stay put
while it holds positions or orders, the ledger is read-only for everyone, and a market keeps its identity."""

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
        "wind_down": strategy.wind_down,
        "mode": strategy.mode,
        "account": strategy.account,
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
        "status": "dormant", "wind_down": "drain", "mode": "paper", "account": "paper", "capital": "1000",
        "_save": "Save",
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


def open_position(strategy: models.Strategy, position_id: str = "alpha-1", closed_at=None) -> models.Position:
    return models.Position.objects.create(
        strategy=strategy, position_id=position_id, symbol=strategy.symbol, side="long", quantity=Decimal("0.1"),
        initial_quantity=Decimal("0.1"), entry_price=Decimal("46000"), entry_fee=Decimal("1.84"), opened_at=T0,
        closed_at=closed_at,
    )


def market_order(strategy: models.Strategy, order_id: str = "alpha-1", status: str = "pending") -> models.Order:
    return models.Order.objects.create(
        strategy=strategy, order_id=order_id, symbol=strategy.symbol, intent="open", position_side="long",
        position_id=order_id, quantity=Decimal("0.1"), status=status, created_at=T0,
    )


@pytest.fixture
def trading_rows(make_strategy):
    """One row of every ledger model, as the orchestrator, the feed and the desk's controls would have written them."""
    strategy = make_strategy("alpha")
    open_position(strategy, "alpha-20220101000000-1")
    market_order(strategy, "alpha-20220101000000-1", status="filled")
    models.Fill.objects.create(
        strategy=strategy, order_id="alpha-20220101000000-1", symbol="BTC/USD", side="buy", intent="open",
        position_id="alpha-20220101000000-1", quantity=Decimal("0.1"), price=Decimal("46000"),
        fee=Decimal("1.84"), trigger="market", time=T0,
    )
    models.JournalEntry.objects.create(strategy=strategy, time=T0, kind="trade", message="Bought 0.1 BTC/USD at 46000")
    models.Event.objects.create(strategy_id="alpha", sequence=1, type="ORDER_FILLED", symbol="BTC/USD", time=T0)
    models.Candle.objects.create(
        symbol="BTC/USD", timeframe="1m", time=T0, open=Decimal("46000"), high=Decimal("46100"),
        low=Decimal("45900"), close=Decimal("46050"), volume=Decimal("12.5"),
    )
    models.ControlAction.objects.create(strategy=strategy, action="activate")
    return strategy


LEDGER_MODELS = [
    models.Position, models.Order, models.Fill, models.JournalEntry, models.Event, models.Candle, models.ControlAction,
]
LEDGER_IDS = [model._meta.model_name for model in LEDGER_MODELS]


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:desk_{model._meta.model_name}_{view}", args=args)


def ledger_counts() -> dict:
    return {model._meta.model_name: model.objects.count() for model in LEDGER_MODELS}


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


@pytest.mark.parametrize("model", LEDGER_MODELS, ids=LEDGER_IDS)
def test_a_superuser_can_browse_every_ledger_list_and_row_read_only(admin_client, trading_rows, model):
    row = model.objects.get()

    listing = admin_client.get(admin_url(model, "changelist"))
    page = admin_client.get(admin_url(model, "change", row.pk))

    assert listing.status_code == 200
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert 'value="delete_selected"' not in listing.content.decode()


def test_a_ledger_list_can_still_be_filtered_by_strategy(admin_client, trading_rows, make_strategy):
    beta = make_strategy("beta")
    models.Fill.objects.create(
        strategy=beta, order_id="beta-20220101000000-1", symbol="BTC/USD", side="sell", intent="open",
        position_id="beta-20220101000000-1", quantity=Decimal("0.2"), price=Decimal("46000"),
        fee=Decimal("3.68"), trigger="market", time=T0,
    )

    response = admin_client.get(admin_url(models.Fill, "changelist"), {"strategy__strategy_id__exact": "beta"})

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [models.Fill.objects.get(strategy=beta)]


@pytest.mark.parametrize("model", LEDGER_MODELS, ids=LEDGER_IDS)
def test_a_superuser_cannot_delete_a_ledger_row(admin_client, trading_rows, model):
    row = model.objects.get()
    before = ledger_counts()

    page = admin_client.get(admin_url(model, "delete", row.pk))
    confirmed = admin_client.post(admin_url(model, "delete", row.pk), {"post": "yes"})

    assert page.status_code == 403
    assert confirmed.status_code == 403
    assert ledger_counts() == before


@pytest.mark.parametrize("model", LEDGER_MODELS, ids=LEDGER_IDS)
def test_a_superuser_cannot_bulk_delete_ledger_rows_from_the_list(admin_client, trading_rows, model):
    row = model.objects.get()
    before = ledger_counts()

    # What the "delete selected" confirmation page posts.
    response = admin_client.post(
        admin_url(model, "changelist"), {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"}
    )

    assert response.status_code == 200
    assert ledger_counts() == before


@pytest.mark.parametrize("model", LEDGER_MODELS, ids=LEDGER_IDS)
def test_ledger_rows_cannot_be_added_or_edited_even_by_a_superuser(admin_client, trading_rows, model):
    row = model.objects.get()
    before = model.objects.filter(pk=row.pk).values().get()
    edited = {field: "edited" for field in before if field not in ("id", "strategy_id")} | {"_save": "Save"}

    add = admin_client.get(admin_url(model, "add"))
    added = admin_client.post(admin_url(model, "add"), edited)
    edit = admin_client.post(admin_url(model, "change", row.pk), edited)

    assert add.status_code == 403
    assert added.status_code == 403
    assert edit.status_code == 403
    assert model.objects.filter(pk=row.pk).values().get() == before
    assert model.objects.count() == 1


def delete_url(strategy: models.Strategy) -> str:
    return reverse("admin:desk_strategy_delete", args=[strategy.pk])


def test_a_strategy_that_owns_ledger_rows_is_not_deleted_and_the_page_says_they_are_protected(admin_client, trading_rows):
    before = ledger_counts()

    response = admin_client.post(delete_url(trading_rows), {"post": "yes"})

    assert response.status_code == 200
    page = response.content.decode()
    assert "would require deleting the following protected related objects" in page
    assert "alpha-20220101000000-1" in page
    assert not response.context["perms_lacking"]  # the refusal is the protection, not this user's permissions
    assert models.Strategy.objects.filter(strategy_id="alpha").exists()
    assert ledger_counts() == before


def test_a_strategy_that_owns_ledger_rows_is_not_deleted_by_the_bulk_action(admin_client, trading_rows):
    before = ledger_counts()

    response = admin_client.post(
        reverse("admin:desk_strategy_changelist"),
        {"action": "delete_selected", "_selected_action": [trading_rows.pk], "post": "yes"},
    )

    assert response.status_code == 200
    assert "would require deleting the following protected related objects" in response.content.decode()
    assert models.Strategy.objects.filter(strategy_id="alpha").exists()
    assert ledger_counts() == before


def test_a_strategy_whose_only_ledger_rows_are_events_is_not_deleted(admin_client, make_strategy):
    # Events name their strategy by id, not by a foreign key, so the database alone would let them be orphaned;
    # a strategy created again with the same id would then collide with its old event sequence.
    strategy = make_strategy("alpha")
    models.Event.objects.create(strategy_id="alpha", sequence=1, type="STRATEGY_ERROR", symbol="BTC/USD", time=T0)

    response = admin_client.post(delete_url(strategy), {"post": "yes"})

    assert response.status_code == 200
    assert "would require deleting the following protected related objects" in response.content.decode()
    assert "1 of strategy alpha" in response.content.decode()
    assert models.Strategy.objects.filter(strategy_id="alpha").exists()
    assert models.Event.objects.count() == 1


def test_a_strategy_without_ledger_rows_can_be_deleted(admin_client, make_strategy):
    strategy = make_strategy("alpha")
    models.Event.objects.create(strategy_id="beta", sequence=1, type="STRATEGY_ERROR", symbol="BTC/USD", time=T0)

    response = admin_client.post(delete_url(strategy), {"post": "yes"})

    assert response.status_code == 302
    assert not models.Strategy.objects.exists()
    assert models.Event.objects.count() == 1


MARKET_CHANGES = [
    ("symbol", {"symbol": "ETH/USD"}),
    ("timeframe", {"timeframe": "5m"}),
    ("strategy_class", {"strategy_class": "rsi_mean_reversion", "config": "{}"}),
]
MARKET_CHANGE_IDS = [field for field, _ in MARKET_CHANGES]


@pytest.mark.parametrize("field, changes", MARKET_CHANGES, ids=MARKET_CHANGE_IDS)
def test_the_market_or_class_of_a_strategy_holding_an_open_position_cannot_be_changed(
    admin_client, make_strategy, field, changes
):
    strategy = make_strategy("alpha")
    open_position(strategy)
    data = form_data(admin_client, strategy, **changes)
    before = stored(strategy)

    response = admin_client.post(change_url(strategy), data)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field]
    assert "holds 1 open position and 0 pending orders; close them or wait until it is flat" in errors[field][0]
    assert stored(strategy) == before


@pytest.mark.parametrize("field, changes", MARKET_CHANGES, ids=MARKET_CHANGE_IDS)
def test_the_market_or_class_of_a_strategy_with_a_pending_order_cannot_be_changed(
    admin_client, make_strategy, field, changes
):
    strategy = make_strategy("alpha")
    market_order(strategy, status="pending")
    data = form_data(admin_client, strategy, **changes)
    before = stored(strategy)

    response = admin_client.post(change_url(strategy), data)

    assert response.status_code == 200
    assert "holds 0 open positions and 1 pending order;" in response.context["adminform"].form.errors[field][0]
    assert stored(strategy) == before


@pytest.mark.parametrize("field, changes", MARKET_CHANGES, ids=MARKET_CHANGE_IDS)
def test_a_flat_strategy_can_change_its_market_or_class(admin_client, make_strategy, field, changes):
    strategy = make_strategy("alpha")
    open_position(strategy, closed_at=T0)
    market_order(strategy, status="filled")

    response = admin_client.post(change_url(strategy), form_data(admin_client, strategy, **changes))

    assert response.status_code == 302
    assert stored(strategy)[field] == changes[field]
    assert stored(strategy)["config_version"] == 2


def test_a_strategy_holding_a_position_can_still_be_renamed(admin_client, make_strategy):
    strategy = make_strategy("alpha")
    open_position(strategy)

    response = admin_client.post(change_url(strategy), form_data(admin_client, strategy, name="Renamed"))

    assert response.status_code == 302
    assert stored(strategy)["name"] == "Renamed"


def market_url(view: str, *args) -> str:
    return reverse(f"admin:desk_market_{view}", args=args)


def test_the_markets_list_and_form_render_with_symbol_and_timeframe_read_only(admin_client, make_strategy):
    make_strategy("alpha")  # registers BTC/USD 1m
    market = models.Market.objects.get()

    listing = admin_client.get(market_url("changelist"))
    page = admin_client.get(market_url("change", market.pk))

    assert listing.status_code == 200
    assert "BTC/USD" in listing.content.decode()
    assert page.status_code == 200
    assert set(page.context["adminform"].form.fields) == {"max_move"}


def test_the_max_move_of_a_market_can_be_edited_but_not_its_symbol_or_timeframe(admin_client, make_strategy):
    make_strategy("alpha")
    market = models.Market.objects.get()

    response = admin_client.post(
        market_url("change", market.pk), {"symbol": "ETH/USD", "timeframe": "5m", "max_move": "0.25", "_save": "Save"}
    )

    assert response.status_code == 302
    market.refresh_from_db()
    assert (market.symbol, market.timeframe, market.max_move) == ("BTC/USD", "1m", Decimal("0.25"))


def test_a_market_can_be_added_with_its_symbol_and_timeframe(admin_client):
    response = admin_client.post(
        market_url("add"), {"symbol": "ETH/USD", "timeframe": "5m", "max_move": "0.3", "_save": "Save"}
    )

    assert response.status_code == 302
    assert models.Market.objects.filter(symbol="ETH/USD", timeframe="5m", max_move=Decimal("0.3")).exists()


@pytest.mark.parametrize("max_move", ["0", "101", "a lot"])
def test_it_rejects_a_max_move_out_of_range(admin_client, make_strategy, max_move):
    make_strategy("alpha")
    market = models.Market.objects.get()
    before = market.max_move

    response = admin_client.post(market_url("change", market.pk), {"max_move": max_move, "_save": "Save"})

    assert response.status_code == 200
    assert "max_move" in response.context["adminform"].form.errors
    market.refresh_from_db()
    assert market.max_move == before


def test_a_market_cannot_be_deleted_in_the_admin(admin_client, make_strategy):
    make_strategy("alpha")
    market = models.Market.objects.get()

    single = admin_client.post(market_url("delete", market.pk), {"post": "yes"})
    bulk = admin_client.post(
        market_url("changelist"), {"action": "delete_selected", "_selected_action": [market.pk], "post": "yes"}
    )

    assert single.status_code == 403
    assert bulk.status_code == 200
    assert models.Market.objects.count() == 1


def test_the_markets_admin_refuses_a_non_staff_user(client, make_user, make_strategy):
    make_strategy("alpha")
    market = models.Market.objects.get()
    client.force_login(make_user("operator", can_control=True))

    response = client.post(market_url("change", market.pk), {"max_move": "0.9", "_save": "Save"})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    market.refresh_from_db()
    assert market.max_move != Decimal("0.9")


def test_the_status_of_an_existing_strategy_is_switched_on_the_desk_not_in_the_admin(admin_client, make_strategy):
    strategy = make_strategy("alpha", status="active")

    response = admin_client.post(change_url(strategy), form_data(admin_client, strategy, status="dormant"))

    assert response.status_code == 302
    assert models.Strategy.objects.get(strategy_id="alpha").status == "active"
    assert not models.ControlAction.objects.exists()


@pytest.fixture
def backtest_run(make_user):
    run = models.BacktestRun.objects.create(
        created_by=make_user("quant"), status=models.BacktestRun.Status.DONE, candles_done=96, candles_total=96,
        spec={"capital": "10000"}, portfolio={"equity": []},
    )
    models.BacktestStrategyResult.objects.create(
        run=run, strategy_id="fast", result={"trades": [{"position_id": "p1"}, {"position_id": "p2"}], "equity": []},
    )
    return run


def test_backtest_runs_are_listed_with_a_link_to_their_results_and_shown_read_only(admin_client, backtest_run):
    listing = admin_client.get(reverse("admin:desk_backtestrun_changelist")).content.decode()
    page = admin_client.get(reverse("admin:desk_backtestrun_change", args=[backtest_run.pk]))

    assert reverse("backtest_detail", args=[backtest_run.pk]) in listing
    html_text = page.content.decode()
    assert page.status_code == 200 and "fast" in html_text
    assert 'name="_save"' not in html_text and 'name="status"' not in html_text
    assert re.search(r'<td class="field-trades">\s*<p>2</p>', html_text)


def test_a_backtest_run_cannot_be_added_or_edited_in_the_admin_but_can_be_deleted(admin_client, backtest_run):
    add = admin_client.get(reverse("admin:desk_backtestrun_add"))
    edit = admin_client.post(reverse("admin:desk_backtestrun_change", args=[backtest_run.pk]), {"status": "failed"})
    backtest_run.refresh_from_db()
    assert add.status_code == 403 and edit.status_code == 403
    assert backtest_run.status == models.BacktestRun.Status.DONE

    admin_client.post(reverse("admin:desk_backtestrun_delete", args=[backtest_run.pk]), {"post": "yes"})

    assert not models.BacktestRun.objects.filter(pk=backtest_run.pk).exists()
    assert not models.BacktestStrategyResult.objects.filter(strategy_id="fast").exists()


def test_the_backtest_runs_admin_refuses_a_non_staff_user(client, make_user, backtest_run):
    client.force_login(make_user("viewer"))

    page = client.get(reverse("admin:desk_backtestrun_changelist"))

    assert page.status_code == 302 and "/admin/login/" in page["Location"]
