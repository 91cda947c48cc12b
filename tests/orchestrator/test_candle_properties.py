"""Whatever a feed sends, the candle parser returns a valid candle or a bounded, readable rejection."""

from __future__ import annotations

import json

from hypothesis import given, settings

from orchestrator.candles import Candle, CandleRejected
from tests.candle_payloads import candle_payloads


@settings(max_examples=1500, deadline=None)
@given(candle_payloads)
def test_any_payload_is_a_valid_candle_or_a_rejection_never_an_exception(payload):
    try:
        candle = Candle.from_mapping(payload)
    except CandleRejected as rejected:
        assert 0 < len(str(rejected)) < 300
        return
    # What was accepted is a candle the desk can store and send on unchanged.
    assert Candle.from_mapping(json.loads(json.dumps(candle.to_mapping()))) == candle
    assert 0 < candle.low <= min(candle.open, candle.close) <= max(candle.open, candle.close) <= candle.high
