"""A strategy switched off while it holds a position is never left unwatched: on real BTC candles through the
live path it drains (exits managed exactly as the core's drained run) or closes at the next open, then goes
dormant with an event, and takes no candle after that."""

from __future__ import annotations

import pytest
from django.urls import reverse

from orchestrator.engine import StrategyOrchestrator, WindDown
from orchestrator.events import EventType
from orchestrator.ports import MemoryPublisher, MemoryStore
from strategies import build_strategy
from tests.core_runs import money
from tradeweb.desk import live, models, orchestrators
from tradeweb.desk.control import set_active

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_worker")]

CONFIG = {"fast_period": 5, "slow_period": 20, "allow_short": True, "stop_loss_pct": "0.002", "take_profit_pct": "0.003"}


def core(strategy) -> StrategyOrchestrator:
    return StrategyOrchestrator(
        strategy.strategy_id, build_strategy(strategy.strategy_class, strategy.config), strategy.symbol,
        strategy.timeframe, strategy.capital, MemoryStore(), MemoryPublisher(),
    )


def holding_after(strategy, candles) -> int:
    """Index of the first candle after which the core holds a position with nothing pending."""
    reference = core(strategy)
    for index, candle in enumerate(candles):
        reference.process(candle)
        if index > 50 and len(reference.book) == 1 and not reference.exchange.pending_orders:
            return index
    raise AssertionError("the sample never holds a position")


def core_wound_down(strategy, candles, index: int, wind_down: WindDown) -> StrategyOrchestrator:
    """The core run: candles up to `index`, then winding down until flat (and its closing event)."""
    reference = core(strategy)
    for candle in candles[: index + 1]:
        reference.process(candle)
    reference.wind_down = wind_down
    for candle in candles[index + 1:]:
        reference.process(candle)
        if reference.is_flat:
            reference.finish_wind_down()
            return reference
    raise AssertionError("the core never got flat")


def stored_fills(strategy_id: str) -> list[tuple]:
    return list(models.Fill.objects.filter(strategy_id=strategy_id).order_by("time", "id").values_list(
        "order_id", "price", "quantity", "trigger", "time"))


def core_fills(reference: StrategyOrchestrator) -> list[tuple]:
    return [(f.order_id, money(f.price), money(f.quantity), str(f.trigger), f.time)
            for r in reference.store.results for f in r.fills]


@pytest.mark.parametrize("wind_down", [WindDown.DRAIN, WindDown.CLOSE])
def test_switched_off_with_a_position_it_winds_down_like_the_core_then_goes_dormant(
    make_strategy, make_user, btc_candles, wind_down
):
    candles = btc_candles[:1500]
    strategy = make_strategy("alpha", **CONFIG)
    models.Strategy.objects.filter(pk=strategy.pk).update(wind_down=wind_down.value)
    strategy.refresh_from_db()
    index = holding_after(strategy, candles)
    for candle in candles[: index + 1]:
        live.ingest_candle(candle.to_mapping())

    set_active("alpha", make_user("trader", can_control=True), False)
    assert models.Strategy.objects.get(strategy_id="alpha").status == "draining"
    for candle in candles[index + 1:]:
        live.ingest_candle(candle.to_mapping())

    reference = core_wound_down(strategy, candles, index, wind_down)
    row = models.Strategy.objects.get(strategy_id="alpha")
    assert row.status == "dormant"
    assert not models.Position.objects.filter(strategy_id="alpha", closed_at__isnull=True).exists()
    assert stored_fills("alpha") == core_fills(reference)
    assert row.realized_pnl == money(reference.book.realized_pnl)
    # After the closing event nothing: no later candle reached it.
    assert row.last_candle_time == reference.last_candle_time < candles[-1].time
    last = models.Event.objects.filter(strategy_id="alpha").order_by("-sequence").first()
    assert (last.type, last.payload) == ("STRATEGY_DEACTIVATED", {"reason": "flat", "wind_down": wind_down.value})
    switched = models.Event.objects.get(strategy_id="alpha", type="STRATEGY_DEACTIVATED", payload__user="trader")
    assert switched.payload["status"] == "draining" and switched.payload["wind_down"] == wind_down.value
    refused = models.Event.objects.filter(strategy_id="alpha", type="SIGNAL_REJECTED", sequence__gt=switched.sequence)
    assert all("winding down" in e.payload["reason"] for e in refused)
    if wind_down is WindDown.CLOSE:
        closing = models.Fill.objects.filter(strategy_id="alpha", time=candles[index + 1].time)
        assert [(f.trigger, f.intent) for f in closing] == [("market", "close")]


def test_switched_off_while_flat_it_is_dormant_at_once(make_strategy, make_user, btc_candles):
    strategy = make_strategy("alpha", **CONFIG)
    reference = core(strategy)
    for index, candle in enumerate(btc_candles):
        reference.process(candle)
        if index > 100 and reference.is_flat and reference.book.realized_pnl:
            break
    for candle in btc_candles[: index + 1]:
        live.ingest_candle(candle.to_mapping())
    assert not models.Position.objects.filter(strategy_id="alpha", closed_at__isnull=True).exists()

    set_active("alpha", make_user("trader", can_control=True), False)

    assert models.Strategy.objects.get(strategy_id="alpha").status == "dormant"
    outcome = live.ingest_candle(btc_candles[index + 1].to_mapping())
    assert outcome.processed == []


def test_a_draining_strategy_switched_back_on_trades_again_without_skipping_candles(make_strategy, make_user, btc_candles):
    candles = btc_candles[:1500]
    strategy = make_strategy("alpha", **CONFIG)
    index = holding_after(strategy, candles)
    for candle in candles[: index + 1]:
        live.ingest_candle(candle.to_mapping())
    trader = make_user("trader", can_control=True)
    set_active("alpha", trader, False)
    live.ingest_candle(candles[index + 1].to_mapping())
    orchestrators.forget_all()

    set_active("alpha", trader, True)
    live.ingest_candle(candles[index + 2].to_mapping())

    row = models.Strategy.objects.get(strategy_id="alpha")
    assert (row.status, row.last_candle_time) == ("active", candles[index + 2].time)
    assert models.Event.objects.filter(strategy_id="alpha", type=EventType.STRATEGY_ACTIVATED.value).count() == 1


@pytest.mark.parametrize("wind_down, says", [
    ("drain", "its stops, targets and exit signals are still managed"),
    ("close", "its positions close at market on the next candle"),
])
def test_the_card_says_draining_and_how(client, make_strategy, make_user, wind_down, says):
    make_strategy("alpha")
    models.Strategy.objects.filter(strategy_id="alpha").update(status="draining", wind_down=wind_down)
    client.force_login(make_user("viewer"))

    html = client.get(reverse("strategy_card", args=["alpha"])).content.decode()

    assert 'class="card status-draining"' in html and ">Draining<" in html
    assert f"Draining: no new entries; {says}, then it goes dormant." in html
