"""RSI mean reversion: enter when RSI is oversold, exit once it has recovered past the exit level."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from orchestrator.candles import Candle
from orchestrator.config import InvalidConfig, parse_config
from orchestrator.indicators import IndicatorSet, IndicatorSpec
from orchestrator.positions import Position, PositionBook, Side
from orchestrator.strategy import Signal, SignalAction
from strategies import STRATEGIES, RsiMeanReversion, RsiMeanReversionConfig

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
# Wilder's RSI over 2 changes, worked out by hand:
# falling 10, 9, 8 -> RSI 0; then 9 -> 50; then 10 -> 75.
FALL_THEN_RECOVER = ["10", "9", "8", "9", "10"]
# rising 10, 11, 12 -> RSI 100; then 11 -> 50; then 10 -> 25.
RISE_THEN_FALL = ["10", "11", "12", "11", "10"]


def candles_at_consecutive_minutes(closes: list[str]) -> list[Candle]:
    candles = []
    for minute, close in enumerate(closes):
        price = Decimal(close)
        candles.append(Candle("GBP/USD", "1m", T0 + timedelta(minutes=minute), price, price, price, price, Decimal(1)))
    return candles


def held(side: Side | None) -> list[Position]:
    if side is None:
        return []
    book = PositionBook("rsi-1")
    book.open("p1", "GBP/USD", side, Decimal(1), Decimal(10), Decimal(0), T0)
    return book.open_positions()


def mean_reversion(**settings) -> RsiMeanReversion:
    return RsiMeanReversion(parse_config(RsiMeanReversionConfig, {"rsi_period": 2, **settings}))


def signals_over(strategy: RsiMeanReversion, closes: list[str], side: Side | None = None) -> list[list[Signal]]:
    """Signals per candle, computed only from the indicators the strategy declared."""
    indicators = IndicatorSet(strategy.indicators())
    positions = held(side)
    return [
        list(strategy.on_candle(candle, indicators.update(candle), positions))
        for candle in candles_at_consecutive_minutes(closes)
    ]


def test_it_is_registered_under_its_name():
    assert STRATEGIES["rsi_mean_reversion"] is RsiMeanReversion
    assert RsiMeanReversion.config_class is RsiMeanReversionConfig


def test_it_declares_only_its_rsi():
    assert tuple(mean_reversion().indicators()) == (IndicatorSpec("rsi", 2),)
    assert tuple(RsiMeanReversion(parse_config(RsiMeanReversionConfig, {})).indicators()) == (IndicatorSpec("rsi", 14),)


def test_oversold_rsi_with_nothing_held_asks_to_enter_long_once_rsi_exists():
    signals = signals_over(mean_reversion(), FALL_THEN_RECOVER)
    assert signals == [[], [], [Signal(SignalAction.ENTER_LONG, "RSI 0.0 is below 30 (oversold)")], [], []]


def test_oversold_rsi_while_a_long_is_held_adds_nothing():
    assert signals_over(mean_reversion(), ["10", "9", "8", "7"], side=Side.LONG) == [[], [], [], []]


def test_a_held_long_exits_when_rsi_rises_above_the_exit_level_and_not_when_it_just_reaches_it():
    signals = signals_over(mean_reversion(), FALL_THEN_RECOVER, side=Side.LONG)
    # Candle 3 brings RSI to exactly 50: not above the exit level yet.
    assert signals == [[], [], [], [], [Signal(SignalAction.EXIT, "RSI 75.0 recovered above 50")]]


def test_overbought_rsi_enters_short_only_when_shorts_are_allowed():
    assert signals_over(mean_reversion(), RISE_THEN_FALL)[2] == []
    signals = signals_over(mean_reversion(allow_short=True), RISE_THEN_FALL)
    assert signals[2] == [Signal(SignalAction.ENTER_SHORT, "RSI 100.0 is above 70 (overbought)")]


def test_a_held_short_exits_when_rsi_falls_below_the_exit_level():
    signals = signals_over(mean_reversion(allow_short=True), RISE_THEN_FALL, side=Side.SHORT)
    assert signals == [[], [], [], [], [Signal(SignalAction.EXIT, "RSI 25.0 fell back below 50")]]


def test_rsi_between_the_thresholds_with_nothing_held_asks_for_nothing():
    # RISE_THEN_FALL candle 3 is RSI 50: neither oversold nor overbought.
    assert signals_over(mean_reversion(allow_short=True), RISE_THEN_FALL)[3] == []


def test_the_thresholds_come_from_the_config():
    # Candle 4 of RISE_THEN_FALL is RSI 25: oversold under 30, not under 20.
    assert signals_over(mean_reversion(), RISE_THEN_FALL)[4] == [
        Signal(SignalAction.ENTER_LONG, "RSI 25.0 is below 30 (oversold)")
    ]
    assert signals_over(mean_reversion(oversold="20"), RISE_THEN_FALL)[4] == []
    assert signals_over(mean_reversion(oversold="25.5"), RISE_THEN_FALL)[4] == [
        Signal(SignalAction.ENTER_LONG, "RSI 25.0 is below 25.5 (oversold)")
    ]


def test_a_longer_period_waits_for_its_own_warm_up():
    # RSI 3 needs four candles; the third candle of a fall is not a signal yet.
    signals = signals_over(mean_reversion(rsi_period=3), ["10", "9", "8", "7"])
    assert signals == [[], [], [], [Signal(SignalAction.ENTER_LONG, "RSI 0.0 is below 30 (oversold)")]]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"rsi_period": 1}, "rsi_period"),
        ({"oversold": "0"}, "oversold"),
        ({"oversold": "50"}, "oversold"),
        ({"oversold": "60"}, "oversold"),
        ({"overbought": "50"}, "overbought"),
        ({"overbought": "100"}, "overbought"),
        ({"exit_level": "75"}, "overbought"),
    ],
)
def test_config_refuses_thresholds_out_of_order_naming_the_field(data, field):
    with pytest.raises(InvalidConfig) as invalid:
        parse_config(RsiMeanReversionConfig, data)
    assert list(invalid.value.errors) == [field]


def test_config_messages_name_the_exit_level_they_are_measured_against():
    with pytest.raises(InvalidConfig) as invalid:
        parse_config(RsiMeanReversionConfig, {"oversold": "40", "exit_level": "35", "overbought": "30"})
    assert invalid.value.errors == {
        "oversold": "must be above 0 and below exit_level (35)",
        "overbought": "must be above exit_level (35) and below 100",
    }
