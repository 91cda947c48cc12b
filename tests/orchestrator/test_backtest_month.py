"""A backtest of many strategies on the shipped BTC/USD month gives each strategy exactly what its orchestrator
gives taking every candle one by one, as a live worker feeds it: the same stored results (orders, fills, positions,
journal, equity), the same events, and an equity curve that is its equity after each candle."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orchestrator.backtest import Allocation, BacktestSpec, run_backtest
from orchestrator.datasets import load_candles
from orchestrator.engine import StrategyOrchestrator
from orchestrator.ports import MemoryPublisher, MemoryStore
from strategies import build_strategy

CAPITAL = Decimal(10_000)
REFERENCE = {"fast_period": 10, "slow_period": 30, "position_size": "1", "stop_loss_pct": None, "take_profit_pct": None,
             "fee_rate": "0.002", "slippage": "0"}
# The benchmark's sweep, then stops and targets, shorts, a loss limit that halts, and the RSI mean reversion.
VARIANTS = [
    ("sma_crossover", REFERENCE),
    ("sma_crossover", REFERENCE | {"fast_period": 5}),
    ("sma_crossover", REFERENCE | {"slow_period": 60}),
    ("sma_crossover", REFERENCE | {"fast_period": 20, "slow_period": 60}),
    ("sma_crossover", REFERENCE | {"fast_period": 5, "slow_period": 60}),
    ("sma_crossover", {"fast_period": 10, "slow_period": 30, "stop_loss_pct": "0.01", "take_profit_pct": "0.02"}),
    ("sma_crossover", {"fast_period": 20, "slow_period": 60, "allow_short": True, "stop_loss_pct": "0.005"}),
    ("sma_crossover", {"fast_period": 5, "slow_period": 20, "allow_short": True, "position_size": "0.5",
                       "max_drawdown_pct": "0.05"}),
    ("rsi_mean_reversion", {"rsi_period": 7, "oversold": "25", "overbought": "75", "allow_short": True}),
]


@pytest.fixture(scope="module")
def month():
    return load_candles("BTC/USD", "1m")


def one_by_one(strategy_id: str, variant, capital: Decimal, candles) -> tuple[StrategyOrchestrator, list]:
    """The strategy's orchestrator fed every candle in turn, and its equity after each."""
    orchestrator = StrategyOrchestrator(strategy_id, build_strategy(*variant), "BTC/USD", "1m", capital, MemoryStore(),
                                        MemoryPublisher())
    curve = []
    for candle in candles:
        orchestrator.process(candle)
        curve.append((candle.time, orchestrator.equity))
    return orchestrator, curve


def test_every_strategy_of_a_backtest_does_exactly_what_its_orchestrator_does_candle_by_candle(month):
    weight = Decimal(1) / len(VARIANTS)
    result = run_backtest(BacktestSpec([
        Allocation(f"s{n}", build_strategy(*variant), "BTC/USD", "1m", weight) for n, variant in enumerate(VARIANTS)
    ], CAPITAL), {("BTC/USD", "1m"): month})

    finals = []
    for n, variant in enumerate(VARIANTS):
        run = result.runs[f"s{n}"]
        alone, curve = one_by_one(f"s{n}", variant, CAPITAL * weight, month)
        assert run.store.results == alone.store.results, variant
        assert run.publisher.events == alone.publisher.events, variant
        assert list(run.equity) == curve, variant
        assert run.orchestrator.head() == alone.head(), variant
        assert run.orchestrator.marks == alone.marks, variant
        assert len(run.trades()) >= 20, variant
        finals.append(curve[-1][1])
    assert any(e.type == "RISK_HALTED" for e in result.runs["s7"].publisher.events)
    assert len(result.equity) == len(month)
    assert result.equity[-1][1] == CAPITAL - weight * CAPITAL * len(VARIANTS) + sum(finals, Decimal(0))
