"""A card's last event, told as a sentence with the figures rounded for reading."""

from __future__ import annotations

import pytest

from tradeweb.desk.event_sentences import LONGEST, figure, money, sentence


@pytest.mark.parametrize(("event_type", "payload", "said"), [
    ("POSITION_OPENED", {"side": "long", "quantity": "0.0211607400", "price": "47071.5838"},
     "Opened long 0.02116074 BTC/USD at 47,071.5838"),
    ("POSITION_CLOSED", {"quantity": "0.02", "price": "47100.0000000000", "realized_pnl": "12.3456"},
     "Closed 0.02 BTC/USD at 47,100: P&L +12.35"),
    ("POSITION_REDUCED", {"quantity": "0.01", "price": "46000", "realized_pnl": "-3.004"},
     "Reduced 0.01 BTC/USD at 46,000: P&L -3.00"),
    ("STOP_LOSS_HIT", {"price": "46900.5"}, "Stop-loss hit at 46,900.5"),
    ("ORDER_CREATED", {"side": "buy", "quantity": "0.5", "intent": "open"}, "Order to buy 0.5 BTC/USD (open) at the next open"),
    ("STRATEGY_DEACTIVATED", {"user": "ann", "status": "draining"}, "Switched off by ann (draining first)"),
    ("STRATEGY_DEACTIVATED", {"user": "ann", "switched_for": "beta", "status": "dormant"}, "Switched out for beta by ann"),
    ("STRATEGY_DEACTIVATED", {"reason": "flat", "wind_down": "drain"}, "Flat after winding down: dormant"),
    ("CONFIG_CHANGED", {"user": "ann", "version": 3, "changes": {"config.fast_period": [5, 7]}},
     "Config version 3 saved by ann (1 setting changed)"),
    ("CAPITAL_LIMIT_HIT", {"action": "enter_long", "needed": "5000.123", "available": "10"},
     "Signal enter_long blocked by capital: needs 5,000.12, 10.00 available"),
    ("SOMETHING_NEW", {}, "Something new"),
])
def test_each_event_reads_as_a_sentence(event_type, payload, said):
    assert sentence(event_type, "BTC/USD", payload) == said


def test_a_long_reason_is_cut_to_one_line():
    said = sentence("STRATEGY_ERROR", "BTC/USD", {"error": "ValueError: " + "x" * 500})

    assert said.startswith("Failed: ValueError: xxx") and said.endswith("…")
    assert len(said) == len("Failed: ") + LONGEST


def test_figures_that_are_not_numbers_are_shown_as_they_are():
    assert figure("not a number") == "not a number"
    assert figure(None) == "None"
    assert figure("NaN") == "NaN"
    assert money("0.001") == "0.00" and money("-0.5") == "-0.50" and money("1234.5") == "+1,234.50"
