"""Model rules that hold whatever edits the row: config schema, live mode."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from tradeweb.desk import models

pytestmark = pytest.mark.django_db


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
