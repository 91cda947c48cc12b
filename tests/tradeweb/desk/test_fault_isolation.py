"""One strategy raising inside its own code, next to another on the same market and worker: only it goes to
`error`, with the exception's line on its card; the other trades exactly as the core; restarted from the
browser's control, the failed one trades on."""

from __future__ import annotations

import pytest
from django.urls import reverse

from strategies import SmaCrossover
from tests.core_runs import assert_exactly_the_core_run
from tradeweb.desk import live, models

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_worker")]

FAIL_AT = 120


def test_one_strategy_raising_stops_only_itself_and_trades_on_once_restarted(
    client, monkeypatch, make_strategy, make_user, btc_candles
):
    make_strategy("alpha", fast_period=3, slow_period=8)
    make_strategy("beta", fast_period=4, slow_period=9)
    real = SmaCrossover.on_candle
    seen = {"beta": 0}

    def on_candle(self, candle, values, positions):
        if self.config.fast_period == 4:
            seen["beta"] += 1
            if seen["beta"] == FAIL_AT:
                raise ZeroDivisionError("division by zero in beta's signal")
        return real(self, candle, values, positions)

    monkeypatch.setattr(SmaCrossover, "on_candle", on_candle)
    outcomes = [live.ingest_candle(c.to_mapping()) for c in btc_candles[:300]]

    assert [o.failed for o in outcomes].count(["beta"]) == 1
    beta = models.Strategy.objects.get(strategy_id="beta")
    assert (beta.status, beta.last_error) == ("error", "ZeroDivisionError: division by zero in beta's signal")
    assert beta.last_candle_time == btc_candles[FAIL_AT - 2].time, "it stays before the candle it failed on"
    assert_exactly_the_core_run(models.Strategy.objects.get(strategy_id="alpha"), btc_candles[:300])
    assert models.Strategy.objects.get(strategy_id="alpha").status == "active"

    client.force_login(make_user("trader", can_control=True))
    card = client.get(reverse("strategy_card", args=["beta"])).content.decode()
    assert "ZeroDivisionError: division by zero in beta&#x27;s signal" in card and ">Activate</button>" in card
    assert client.post(reverse("strategy_activate", args=["beta"]), headers={"HX-Request": "true"}).status_code == 204
    later = [live.ingest_candle(c.to_mapping()) for c in btc_candles[300:]]

    assert all(o.processed == ["alpha", "beta"] for o in later)
    beta.refresh_from_db()
    assert (beta.status, beta.last_error, beta.last_candle_time) == ("active", "", btc_candles[-1].time)
    assert models.Fill.objects.filter(strategy=beta, time__gt=btc_candles[300].time).exists(), "it trades on"
