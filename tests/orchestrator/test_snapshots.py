"""Snapshots: an indicator, a strategy or an orchestrator restored from one continues exactly where it was."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from orchestrator.datasets import load_candles
from orchestrator.engine import SNAPSHOT_VERSION, StrategyOrchestrator
from orchestrator.indicators import ATR, EMA, RSI, SMA
from orchestrator.ports import MemoryPublisher, MemoryStore
from strategies import build_strategy


@pytest.fixture(scope="module")
def gbp():
    return load_candles("GBP/USD", limit=3000)


def through_json(state):
    """What the database gives back: the state as JSON text and parsed again."""
    return json.loads(json.dumps(state))


@pytest.mark.parametrize("indicator_class, period", [(SMA, 20), (EMA, 12), (RSI, 14), (ATR, 14)])
def test_an_indicator_restored_mid_stream_gives_bit_identical_values(gbp, indicator_class, period):
    straight = indicator_class(period)
    expected = [straight.update(c) for c in gbp]

    resumed, values = indicator_class(period), []
    for number, candle in enumerate(gbp):
        if number in (1, 5, 37, 500, 1777):
            fresh = indicator_class(period)
            fresh.restore(through_json(resumed.state()))
            resumed = fresh
        values.append(resumed.update(candle))

    assert values == expected
    assert sum(v is not None for v in values) > 2900


def orchestrator(strategy_class: str, config: dict, symbol: str) -> StrategyOrchestrator:
    return StrategyOrchestrator(
        "s", build_strategy(strategy_class, config), symbol, "1m", Decimal(10000), MemoryStore(), MemoryPublisher(),
    )


@pytest.mark.parametrize("strategy_class, config, symbol", [
    ("sma_crossover", {"fast_period": 5, "slow_period": 20}, "BTC/USD"),
    ("rsi_mean_reversion", {"rsi_period": 14}, "GBP/USD"),
])
def test_a_snapshot_after_any_candle_restores_indicators_and_strategy_memory(strategy_class, config, symbol):
    candles = load_candles(symbol, limit=2000)
    straight = orchestrator(strategy_class, config, symbol)
    for candle in candles[:1234]:
        straight.process(candle)
    snapshot = straight.snapshot()

    rebuilt = orchestrator(strategy_class, config, symbol)
    rebuilt.last_candle_time = candles[1233].time
    assert rebuilt.restore(through_json(snapshot))

    assert rebuilt.indicators.values == straight.indicators.values
    assert rebuilt.strategy.state() == straight.strategy.state()
    assert rebuilt.last_close == straight.last_close
    assert rebuilt.snapshot() == straight.snapshot()


@pytest.mark.parametrize("spoil", [
    lambda s: None,
    lambda s: s | {"version": SNAPSHOT_VERSION + 1},
    lambda s: s | {"last_candle_time": "2021-01-01T00:00:00+00:00"},
    lambda s: s | {"indicators": {"sma_7": {}}},
])
def test_a_snapshot_that_does_not_fit_is_refused_and_changes_nothing(spoil):
    candles = load_candles("BTC/USD", limit=100)
    straight = orchestrator("sma_crossover", {"fast_period": 5, "slow_period": 20}, "BTC/USD")
    for candle in candles:
        straight.process(candle)
    rebuilt = orchestrator("sma_crossover", {"fast_period": 5, "slow_period": 20}, "BTC/USD")
    rebuilt.last_candle_time = candles[-1].time
    before = rebuilt.snapshot()

    assert rebuilt.restore(spoil(straight.snapshot())) is False
    assert rebuilt.snapshot() == before
