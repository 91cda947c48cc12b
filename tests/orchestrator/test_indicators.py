"""Incremental indicators checked against pandas reference computations on real candles."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from orchestrator.candles import Candle
from orchestrator.datasets import load_candles
from orchestrator.indicators import (
    ATR,
    EMA,
    INDICATORS,
    RSI,
    SMA,
    IndicatorSet,
    IndicatorSpec,
    MarketIndicators,
    UnknownIndicator,
    build_indicator,
)

PERIODS = (5, 14, 50)
RELATIVE_TOLERANCE = 1e-9


@pytest.fixture(scope="module")
def btc_candles() -> list[Candle]:
    return load_candles("BTC/USD", limit=3000)


@pytest.fixture(scope="module")
def gbp_candles() -> list[Candle]:
    # 5m over the whole month, so the series runs across the weekend gaps.
    return load_candles("GBP/USD", "5m")


@pytest.fixture(params=["btc_candles", "gbp_candles"])
def candles(request) -> list[Candle]:
    return request.getfixturevalue(request.param)


def ohlc(candles: list[Candle]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "high": [float(candle.high) for candle in candles],
            "low": [float(candle.low) for candle in candles],
            "close": [float(candle.close) for candle in candles],
        }
    )


def seeded_smoothing(series: pd.Series, period: int, alpha: float) -> pd.Series:
    """Recursive smoothing seeded with the mean of the first `period` values, NaN before that."""
    seed = series.iloc[:period].mean()
    seeded = pd.concat([pd.Series([seed], index=[series.index[period - 1]]), series.iloc[period:]])
    smoothed = seeded.ewm(alpha=alpha, adjust=False).mean()
    return smoothed.reindex(series.index)


def reference_sma(frame: pd.DataFrame, period: int) -> pd.Series:
    return frame["close"].rolling(period).mean()


def reference_ema(frame: pd.DataFrame, period: int) -> pd.Series:
    return seeded_smoothing(frame["close"], period, alpha=2 / (period + 1))


def reference_rsi(frame: pd.DataFrame, period: int) -> pd.Series:
    change = frame["close"].diff().iloc[1:]
    average_gain = seeded_smoothing(change.clip(lower=0), period, alpha=1 / period)
    average_loss = seeded_smoothing((-change).clip(lower=0), period, alpha=1 / period)
    rsi = 100 - 100 / (1 + average_gain / average_loss)
    rsi = rsi.where(average_loss != 0, 100.0).where(average_loss.notna())
    return rsi.reindex(frame.index)


def reference_atr(frame: pd.DataFrame, period: int) -> pd.Series:
    previous_close = frame["close"].shift(1)
    true_range = pd.concat(
        [
            frame["high"] - frame["low"],
            (frame["high"] - previous_close).abs(),
            (frame["low"] - previous_close).abs(),
        ],
        axis=1,
    ).max(axis=1)  # skips the NaN of the first row, leaving high - low
    return seeded_smoothing(true_range, period, alpha=1 / period)


REFERENCES = {SMA: reference_sma, EMA: reference_ema, RSI: reference_rsi, ATR: reference_atr}


def assert_matches_reference(indicator_class, candles: list[Candle], period: int) -> None:
    indicator = indicator_class(period)
    actual = [indicator.update(candle) for candle in candles]
    expected = REFERENCES[indicator_class](ohlc(candles), period).to_numpy()
    warm_up = int(np.isnan(expected).sum())
    assert np.isnan(expected[:warm_up]).all(), "reference has a gap after its warm-up"
    assert actual[:warm_up] == [None] * warm_up
    assert None not in actual[warm_up:]
    np.testing.assert_allclose(actual[warm_up:], expected[warm_up:], rtol=RELATIVE_TOLERANCE, atol=0)


@pytest.mark.parametrize("period", PERIODS)
def test_sma_matches_pandas_rolling_mean_on_real_candles(candles, period):
    assert_matches_reference(SMA, candles, period)


@pytest.mark.parametrize("period", PERIODS)
def test_ema_matches_pandas_ewm_seeded_with_the_first_sma_on_real_candles(candles, period):
    assert_matches_reference(EMA, candles, period)


@pytest.mark.parametrize("period", PERIODS)
def test_rsi_matches_pandas_wilder_smoothing_on_real_candles(candles, period):
    assert_matches_reference(RSI, candles, period)


@pytest.mark.parametrize("period", PERIODS)
def test_atr_matches_pandas_wilder_smoothing_of_true_range_on_real_candles(candles, period):
    assert_matches_reference(ATR, candles, period)


def test_sma_does_not_drift_over_the_full_btc_month():
    candles = load_candles("BTC/USD")
    sma = SMA(20)
    for candle in candles:
        sma.update(candle)
    exact_mean = sum(candle.close for candle in candles[-20:]) / 20
    assert sma.value == pytest.approx(float(exact_mean), rel=1e-12)


@pytest.mark.parametrize(
    ("indicator_class", "period", "first_value_at"),
    [(SMA, 14, 14), (EMA, 14, 14), (ATR, 14, 14), (RSI, 14, 15), (SMA, 1, 1), (RSI, 2, 3)],
)
def test_each_indicator_returns_none_until_its_documented_first_value(
    btc_candles, indicator_class, period, first_value_at
):
    indicator = indicator_class(period)
    for candle in btc_candles[: first_value_at - 1]:
        assert indicator.update(candle) is None
        assert indicator.value is None
        assert not indicator.ready
    value = indicator.update(btc_candles[first_value_at - 1])
    assert value is not None
    assert indicator.value == value
    assert indicator.ready


def make_candle(minute: int, close: str) -> Candle:
    price = Decimal(close)
    return Candle(
        symbol="TEST/USD",
        timeframe="1m",
        time=datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=minute),
        open=price,
        high=price,
        low=price,
        close=price,
    )


def test_rsi_is_100_when_closes_never_fall():
    rsi = RSI(3)
    values = [rsi.update(make_candle(minute, close)) for minute, close in enumerate(["10", "11", "11", "12", "13"])]
    assert values == [None, None, None, 100.0, 100.0]


def test_rsi_is_0_when_closes_only_fall():
    rsi = RSI(3)
    values = [rsi.update(make_candle(minute, close)) for minute, close in enumerate(["13", "12", "11", "10"])]
    assert values == [None, None, None, 0.0]


def test_atr_uses_the_gap_from_the_previous_close_as_true_range():
    atr = ATR(1)
    assert atr.update(make_candle(0, "100")) == 0.0
    # A flat candle at 110 after a close at 100: high - low is 0, the gap is 10.
    assert atr.update(make_candle(1, "110")) == 10.0


def test_indicators_keep_no_instance_dict():
    for indicator_class in INDICATORS.values():
        assert not hasattr(indicator_class(14), "__dict__"), indicator_class.__name__


def test_indicator_key_names_kind_and_period():
    assert [indicator.key for indicator in (SMA(20), EMA(9), RSI(14), ATR(7))] == ["sma_20", "ema_9", "rsi_14", "atr_7"]


@pytest.mark.parametrize(("text", "kind", "period"), [("sma_20", "sma", 20), ("RSI_14", "rsi", 14), (" ema_9 ", "ema", 9)])
def test_indicator_spec_parses_kind_and_period_and_gives_back_the_key(text, kind, period):
    spec = IndicatorSpec.parse(text)
    assert spec == IndicatorSpec(kind, period)
    assert spec.key == f"{kind}_{period}"
    assert IndicatorSpec.parse(spec.key) == spec


@pytest.mark.parametrize("text", ["sma", "sma_", "_20", "sma_x", "sma_-3", "sma_2.5", "sma_²"])
def test_indicator_spec_parse_rejects_text_not_in_kind_period_form(text):
    with pytest.raises(ValueError, match="kind_period"):
        IndicatorSpec.parse(text)


def test_build_indicator_makes_the_registered_class_with_the_period():
    indicator = build_indicator(IndicatorSpec("atr", 21))
    assert type(indicator) is ATR
    assert indicator.period == 21
    assert indicator.key == "atr_21"


def test_build_indicator_rejects_an_unknown_kind_and_lists_the_known_ones():
    with pytest.raises(UnknownIndicator, match="'macd'.*atr, ema, rsi, sma"):
        build_indicator(IndicatorSpec("macd", 12))
    assert issubclass(UnknownIndicator, ValueError)


@pytest.mark.parametrize("spec", [IndicatorSpec("sma", 0), IndicatorSpec("ema", -5), IndicatorSpec("atr", 0), IndicatorSpec("rsi", 1)])
def test_build_indicator_rejects_a_period_too_short_to_mean_anything(spec):
    with pytest.raises(ValueError, match="period must be at least"):
        build_indicator(spec)


@pytest.mark.parametrize("period", [2.5, "14", True])
def test_indicators_reject_a_period_that_is_not_a_whole_number(period):
    with pytest.raises(ValueError, match="whole number"):
        SMA(period)


def test_indicator_set_builds_only_the_declared_indicators_once_each():
    specs = [IndicatorSpec.parse(text) for text in ("ema_20", "rsi_14", "ema_20", "sma_50")]
    indicators = IndicatorSet(specs)
    assert indicators.keys == ("ema_20", "rsi_14", "sma_50")
    assert len(indicators) == 3
    assert "rsi_14" in indicators
    assert "atr_14" not in indicators
    assert indicators.values == {"ema_20": None, "rsi_14": None, "sma_50": None}


def test_indicator_set_values_match_standalone_indicators_and_update_one_dict_in_place(btc_candles):
    indicators = IndicatorSet([IndicatorSpec("sma", 5), IndicatorSpec("rsi", 3)])
    sma, rsi = SMA(5), RSI(3)
    values = indicators.update(btc_candles[0])
    assert values == {"sma_5": sma.update(btc_candles[0]), "rsi_3": rsi.update(btc_candles[0])}
    for candle in btc_candles[1:100]:
        returned = indicators.update(candle)
        assert returned is values
        assert values == indicators.values == {"sma_5": sma.update(candle), "rsi_3": rsi.update(candle)}


def test_indicator_set_is_ready_only_when_its_slowest_indicator_is(btc_candles):
    indicators = IndicatorSet([IndicatorSpec("sma", 3), IndicatorSpec("atr", 10)])
    for candle in btc_candles[:9]:
        indicators.update(candle)
    assert indicators.values["sma_3"] is not None
    assert not indicators.ready
    indicators.update(btc_candles[9])
    assert indicators.ready


def test_indicator_set_rejects_an_unknown_kind_when_built():
    with pytest.raises(UnknownIndicator):
        IndicatorSet([IndicatorSpec("sma", 5), IndicatorSpec("vwap", 5)])


def test_a_market_indicator_shared_by_several_sets_gives_exactly_each_sets_own_values_updated_once_per_candle(btc_candles):
    market = MarketIndicators()
    specs = [
        [IndicatorSpec("sma", 10), IndicatorSpec("sma", 30)],
        [IndicatorSpec("sma", 5), IndicatorSpec("sma", 30)],
        [IndicatorSpec("rsi", 14), IndicatorSpec("sma", 10), IndicatorSpec("ema", 20), IndicatorSpec("atr", 14)],
    ]
    shared = [IndicatorSet(declared, market) for declared in specs]
    alone = [IndicatorSet(declared) for declared in specs]

    for candle in btc_candles[:600]:
        for shared_set, own_set in zip(shared, alone):
            values = shared_set.update(candle)
            own = own_set.update(candle)
            assert {key: values[key] for key in own_set.keys} == own == shared_set.values

    assert shared[0].state()["sma_30"] == alone[1].state()["sma_30"]
    assert shared[0].ready and all(s.ready for s in shared)


def test_a_shared_indicator_is_one_object_and_a_late_declaration_is_refused(btc_candles):
    market = MarketIndicators()
    first = IndicatorSet([IndicatorSpec("sma", 30)], market)
    second = IndicatorSet([IndicatorSpec("sma", 30), IndicatorSpec("sma", 10)], market)
    assert market.declare(IndicatorSpec("sma", 30)) is market.declare(IndicatorSpec("sma", 30))
    first.update(btc_candles[0])
    second.update(btc_candles[0])  # the same candle again: not fed twice
    assert second.state()["sma_30"]["_closes"] == [btc_candles[0].close_units]

    with pytest.raises(ValueError, match="sma_50 declared after"):
        IndicatorSet([IndicatorSpec("sma", 50)], market)
