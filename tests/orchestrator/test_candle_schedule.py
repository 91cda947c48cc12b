"""A strategy in a backtest takes through `process` only the candles on which something can happen to it, and
the quiet ones between at once, ending exactly where taking every candle leaves it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orchestrator.candle_schedule import CandleColumns, CandleSchedule
from orchestrator.datasets import load_candles
from orchestrator.engine import StrategyOrchestrator
from orchestrator.equity_curve import EquityCurve
from orchestrator.indicator_series import IndicatorSeries
from orchestrator.ports import MemoryPublisher, MemoryStore
from orchestrator.positions import PositionBook, Side
from strategies import build_strategy

CAPITAL = Decimal(10_000)


@pytest.fixture(scope="module")
def candles():
    return load_candles("BTC/USD", "1m", limit=4000)


def scheduled(config: dict, candles) -> tuple[StrategyOrchestrator, EquityCurve, list[int]]:
    """The strategy through a schedule over `candles`, the curve it marks, and the candles it processed."""
    columns = CandleColumns(candles)
    series = IndicatorSeries(candles, columns.times)
    strategy = build_strategy("sma_crossover", config)
    orchestrator = StrategyOrchestrator("s", strategy, "BTC/USD", "1m", CAPITAL, MemoryStore(), MemoryPublisher(),
                                        market_indicators=series)
    curve = EquityCurve()
    schedule = CandleSchedule(orchestrator, columns, strategy.decision_candles(series.series), curve)
    taken = []
    for index, candle in enumerate(candles):
        if schedule.due == index:
            taken.append(index)
            schedule.take(index, candle)
    schedule.finish()
    return orchestrator, curve, taken


@pytest.mark.parametrize("config", [
    {"fast_period": 5, "slow_period": 20},
    {"fast_period": 5, "slow_period": 20, "allow_short": True, "stop_loss_pct": "0.003", "take_profit_pct": "0.004"},
])
def test_a_scheduled_strategy_ends_exactly_where_taking_every_candle_leaves_it(candles, config):
    orchestrator, curve, taken = scheduled(config, candles)
    alone = StrategyOrchestrator("s", build_strategy("sma_crossover", config), "BTC/USD", "1m", CAPITAL, MemoryStore(),
                                 MemoryPublisher())
    equities = []
    for candle in candles:
        alone.process(candle)
        equities.append((candle.time, alone.equity))

    assert orchestrator.store.results == alone.store.results
    assert orchestrator.publisher.events == alone.publisher.events
    assert list(curve) == equities
    assert (orchestrator.head(), orchestrator.marks) == (alone.head(), alone.marks)
    assert len(alone.store.results) > 50
    assert len(taken) < len(candles) / 3, "most candles are quiet"


def test_a_strategy_with_a_risk_limit_takes_every_candle(candles):
    _, _, taken = scheduled({"fast_period": 5, "slow_period": 20, "max_drawdown_pct": "0.5"}, candles[:500])

    assert taken == list(range(500))


def test_the_first_candle_touching_a_stop_or_a_target_is_found_in_any_chunk(candles):
    columns = CandleColumns(candles)
    book = PositionBook("s")
    entry = candles[0].close
    book.open("p", "BTC/USD", Side.LONG, Decimal(1), entry, Decimal(0), candles[0].time, entry * Decimal("0.99"),
              entry * Decimal("1.01"))
    touching = [i for i in range(1, 4000) if not book.untouched_by(columns.lows[i], columns.highs[i])]

    assert touching, "the month's first hours reach one of the levels"
    assert columns.first_touching(book, 1, 4000) == touching[0]
    assert columns.first_touching(book, touching[0] + 1, 4000) == next((i for i in touching if i > touching[0]), 4000)
    assert columns.first_touching(book, 1, touching[0]) == touching[0]


def test_candles_are_not_taken_as_quiet_while_a_loss_limit_needs_every_close(candles):
    columns = CandleColumns(candles[:100])
    orchestrator = StrategyOrchestrator("s", build_strategy("sma_crossover", {"max_drawdown_pct": "0.1"}), "BTC/USD",
                                        "1m", CAPITAL, MemoryStore(), MemoryPublisher())

    with pytest.raises(ValueError, match="not quiet"):
        orchestrator.pass_quiet(columns, 0, 50)
    assert orchestrator.last_candle_time is None
