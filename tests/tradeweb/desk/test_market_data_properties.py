"""Whatever a feed sends, the desk stores a valid candle (and its strategy takes it) or records a visible
rejection; it never raises."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, event, given, settings

from tests.candle_payloads import candle_payloads
from tradeweb.desk import models, orchestrators
from tradeweb.desk.live import ingest_candle

pytestmark = pytest.mark.django_db


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=candle_payloads)
def test_any_payload_is_stored_or_visibly_rejected_never_an_exception(make_strategy, payload):
    if not models.Strategy.objects.exists():
        make_strategy("alpha", fast_period=2, slow_period=3)
        orchestrators.forget_all()
    candles = models.Candle.objects.count()
    rejected = models.Event.objects.filter(type="DATA_REJECTED").count()

    result = ingest_candle(payload)
    event(result.status)

    assert result.status in {"new", "duplicate", "rejected"}
    assert result.failed == []
    if result.status == "rejected":
        assert models.Candle.objects.count() == candles
        events = models.Event.objects.filter(type="DATA_REJECTED").order_by("-id")
        assert events.count() > rejected
        assert events.first().payload["reason"] == result.reason
    elif result.status == "new":
        assert models.Candle.objects.count() == candles + 1
    assert models.Strategy.objects.get(strategy_id="alpha").status == "active"

