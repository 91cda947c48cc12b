"""A rebuilt orchestrator decides exactly as the one it replaces: the live path with its cache cleared
at 50 random candles stores, row for row, what the uninterrupted core engine produces."""

from __future__ import annotations

import random

import pytest

from orchestrator.datasets import load_candles
from orchestrator.market_rules import feed_messages
from tests.core_runs import assert_exactly_the_core_run
from tradeweb.desk import orchestrators, live, models

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_worker")]

CANDLES = 1200
RESTARTS = 50


@pytest.mark.parametrize("strategy_class, config, symbol", [
    # RSI's averages remember every candle since the first: a warm-up on the last 40 gives other values.
    ("rsi_mean_reversion", {"rsi_period": 14, "stop_loss_pct": "0.002", "take_profit_pct": "0.003"}, "GBP/USD"),
    ("sma_crossover", {"fast_period": 3, "slow_period": 8, "stop_loss_pct": "0.003", "take_profit_pct": "0.004"}, "BTC/USD"),
])
def test_a_worker_restarted_at_fifty_random_candles_stores_exactly_the_uninterrupted_run(
    make_strategy, settings, strategy_class, config, symbol
):
    # A short warm-up, so that a rebuild replaying stored candles would show: the snapshot must not depend on it.
    settings.WARM_UP_CANDLES = 40
    strategy = make_strategy("alpha", strategy_class=strategy_class, symbol=symbol, **config)
    candles = load_candles(symbol, limit=CANDLES)
    restarts = set(random.Random(f"{strategy_class}-restarts").sample(range(1, CANDLES), RESTARTS))

    for number, message in enumerate(feed_messages(candles)):
        if number in restarts:
            orchestrators.forget_all()  # the worker process restarts: the next candle rebuilds the orchestrator
        assert live.ingest_candle(message).processed == ["alpha"]

    assert orchestrators.orchestrator_cache().stats.misses == 1, "the last restart's rebuild is the only one this cache saw"
    assert assert_exactly_the_core_run(strategy, candles) >= 10, "the sample must trade"

def test_the_whole_btc_month_with_fifty_worker_restarts_stores_exactly_the_uninterrupted_run(make_strategy):
    """The shipped month, 45,031 candles, reaches the workers as a backlog in 51 parts; before each part
    the worker process restarts (its cache is gone), so each part starts with rebuilt orchestrators."""
    sma = make_strategy("sma", fast_period=10, slow_period=30, stop_loss_pct="0.005", take_profit_pct="0.01")
    rsi = make_strategy("rsi", strategy_class="rsi_mean_reversion", rsi_period=14)
    candles = load_candles("BTC/USD")
    restarts = sorted(random.Random("month-restarts").sample(range(1, len(candles)), RESTARTS))
    rows = [
        models.Candle(symbol=c.symbol, timeframe=c.timeframe, time=c.time, previous_time=previous,
                      open=c.open, high=c.high, low=c.low, close=c.close, volume=c.volume)
        for c, previous in zip(candles, [None] + [c.time for c in candles[:-1]])
    ]
    for start, end in zip([0] + restarts, restarts + [len(candles)]):
        models.Candle.objects.bulk_create(rows[start:end])
        orchestrators.forget_all()
        while live.advance_market("BTC/USD", "1m", seconds=60).more:
            pass
        assert models.Strategy.objects.get(strategy_id="sma").last_candle_time == candles[end - 1].time

    assert orchestrators.orchestrator_cache().stats.misses == 2, "only the last restart's rebuilds"
    for strategy in (sma, rsi):
        assert assert_exactly_the_core_run(strategy, candles) >= 20, "the month must trade"
