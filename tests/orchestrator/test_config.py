"""Strategy configs: built from JSON with defaults and coercion, every problem reported against its field."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal

import pytest

from orchestrator.config import InvalidConfig, StrategyConfig, config_to_json, parse_config
from strategies import (
    STRATEGIES,
    RsiMeanReversionConfig,
    SmaCrossover,
    SmaCrossoverConfig,
    build_strategy,
    parse_strategy_config,
)


def errors_of(config_class, data) -> dict[str, str]:
    with pytest.raises(InvalidConfig) as invalid:
        parse_config(config_class, data)
    return invalid.value.errors


@pytest.mark.parametrize("data", [None, {}])
def test_missing_settings_take_the_documented_defaults(data):
    config = parse_config(StrategyConfig, data)
    assert config == StrategyConfig(
        position_size=Decimal("0.1"),
        stop_loss_pct=Decimal("0.02"),
        take_profit_pct=Decimal("0.04"),
        max_open_positions=1,
        fee_rate=Decimal("0.0004"),
        slippage=Decimal("0.0002"),
        allow_short=False,
    )


def test_a_strategy_config_adds_its_own_defaults_to_the_common_ones():
    config = parse_config(SmaCrossoverConfig, {})
    assert (config.fast_period, config.slow_period) == (10, 30)
    assert config.position_size == Decimal("0.1")


def test_strings_and_numbers_are_coerced_to_the_annotated_types():
    config = parse_config(
        SmaCrossoverConfig,
        {
            "position_size": "0.25",
            "stop_loss_pct": 0.01,
            "take_profit_pct": "",
            "max_open_positions": "3",
            "fee_rate": 0,
            "fast_period": " 5 ",
            "slow_period": 12.0,
            "allow_short": True,
        },
    )
    assert config.position_size == Decimal("0.25")
    # A float goes through its shortest repr: 0.01 stays 0.01, not 0.01000000000000000020816...
    assert str(config.stop_loss_pct) == "0.01"
    assert config.take_profit_pct is None
    assert config.max_open_positions == 3
    assert config.fee_rate == Decimal(0)
    assert (config.fast_period, config.slow_period) == (5, 12)
    assert type(config.fast_period) is int and type(config.slow_period) is int
    assert config.allow_short is True


def test_an_optional_setting_given_as_null_means_none():
    config = parse_config(StrategyConfig, {"stop_loss_pct": None, "take_profit_pct": None})
    assert config.stop_loss_pct is None
    assert config.take_profit_pct is None


def test_errors_are_collected_per_field_all_at_once():
    errors = errors_of(
        SmaCrossoverConfig,
        {
            "position_size": "ten percent",
            "stop_loss_pct": "NaN",
            "max_open_positions": True,
            "fast_period": "2.5",
            "slow_period": [30],
            "allow_short": "yes",
            "fee_rate": None,
        },
    )
    assert errors == {
        "position_size": "must be a number",
        "stop_loss_pct": "must be a finite number",
        "max_open_positions": "must be a whole number",
        "fast_period": "must be a whole number",
        "slow_period": "must be a whole number",
        "allow_short": "must be true or false",
        "fee_rate": "must be a number",
    }


@pytest.mark.parametrize("value", ["--5", "5-", "²", "1e3", "five", "", 2.5, None, {"n": 5}])
def test_a_whole_number_setting_refuses_anything_else_with_the_users_message(value):
    assert errors_of(SmaCrossoverConfig, {"fast_period": value}) == {"fast_period": "must be a whole number"}


def test_a_negative_whole_number_is_read_and_then_refused_by_the_range_check():
    errors = errors_of(SmaCrossoverConfig, {"fast_period": "-3"})
    assert errors == {"fast_period": "must be at least 1"}


def test_invalid_config_message_lists_each_field_and_its_problem():
    with pytest.raises(InvalidConfig) as invalid:
        parse_config(StrategyConfig, {"position_size": "x", "allow_short": 1})
    assert isinstance(invalid.value, ValueError)
    assert str(invalid.value) == "position_size: must be a number; allow_short: must be true or false"


def test_unknown_settings_are_rejected_and_the_known_ones_listed():
    errors = errors_of(SmaCrossoverConfig, {"fast": 5, "fast_period": 5})
    assert list(errors) == ["fast"]
    assert errors["fast"].startswith("is not a setting of SmaCrossoverConfig; known: position_size, ")
    assert errors["fast"].endswith("allow_short, max_drawdown_pct, daily_loss_pct, max_gross_exposure, fast_period, slow_period")


def test_unknown_settings_and_bad_values_are_reported_together():
    errors = errors_of(StrategyConfig, {"stoploss": "0.1", "slippage": "lots"})
    assert set(errors) == {"stoploss", "slippage"}


def test_data_that_is_not_an_object_is_rejected_as_a_whole():
    assert errors_of(StrategyConfig, ["position_size", "0.1"]) == {"config": "must be a JSON object"}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"position_size": "0"}, "position_size"),
        ({"position_size": "1.01"}, "position_size"),
        ({"stop_loss_pct": "0"}, "stop_loss_pct"),
        ({"stop_loss_pct": "1"}, "stop_loss_pct"),
        ({"take_profit_pct": "-0.04"}, "take_profit_pct"),
        ({"max_open_positions": 0}, "max_open_positions"),
        ({"fee_rate": "0.1"}, "fee_rate"),
        ({"fee_rate": "-0.0001"}, "fee_rate"),
        ({"slippage": "0.5"}, "slippage"),
    ],
)
def test_out_of_range_values_are_reported_against_their_field(data, field):
    assert list(errors_of(StrategyConfig, data)) == [field]


def test_the_whole_capital_is_an_allowed_position_size():
    assert parse_config(StrategyConfig, {"position_size": "1"}).position_size == Decimal(1)


@pytest.mark.parametrize(("fast", "slow"), [(20, 20), (30, 10)])
def test_sma_fast_period_not_shorter_than_slow_is_an_error_on_slow_period(fast, slow):
    errors = errors_of(SmaCrossoverConfig, {"fast_period": fast, "slow_period": slow})
    assert errors == {"slow_period": f"must be longer than fast_period ({fast})"}


def test_range_errors_of_the_common_and_the_strategy_settings_come_together():
    errors = errors_of(SmaCrossoverConfig, {"fast_period": 0, "position_size": "2"})
    assert set(errors) == {"fast_period", "position_size"}


def test_a_parsed_config_is_frozen():
    config = parse_config(SmaCrossoverConfig, {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.fast_period = 3


@pytest.mark.parametrize(
    ("config_class", "data"),
    [
        (StrategyConfig, {}),
        (StrategyConfig, {"stop_loss_pct": None, "take_profit_pct": "0.0123456789012345678901", "allow_short": True}),
        (SmaCrossoverConfig, {"fast_period": 3, "slow_period": 7, "fee_rate": "0.00100", "max_open_positions": 4}),
        (RsiMeanReversionConfig, {"rsi_period": 9, "oversold": "25.5", "exit_level": "55", "overbought": "80"}),
    ],
)
def test_config_to_json_round_trips_through_json_text_exactly(config_class, data):
    config = parse_config(config_class, data)
    as_json = config_to_json(config)
    assert all(isinstance(value, str) for name, value in as_json.items() if isinstance(getattr(config, name), Decimal))
    back = parse_config(config_class, json.loads(json.dumps(as_json)))
    assert back == config
    assert config_to_json(back) == as_json


def test_config_to_json_keeps_every_digit_and_trailing_zero():
    config = parse_config(StrategyConfig, {"fee_rate": "0.00100", "slippage": "0.0000000000000000000001"})
    as_json = config_to_json(config)
    assert as_json["fee_rate"] == "0.00100"
    assert as_json["slippage"] == "1E-22"
    assert as_json["max_open_positions"] == 1
    assert as_json["allow_short"] is False


def test_parse_strategy_config_uses_the_registered_strategys_schema():
    config = parse_strategy_config("sma_crossover", {"fast_period": "4", "slow_period": "9"})
    assert type(config) is SmaCrossoverConfig
    assert (config.fast_period, config.slow_period) == (4, 9)
    with pytest.raises(InvalidConfig) as invalid:
        parse_strategy_config("rsi_mean_reversion", {"fast_period": 4})
    assert list(invalid.value.errors) == ["fast_period"]


def test_parse_strategy_config_rejects_an_unknown_strategy_class_and_lists_the_known_ones():
    with pytest.raises(InvalidConfig) as invalid:
        parse_strategy_config("macd_cross", {})
    assert invalid.value.errors == {
        "strategy_class": f"unknown strategy 'macd_cross'; known: {', '.join(STRATEGIES)}"
    }
    assert set(STRATEGIES) == {"sma_crossover", "rsi_mean_reversion"}


def test_build_strategy_rejects_an_unknown_strategy_class_as_invalid_config():
    with pytest.raises(InvalidConfig) as invalid:
        build_strategy("macd_cross", {})
    assert list(invalid.value.errors) == ["strategy_class"]


def test_build_strategy_makes_the_registered_strategy_with_its_parsed_config():
    strategy = build_strategy("sma_crossover", {"fast_period": 2, "slow_period": 3})
    assert type(strategy) is SmaCrossover
    assert strategy.config == SmaCrossoverConfig(fast_period=2, slow_period=3)


def test_a_config_built_directly_checks_its_invariants_too():
    from strategies import SmaCrossoverConfig

    with pytest.raises(InvalidConfig) as raised:
        SmaCrossoverConfig(fast_period=30, slow_period=10)
    assert "slow_period" in raised.value.errors
