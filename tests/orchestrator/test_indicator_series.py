"""A market's indicators over a whole run at once give, after each candle, exactly what the incremental indicator
gives fed the candles one by one, and nothing at a candle depends on a later one."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from orchestrator.candle_schedule import CandleColumns
from orchestrator.datasets import load_candles
from orchestrator.indicator_series import CloseTotals, IndicatorSeries, indicator_series, sma_series
from orchestrator.indicators import IndicatorSet, IndicatorSpec, build_indicator


@pytest.fixture(scope="module")
def candles():
    return load_candles("BTC/USD", "1m", limit=3000)


@pytest.mark.parametrize("key", ["sma_1", "sma_7", "sma_60", "ema_12", "rsi_14", "atr_7"])
def test_each_value_equals_the_incremental_indicators_after_that_candle(candles, key):
    spec = IndicatorSpec.parse(key)
    update = build_indicator(spec).update

    assert indicator_series(spec, candles) == [update(candle) for candle in candles]


def test_a_run_shorter_than_the_period_has_no_value_yet(candles):
    assert indicator_series(IndicatorSpec("sma", 30), candles[:4]) == [None] * 4


def test_a_value_depends_on_no_later_candle(candles):
    spec = IndicatorSpec("sma", 20)
    altered = candles[:1000] + [replace(c, close=c.close * 2, high=c.high * 2) for c in candles[1000:]]

    assert indicator_series(spec, altered)[:1000] == indicator_series(spec, candles)[:1000]
    assert indicator_series(spec, altered)[1000] != indicator_series(spec, candles)[1000]


def test_strategies_reading_the_series_see_the_values_after_the_candle_they_are_given(candles):
    series = IndicatorSeries(candles, CandleColumns(candles).times)
    fast = IndicatorSet([IndicatorSpec("sma", 5)], series)
    slow = IndicatorSet([IndicatorSpec("sma", 5), IndicatorSpec("rsi", 14)], series)
    one_by_one = IndicatorSet([IndicatorSpec("sma", 5), IndicatorSpec("rsi", 14)])
    expected = [dict(one_by_one.update(candle)) for candle in candles]

    for index in (0, 13, 14, 1500, 1499, 2999):
        assert slow.update(candles[index]) == expected[index]
        assert fast.update(candles[index])["sma_5"] == expected[index]["sma_5"]
    assert set(series.series) == {"sma_5", "rsi_14"}


@pytest.mark.parametrize("symbol", ["BTC/USD", "GBP/USD"])
def test_sma_values_equal_the_incremental_ones_whatever_the_closes_decimals(candles, symbol):
    run = candles if symbol == "BTC/USD" else load_candles(symbol, "1m", limit=3000)
    # One close with all ten places: the whole run is then counted in 1e-10 again.
    finest = [*run[:1500], replace(run[1500], close=run[1500].close + Decimal("1E-10")), *run[1501:]]
    totals, finest_totals = CloseTotals.of(run), CloseTotals.of(finest)
    assert totals.unit > 1 and finest_totals.unit == 1

    for period in (1, 10, 30, 60):
        for closes, counted in ((run, totals), (finest, finest_totals)):
            update = build_indicator(IndicatorSpec("sma", period)).update
            assert sma_series(counted, period) == [update(candle) for candle in closes]
