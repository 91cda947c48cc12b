"""A config saved in the admin mid-position: recorded as a version (who, when, what changed) with a
CONFIG_CHANGED event, applied from the next candle with the position, the journal and the unchanged
indicator kept, and never overwriting what a worker wrote to the row meanwhile."""

from __future__ import annotations

import copy
import json
from decimal import Decimal

import pytest
from django.urls import reverse

from orchestrator.engine import OrchestratorState, StrategyOrchestrator
from orchestrator.ports import MemoryPublisher, MemoryStore
from strategies import build_strategy
from tests.core_runs import money
from tests.ingest import feed
from tests.tradeweb.desk.test_admin import change_url, form_data
from tradeweb.desk import live, models, orchestrators

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_worker")]

OLD = {"fast_period": 5, "slow_period": 20, "stop_loss_pct": None, "take_profit_pct": None}


@pytest.fixture
def holding(make_strategy, btc_candles):
    """Strategy alpha fed real candles until it holds a position, at least 100 candles in; returns them."""
    make_strategy("alpha", **OLD)
    for count, candle in enumerate(btc_candles, 1):
        live.ingest_candle(candle.to_mapping())
        if count >= 100 and models.Position.objects.filter(strategy_id="alpha", closed_at=None).exists():
            return btc_candles[:count]
    raise AssertionError("no position was ever open")


def save_config(client, **config) -> None:
    strategy = models.Strategy.objects.get(strategy_id="alpha")
    response = client.post(change_url(strategy), form_data(client, strategy, config=json.dumps(strategy.config | config)))
    assert response.status_code == 302, response.content.decode()[:2000]


def core_reloaded_at(taken: list, rest: list, new_config: dict, changed_at_sequence: int) -> StrategyOrchestrator:
    """The core engine's run of the same reload: old config over `taken`, rebuilt under the new one from its
    snapshot (history: the stored candles), then `rest`."""
    old = StrategyOrchestrator("alpha", build_strategy("sma_crossover", OLD), "BTC/USD", "1m", Decimal(10000),
                               MemoryStore(), MemoryPublisher())
    for candle in taken:
        old.process(candle)
    state = OrchestratorState(old.last_candle_time, changed_at_sequence, old.book.realized_pnl,
                              copy.deepcopy(old.book.open_positions("BTC/USD")), copy.deepcopy(old.exchange.pending_orders))
    new = StrategyOrchestrator("alpha", build_strategy("sma_crossover", new_config), "BTC/USD", "1m", Decimal(10000),
                               MemoryStore(), MemoryPublisher(), state)
    assert new.restore(json.loads(json.dumps(old.snapshot())), lambda: taken)
    for candle in rest:
        new.process(candle)
    return new


def test_a_saved_config_is_a_version_with_its_author_and_diff_and_an_event(admin_client, holding):
    before = models.Strategy.objects.get(strategy_id="alpha")

    save_config(admin_client, slow_period=25)

    row = models.Strategy.objects.get(strategy_id="alpha")
    assert row.config_version == 2 and row.config["slow_period"] == 25
    assert row.snapshot == before.snapshot, "the snapshot stays: the next candle restores what did not change"
    assert (row.last_candle_time, row.equity) == (before.last_candle_time, before.equity)
    version = models.ConfigVersion.objects.get(strategy=row, version=2)
    assert version.user.get_username() == "admin" and version.saved == row.versioned_settings()
    event = models.Event.objects.get(strategy_id="alpha", type="CONFIG_CHANGED")
    assert event.sequence == row.last_sequence == before.last_sequence + 1
    assert event.payload == {"user": "admin", "version": 2, "changes": {"config.slow_period": [20, 25]}}

    page = admin_client.get(reverse("strategy_detail", args=["alpha"])).content.decode()
    assert "version 2 in force" in page
    assert "<code>config.slow_period</code> 20 &rarr; 25" in page


def test_the_next_candle_trades_on_under_the_new_config_keeping_position_and_unchanged_indicator(
    admin_client, holding, btc_candles,
):
    held = models.Position.objects.get(strategy_id="alpha", closed_at=None)
    snapshot = models.Strategy.objects.get(strategy_id="alpha").snapshot
    save_config(admin_client, slow_period=25)
    changed_at = models.Strategy.objects.get(strategy_id="alpha").last_sequence
    rest = btc_candles[len(holding):len(holding) + 400]

    restored = orchestrators.status()["builds"]["from_snapshot"]
    live.ingest_candle(rest[0].to_mapping())
    assert orchestrators.status()["builds"]["from_snapshot"] == restored + 1, "rebuilt from the kept snapshot"
    after_one = models.Strategy.objects.get(strategy_id="alpha").snapshot
    for candle in rest[1:]:
        live.ingest_candle(candle.to_mapping())

    assert set(after_one["indicators"]) == {"sma_5", "sma_25"}
    assert after_one["indicators"]["sma_5"]["_closes"] == snapshot["indicators"]["sma_5"]["_closes"][1:] + [
        int(rest[0].close.scaleb(10))]
    held.refresh_from_db()
    assert held.closed_at is not None, "the position opened under the old config was managed to its exit"
    core = core_reloaded_at(holding, rest, OLD | {"slow_period": 25}, changed_at)
    events = list(models.Event.objects.filter(strategy_id="alpha", sequence__gt=changed_at).order_by("sequence")
                  .values_list("sequence", "type", "payload"))
    assert events == [(e.sequence, str(e.type), e.payload) for e in core.publisher.events]
    assert any(t == "POSITION_CLOSED" for _, t, _ in events) and any("SMA 25" in str(p) for _, _, p in events)
    row = models.Strategy.objects.get(strategy_id="alpha")
    assert row.equity == money(core.equity)


def test_a_save_keeps_what_a_worker_wrote_while_the_admin_held_the_row(admin_client, holding, btc_candles, monkeypatch):
    strategy = models.Strategy.objects.get(strategy_id="alpha")
    data = form_data(admin_client, strategy, name="Renamed", config=json.dumps(strategy.config | {"fast_period": 6}))
    validate = models.Strategy.clean

    def a_candle_processed_meanwhile(self):
        # The admin loaded the row for this request; a worker moves it on before the admin saves.
        validate(self)
        live.ingest_candle(btc_candles[len(holding)].to_mapping())

    monkeypatch.setattr(models.Strategy, "clean", a_candle_processed_meanwhile)

    assert admin_client.post(change_url(strategy), data).status_code == 302

    row = models.Strategy.objects.get(strategy_id="alpha")
    assert (row.name, row.config["fast_period"], row.config_version) == ("Renamed", 6, 2)
    assert row.last_candle_time == btc_candles[len(holding)].time
    events = list(models.Event.objects.filter(strategy_id="alpha").order_by("sequence").values_list("sequence", flat=True))
    assert events == list(range(1, row.last_sequence + 1)), "the worker's events and the change's are numbered in turn"
    assert models.Event.objects.get(strategy_id="alpha", type="CONFIG_CHANGED").sequence == row.last_sequence


def test_an_invalid_config_is_refused_and_reaches_no_worker(admin_client, holding):
    strategy = models.Strategy.objects.get(strategy_id="alpha")
    before = models.Strategy.objects.filter(pk=strategy.pk).values().get()
    data = form_data(admin_client, strategy, config=json.dumps(strategy.config | {"slow_period": 3}))

    response = admin_client.post(change_url(strategy), data)

    assert response.status_code == 200
    assert "slow_period: must be longer than fast_period (5)" in response.content.decode()
    assert models.Strategy.objects.filter(pk=strategy.pk).values().get() == before
    assert not models.ConfigVersion.objects.filter(strategy=strategy, version=2).exists()
    assert not models.Event.objects.filter(strategy_id="alpha", type="CONFIG_CHANGED").exists()


def test_a_new_market_for_a_flat_strategy_starts_from_no_snapshot(admin_client, make_strategy):
    strategy = make_strategy("beta")
    models.Strategy.objects.filter(pk=strategy.pk).update(snapshot={"version": 0})

    response = admin_client.post(change_url(strategy), form_data(admin_client, strategy, symbol="GBP/USD"))

    assert response.status_code == 302
    row = models.Strategy.objects.get(pk=strategy.pk)
    assert (row.symbol, row.snapshot, row.config_version) == ("GBP/USD", None, 2)
    assert models.Event.objects.get(strategy_id="beta", type="CONFIG_CHANGED").payload["changes"] == {
        "symbol": ["BTC/USD", "GBP/USD"]}


def test_a_new_strategy_starts_at_version_one_saved_by_its_creator(admin_client):
    data = {
        "strategy_id": "gamma", "name": "Gamma", "strategy_class": "sma_crossover", "config": "{}",
        "symbol": "BTC/USD", "timeframe": "1m", "status": "dormant", "wind_down": "drain", "mode": "paper",
        "account": "paper", "capital": "5000", "_save": "Save",
    }

    response = admin_client.post(reverse("admin:desk_strategy_add"), data)

    assert response.status_code == 302, response.content.decode()[:2000]
    version = models.ConfigVersion.objects.get(strategy_id="gamma")
    assert (version.version, version.user.get_username(), version.saved["capital"]) == (1, "admin", "5000")


def test_a_strategy_moved_to_another_market_takes_that_markets_next_candle(admin_client, make_strategy, btc_candles):
    from orchestrator.datasets import load_candles

    strategy = make_strategy("beta")
    feed(btc_candles[:5])
    models.Market.objects.create(symbol="GBP/USD", timeframe="1m")
    gbp = load_candles("GBP/USD", "1m", limit=3)
    feed(gbp[:1])  # a stored candle of the new market, years before the strategy's last one: it starts after it
    strategy.refresh_from_db()
    assert strategy.last_candle_time == btc_candles[4].time

    response = admin_client.post(change_url(strategy), form_data(admin_client, strategy, symbol="GBP/USD"))

    assert response.status_code == 302, response.content.decode()[:2000]
    assert models.Strategy.objects.get(pk=strategy.pk).last_candle_time == gbp[0].time
    feed(gbp[1:])
    row = models.Strategy.objects.get(pk=strategy.pk)
    assert (row.status, row.last_candle_time, row.last_close) == ("active", gbp[2].time, gbp[2].close)
