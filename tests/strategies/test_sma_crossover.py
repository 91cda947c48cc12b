"""SMA crossover: signals on the candle where the fast average crosses the slow one, and only then."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from orchestrator.candles import Candle
from orchestrator.config import InvalidConfig, parse_config
from orchestrator.indicators import IndicatorSet, IndicatorSpec
from orchestrator.positions import Position, PositionBook, Side
from orchestrator.strategy import Signal, SignalAction
from strategies import STRATEGIES, SmaCrossover, SmaCrossoverConfig

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
# SMA 2 against SMA 3: below at candles 2 and 3, above from candle 4, below from candle 6, above again at candle 9.
CLOSES = ["12", "11", "10", "11", "12", "11", "10", "9", "10", "11"]
ABOVE = "SMA 2 crossed above SMA 3"
BELOW = "SMA 2 crossed below SMA 3"


def candles_at_consecutive_minutes(closes: list[str], symbol: str = "BTC/USD") -> list[Candle]:
    candles = []
    for minute, close in enumerate(closes):
        price = Decimal(close)
        candles.append(Candle(symbol, "1m", T0 + timedelta(minutes=minute), price, price, price, price, Decimal(1)))
    return candles


def held(side: Side | None) -> list[Position]:
    if side is None:
        return []
    book = PositionBook("sma-1")
    book.open("p1", "BTC/USD", side, Decimal(1), Decimal(10), Decimal(0), T0)
    return book.open_positions()


def crossover(**settings) -> SmaCrossover:
    return SmaCrossover(parse_config(SmaCrossoverConfig, {"fast_period": 2, "slow_period": 3, **settings}))


def signals_over(strategy: SmaCrossover, closes: list[str], side: Side | None = None) -> dict[int, list[Signal]]:
    """Signals by candle index, computed only from the indicators the strategy declared."""
    indicators = IndicatorSet(strategy.indicators())
    positions = held(side)
    by_candle = {}
    for index, candle in enumerate(candles_at_consecutive_minutes(closes)):
        signals = list(strategy.on_candle(candle, indicators.update(candle), positions))
        if signals:
            by_candle[index] = signals
    return by_candle


def test_it_is_registered_under_its_name():
    assert STRATEGIES["sma_crossover"] is SmaCrossover
    assert SmaCrossover.config_class is SmaCrossoverConfig


def test_it_declares_only_its_two_moving_averages():
    strategy = crossover()
    assert tuple(strategy.indicators()) == (IndicatorSpec("sma", 2), IndicatorSpec("sma", 3))
    assert IndicatorSet(strategy.indicators()).keys == ("sma_2", "sma_3")


def test_no_signal_while_warming_up_nor_on_the_first_candle_with_both_averages():
    # Fast is already above slow on candle 2, but no cross has been seen yet.
    assert signals_over(crossover(), ["10", "20", "30", "40"]) == {}


def test_fast_crossing_above_slow_asks_to_enter_long_once_per_cross():
    assert signals_over(crossover(), CLOSES) == {
        4: [Signal(SignalAction.ENTER_LONG, ABOVE)],
        9: [Signal(SignalAction.ENTER_LONG, ABOVE)],
    }


def test_equal_averages_are_no_side_so_a_fall_from_flat_is_no_cross():
    assert signals_over(crossover(allow_short=True), ["10", "10", "10", "9", "8", "7"]) == {}


def test_a_path_through_an_exact_tie_is_no_cross_a_jump_across_is():
    # SMA 2 / SMA 3: below (9 / 9.33) at 2, equal (9 / 9) at 3, above (9.5 / 9.33) at 4.
    through_a_tie = ["10", "9", "9", "9", "10"]
    assert signals_over(crossover(allow_short=True), through_a_tie) == {}
    # The same rise without the tie: below at 2 and 3, above at 4.
    assert signals_over(crossover(), CLOSES[:5]) == {4: [Signal(SignalAction.ENTER_LONG, ABOVE)]}


def test_a_tie_of_five_decimal_prices_is_exact():
    closes = ["1.10000", "1.30000", "1.20000", "1.20000"]
    assert sum(float(close) for close in closes) / 4 != 1.2, "a float sum of these closes drifts"
    indicators = IndicatorSet((IndicatorSpec("sma", 2), IndicatorSpec("sma", 4)))
    values = [dict(indicators.update(candle)) for candle in candles_at_consecutive_minutes(closes)]
    assert values[3]["sma_2"] == values[3]["sma_4"] == 1.2


def test_crossing_below_with_a_long_held_asks_only_to_exit_when_shorts_are_not_allowed():
    signals = signals_over(crossover(), CLOSES, side=Side.LONG)
    assert signals[6] == [Signal(SignalAction.EXIT, BELOW)]


def test_crossing_below_with_a_long_held_exits_then_goes_short_when_allowed():
    signals = signals_over(crossover(allow_short=True), CLOSES, side=Side.LONG)
    assert signals[6] == [Signal(SignalAction.EXIT, BELOW), Signal(SignalAction.ENTER_SHORT, BELOW)]


def test_crossing_below_with_nothing_held_goes_short_only_when_allowed():
    assert 6 not in signals_over(crossover(), CLOSES)
    assert signals_over(crossover(allow_short=True), CLOSES)[6] == [Signal(SignalAction.ENTER_SHORT, BELOW)]


def test_crossing_above_with_a_short_held_exits_then_enters_long():
    signals = signals_over(crossover(allow_short=True), CLOSES, side=Side.SHORT)
    assert signals[4] == [Signal(SignalAction.EXIT, ABOVE), Signal(SignalAction.ENTER_LONG, ABOVE)]
    assert signals[9] == [Signal(SignalAction.EXIT, ABOVE), Signal(SignalAction.ENTER_LONG, ABOVE)]


def test_the_reason_names_the_configured_periods():
    strategy = crossover(fast_period=3, slow_period=4)
    closes = ["13", "10", "10", "10", "9", "14"]
    assert signals_over(strategy, closes) == {5: [Signal(SignalAction.ENTER_LONG, "SMA 3 crossed above SMA 4")]}


def test_two_instances_keep_their_own_cross_state():
    first, second = crossover(), crossover()
    signals_over(first, CLOSES[:5])
    # `second` has seen nothing, so the same first five candles give it the same cross again.
    assert signals_over(second, CLOSES[:5]) == {4: [Signal(SignalAction.ENTER_LONG, ABOVE)]}


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        ({"fast_period": 0, "slow_period": 3}, {"fast_period": "must be at least 1"}),
        ({"fast_period": 5, "slow_period": 5}, {"slow_period": "must be longer than fast_period (5)"}),
        ({"fast_period": 9, "slow_period": 3}, {"slow_period": "must be longer than fast_period (9)"}),
        ({"fast_period": "x", "slow_period": 3}, {"fast_period": "must be a whole number"}),
    ],
)
def test_config_refuses_periods_that_cannot_cross(data, errors):
    with pytest.raises(InvalidConfig) as invalid:
        parse_config(SmaCrossoverConfig, data)
    assert invalid.value.errors == errors


@pytest.mark.parametrize("closes", [CLOSES, ["10", "10", "10", "11", "11", "10", "10", "12", "9", "9", "9"]])
def test_the_decision_candles_are_exactly_those_on_which_it_signals_or_changes_its_memory(closes):
    strategy = crossover()
    indicators = IndicatorSet(strategy.indicators())
    candles = candles_at_consecutive_minutes(closes)
    values = [dict(indicators.update(candle)) for candle in candles]
    changed = []
    for index, candle in enumerate(candles):
        before = strategy.state()
        if strategy.on_candle(candle, values[index], held(None)) or strategy.state() != before:
            changed.append(index)

    series = {key: [v[key] for v in values] for key in values[0]}
    assert list(crossover().decision_candles(series)) == changed
    assert len(changed) >= 4
