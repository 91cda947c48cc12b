"""A strategy's chart lines: the values its own indicators take on real candles, after a warm-up that is not shown."""

from __future__ import annotations

import pandas as pd
import pytest

from orchestrator.datasets import load_candles
from orchestrator.engine import StrategyOrchestrator
from orchestrator.indicator_lines import indicator_lines
from orchestrator.indicators import RSI, SMA, IndicatorSpec
from orchestrator.ports import MemoryPublisher, MemoryStore
from orchestrator.strategy import ChartLine
from strategies import build_strategy


@pytest.fixture(scope="module")
def candles():
    return load_candles("BTC/USD", limit=1500)


class Recording:
    """An SMA crossover that notes the indicator values the engine hands it on every candle."""

    def __init__(self, inner) -> None:
        self.inner, self.config, self.seen = inner, inner.config, {}

    def indicators(self):
        return self.inner.indicators()

    def chart_lines(self):
        return self.inner.chart_lines()

    def state(self):
        return self.inner.state()

    def restore(self, state) -> None:
        self.inner.restore(state)

    def on_candle(self, candle, indicators, positions):
        self.seen[candle.time] = dict(indicators)
        return self.inner.on_candle(candle, indicators, positions)


def test_the_sma_crossovers_lines_are_the_averages_the_engine_gave_it_candle_by_candle(candles):
    strategy = Recording(build_strategy("sma_crossover", {"fast_period": 7, "slow_period": 25}))
    engine = StrategyOrchestrator("lines", strategy, "BTC/USD", "1m", 10_000, MemoryStore(), MemoryPublisher())
    for candle in candles:
        engine.process(candle)

    lines = indicator_lines(strategy.chart_lines(), candles)

    assert [(line.key, line.on_price) for line in lines] == [("sma_7", True), ("sma_25", True)]
    for line in lines:
        seen = [(time, values[line.key]) for time, values in strategy.seen.items() if values[line.key] is not None]
        assert line.points == seen
        assert len(line.points) == len(candles) - int(line.key.split("_")[1]) + 1


def test_the_lines_agree_with_a_rolling_mean_of_the_closes(candles):
    lines = indicator_lines(build_strategy("sma_crossover", {"fast_period": 5, "slow_period": 20}).chart_lines(), candles)

    closes = pd.Series([float(c.close) for c in candles], index=[c.time for c in candles])
    for line, period in zip(lines, (5, 20)):
        reference = closes.rolling(period).mean().dropna()
        assert [time for time, _ in line.points] == list(reference.index)
        assert [value for _, value in line.points] == pytest.approx(list(reference), rel=1e-12)


def test_candles_before_the_shown_ones_only_warm_the_indicators_up(candles):
    shown_from = candles[1000].time

    (line,) = indicator_lines([ChartLine(IndicatorSpec("sma", 30))], candles, shown_from=shown_from)

    sma = SMA(30)
    expected = [(c.time, sma.update(c)) for c in candles][1000:]
    assert line.points == expected and line.points[0][0] == shown_from


def test_the_rsi_strategy_draws_its_rsi_in_a_pane_of_its_own(candles):
    strategy = build_strategy("rsi_mean_reversion", {"rsi_period": 9})

    (line,) = indicator_lines(strategy.chart_lines(), candles)

    rsi = RSI(9)
    expected = [(c.time, value) for c in candles if (value := rsi.update(c)) is not None]
    assert (line.key, line.on_price) == ("rsi_9", False)
    assert line.points == expected and all(0 <= value <= 100 for _, value in line.points)


def test_a_line_declared_twice_is_drawn_once_and_none_gives_no_lines(candles):
    twice = [ChartLine(IndicatorSpec("ema", 10)), ChartLine(IndicatorSpec("ema", 10), on_price=False)]

    assert [line.key for line in indicator_lines(twice, candles[:50])] == ["ema_10"]
    assert indicator_lines([], candles[:50]) == []
