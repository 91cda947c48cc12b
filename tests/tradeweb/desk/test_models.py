"""Model rules that hold whatever edits the row: config schema, live mode, no new market or class while trading."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from tradeweb.desk import models

pytestmark = pytest.mark.django_db

T0 = datetime(2022, 1, 1, tzinfo=timezone.utc)


def test_live_mode_is_refused_until_the_desk_can_reach_an_exchange(make_strategy):
    strategy = make_strategy("alpha")
    strategy.mode = models.Strategy.Mode.LIVE
    with pytest.raises(ValidationError) as raised:
        strategy.full_clean()
    assert "mode" in raised.value.message_dict


def test_clean_normalises_a_valid_config_with_every_default_filled_in(make_strategy):
    strategy = make_strategy("alpha")
    strategy.config = {"fast_period": "7", "slow_period": 21}
    strategy.full_clean()
    assert strategy.config["fast_period"] == 7
    assert strategy.config["position_size"] == "0.1"


def test_clean_lists_every_config_field_error(make_strategy):
    strategy = make_strategy("alpha")
    strategy.config = {"fast_period": "x", "colour": "red"}
    with pytest.raises(ValidationError) as raised:
        strategy.full_clean()
    messages = " ".join(raised.value.message_dict["config"])
    assert "fast_period: must be a whole number" in messages
    assert "colour: is not a setting" in messages


def open_position(strategy: models.Strategy, position_id: str, closed_at=None) -> models.Position:
    return models.Position.objects.create(
        strategy=strategy, position_id=position_id, symbol=strategy.symbol, side="long", quantity=Decimal("0.1"),
        initial_quantity=Decimal("0.1"), entry_price=Decimal("46000"), entry_fee=Decimal("1.84"), opened_at=T0,
        closed_at=closed_at,
    )


def market_order(strategy: models.Strategy, order_id: str, status: str) -> models.Order:
    return models.Order.objects.create(
        strategy=strategy, order_id=order_id, symbol=strategy.symbol, intent="open", position_side="long",
        position_id=order_id, quantity=Decimal("0.1"), status=status, created_at=T0,
    )


MARKET_CHANGES = [("symbol", "ETH/USD", {}), ("timeframe", "5m", {}), ("strategy_class", "rsi_mean_reversion", {"config": {}})]


@pytest.mark.parametrize("field, value, also", MARKET_CHANGES, ids=[field for field, _, _ in MARKET_CHANGES])
def test_a_strategy_holding_open_positions_cannot_change_its_market_or_class(make_strategy, field, value, also):
    strategy = make_strategy("alpha")
    open_position(strategy, "alpha-1")
    open_position(strategy, "alpha-2")
    setattr(strategy, field, value)
    for name, other in also.items():
        setattr(strategy, name, other)

    with pytest.raises(ValidationError) as raised:
        strategy.full_clean()

    assert list(raised.value.message_dict) == [field]
    assert raised.value.message_dict[field] == [
        "Cannot change while the strategy holds 2 open positions and 0 pending orders; close them or wait until it is flat."
    ]


def test_a_strategy_with_a_pending_order_cannot_change_its_symbol(make_strategy):
    strategy = make_strategy("alpha")
    market_order(strategy, "alpha-1", status="pending")
    strategy.symbol = "ETH/USD"

    with pytest.raises(ValidationError) as raised:
        strategy.full_clean()

    assert "holds 0 open positions and 1 pending order;" in raised.value.message_dict["symbol"][0]


def test_every_changed_market_field_carries_the_refusal(make_strategy):
    strategy = make_strategy("alpha")
    open_position(strategy, "alpha-1")
    strategy.symbol, strategy.timeframe = "ETH/USD", "5m"

    with pytest.raises(ValidationError) as raised:
        strategy.full_clean()

    assert set(raised.value.message_dict) == {"symbol", "timeframe"}


@pytest.mark.parametrize("field, value, also", MARKET_CHANGES, ids=[field for field, _, _ in MARKET_CHANGES])
def test_a_flat_strategy_can_change_its_market_or_class(make_strategy, field, value, also):
    strategy = make_strategy("alpha")
    open_position(strategy, "alpha-1", closed_at=T0)
    market_order(strategy, "alpha-1", status="filled")
    market_order(strategy, "alpha-2", status="cancelled")
    setattr(strategy, field, value)
    for name, other in also.items():
        setattr(strategy, name, other)

    strategy.full_clean()
    strategy.save()

    assert models.Strategy.objects.values_list(field, flat=True).get() == value


def test_a_strategy_holding_a_position_can_still_change_its_name_and_config(make_strategy):
    strategy = make_strategy("alpha")
    open_position(strategy, "alpha-1")
    strategy.name = "Renamed"
    strategy.config = {"fast_period": 7, "slow_period": 21}

    strategy.full_clean()

    assert strategy.config["fast_period"] == 7


def test_another_strategys_open_position_does_not_hold_this_one(make_strategy):
    alpha = make_strategy("alpha")
    open_position(make_strategy("beta"), "beta-1")
    alpha.symbol = "ETH/USD"

    alpha.full_clean()
    alpha.save()

    assert models.Strategy.objects.get(strategy_id="alpha").symbol == "ETH/USD"
