"""Risk rules: entry size as a fraction of equity, the open-position limit, and stop and target prices."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orchestrator.config import StrategyConfig, parse_config
from orchestrator.positions import Side
from orchestrator.risk import RiskRejected, RiskRules

D = Decimal


def rules(**changes) -> RiskRules:
    settings = {"position_size": D("0.1"), "stop_loss_pct": D("0.02"), "take_profit_pct": D("0.04"), "max_open_positions": 2}
    settings.update(changes)
    return RiskRules(**settings)


def test_rules_are_taken_from_the_strategy_config():
    config = parse_config(StrategyConfig, {"position_size": "0.3", "stop_loss_pct": "", "take_profit_pct": "0.05", "max_open_positions": 4})
    assert RiskRules.from_config(config) == RiskRules(D("0.3"), None, D("0.05"), 4)


def test_entry_quantity_is_the_position_size_share_of_equity_divided_by_the_price():
    # 10000 * 0.1 / 250 = 4 exactly.
    assert rules().entry_quantity(D("10000"), D("250"), 0) == D("4")


@pytest.mark.parametrize(
    ("equity", "price", "expected"),
    [
        # 1000 / 30000 = 0.0333333333...: cut at eight decimals.
        ("10000", "30000", "0.03333333"),
        # 100 / 6 = 16.6666666666...: rounded down, never up to ...67, so the entry never costs more than allowed.
        ("1000", "6", "16.66666666"),
        # 1000.05 / 47123.45 = 0.021221918...: down to ...91, not ...92.
        ("10000.5", "47123.45", "0.02122191"),
    ],
)
def test_entry_quantity_is_rounded_down_to_one_hundred_millionth(equity, price, expected):
    quantity = rules().entry_quantity(D(equity), D(price), 0)
    assert quantity == D(expected)
    assert quantity.as_tuple().exponent == -8
    assert quantity * D(price) <= D(equity) * D("0.1")


def test_entry_is_allowed_below_the_maximum_of_open_positions():
    assert rules(max_open_positions=2).entry_quantity(D("10000"), D("100"), 1) == D("10")


@pytest.mark.parametrize("open_count", [2, 3])
def test_entry_is_refused_at_or_above_the_maximum_of_open_positions(open_count):
    with pytest.raises(RiskRejected, match=f"{open_count} of at most 2 positions already open or pending"):
        rules(max_open_positions=2).entry_quantity(D("10000"), D("100"), open_count)


@pytest.mark.parametrize("equity", ["0", "-250.5"])
def test_entry_is_refused_when_equity_is_gone(equity):
    with pytest.raises(RiskRejected, match=f"equity is {equity}: nothing left to risk"):
        rules().entry_quantity(D(equity), D("100"), 0)


def test_entry_is_refused_when_the_share_of_equity_buys_less_than_the_smallest_quantity():
    # 0.001 * 0.1 / 50000 = 2e-9, below the 1e-8 step.
    with pytest.raises(RiskRejected, match="buys nothing at 50000"):
        rules().entry_quantity(D("0.001"), D("50000"), 0)


def test_protective_prices_of_a_long_sit_below_and_above_the_entry():
    assert rules().protective_prices(Side.LONG, D("100")) == (D("98"), D("104"))


def test_protective_prices_of_a_short_are_mirrored_above_and_below_the_entry():
    assert rules().protective_prices(Side.SHORT, D("100")) == (D("102"), D("96"))


@pytest.mark.parametrize("side", [Side.LONG, Side.SHORT])
def test_protective_prices_are_quantized_to_the_price_step(side):
    entry = D("33333.33333333")
    stop, target = rules().protective_prices(side, entry)
    sign = side.sign
    assert stop == (entry * (1 - sign * D("0.02"))).quantize(D("0.00000001"))
    assert target == (entry * (1 + sign * D("0.04"))).quantize(D("0.00000001"))
    assert stop.as_tuple().exponent == target.as_tuple().exponent == -8


def test_no_stop_or_target_is_set_when_the_config_leaves_them_empty():
    no_protection = rules(stop_loss_pct=None, take_profit_pct=None)
    assert no_protection.protective_prices(Side.LONG, D("100")) == (None, None)
    assert rules(stop_loss_pct=None).protective_prices(Side.SHORT, D("100")) == (None, D("96"))
