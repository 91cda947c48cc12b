"""A real Celery worker on the real broker processes candles; the rows land in the real database."""

from __future__ import annotations

import pytest

from orchestrator.engine import StrategyOrchestrator
from orchestrator.ports import MemoryPublisher, MemoryStore
from strategies import build_strategy
from tests.core_runs import core_run
from tradeweb.desk import models
from tradeweb.desk.tasks import process_candle

pytestmark = pytest.mark.django_db(transaction=True)


def test_worker_processes_candles_into_database_rows_like_the_core(wait_for_worker, make_strategy, btc_candles):
    strategy = make_strategy("alpha", fast_period=3, slow_period=8, stop_loss_pct="0.003", take_profit_pct="0.004")
    make_strategy("dormant-one", status="dormant")
    candles = btc_candles[:150]

    for candle in candles:
        process_candle.delay(candle.to_mapping())
    wait_for_worker(
        lambda: models.Strategy.objects.get(strategy_id="alpha").last_candle_time == candles[-1].time,
        "the worker to process every candle", timeout=90,
    )

    store = MemoryStore()
    core = StrategyOrchestrator(
        "alpha", build_strategy(strategy.strategy_class, strategy.config), "BTC/USD", "1m", strategy.capital,
        store, MemoryPublisher(),
    )
    for candle in candles:
        core.process(candle)
    expected = [(f.order_id, f.price, f.quantity) for r in store.results for f in r.fills]
    assert expected, "the sample must trade"
    assert list(models.Fill.objects.order_by("time", "id").values_list("order_id", "price", "quantity")) == expected
    assert models.Candle.objects.count() == len(candles)
    assert models.Event.objects.filter(strategy_id="alpha").count() == core.sequence.last
    assert not models.Event.objects.filter(strategy_id="dormant-one").exists()
    assert models.JournalEntry.objects.filter(strategy=strategy).exists()


def test_worker_running_a_candle_twice_stores_it_once(wait_for_worker, make_strategy, btc_candles):
    make_strategy("alpha")
    for candle in btc_candles[:20] + btc_candles[:20]:
        process_candle.delay(candle.to_mapping())
    marker = btc_candles[20]
    process_candle.delay(marker.to_mapping())
    wait_for_worker(
        lambda: models.Strategy.objects.get(strategy_id="alpha").last_candle_time == marker.time, "the marker candle"
    )

    assert models.Candle.objects.count() == 21
    # The replayed block arrives after candle 20: each of its candles is a duplicate, and changes nothing.
    assert not models.Event.objects.filter(strategy_id="alpha", type="DATA_REJECTED").exists()
    store, publisher = core_run(models.Strategy.objects.get(strategy_id="alpha"), btc_candles[:21])
    assert list(models.Event.objects.filter(strategy_id="alpha").order_by("sequence").values_list("sequence", "type")) == [
        (e.sequence, str(e.type)) for e in publisher.events]
    assert models.Order.objects.filter(strategy_id="alpha").count() == sum(len(r.orders) for r in store.results)
