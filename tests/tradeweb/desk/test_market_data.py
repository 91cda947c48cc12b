"""Bad market data never reaches the books: each finding of the probe is refused with a visible
DATA_REJECTED event, nothing stored changes, and no task crashes."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from orchestrator.candles import Candle
from tradeweb.desk import orchestrators, live, models
from tradeweb.desk.control import set_active

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_worker")]


@pytest.fixture
def holding(make_strategy, btc_candles):
    """alpha, an SMA crossover on BTC/USD with a 1% stop, fed real candles until it holds a long position."""
    strategy = make_strategy("alpha", fast_period=3, slow_period=8, stop_loss_pct="0.01", take_profit_pct="0.5")
    for index, candle in enumerate(btc_candles):
        live.ingest_candle(candle.to_mapping())
        if models.Position.objects.filter(strategy=strategy, closed_at=None).exists():
            return strategy, btc_candles[index + 1:]
    pytest.fail("the sample never opened a position")


def ledger(strategy_id: str) -> dict:
    """Everything the desk stores about a strategy's trading, to show a rejection changed none of it."""
    strategy = models.Strategy.objects.get(strategy_id=strategy_id)
    return {
        "candles": list(models.Candle.objects.order_by("time").values_list("symbol", "time", "open", "high", "low", "close")),
        "fills": list(models.Fill.objects.filter(strategy_id=strategy_id).values_list("order_id", "price", "quantity")),
        "positions": list(models.Position.objects.filter(strategy_id=strategy_id).values_list("position_id", "quantity", "realized_pnl", "closed_at")),
        "orders": list(models.Order.objects.filter(strategy_id=strategy_id).values_list("order_id", "status")),
        "head": (strategy.last_candle_time, strategy.realized_pnl, strategy.equity, strategy.status),
    }


def rejections(strategy_id: str = "") -> list[str]:
    return [e.payload["reason"] for e in models.Event.objects.filter(type="DATA_REJECTED", strategy_id=strategy_id).order_by("id")]


def next_candle(candle: Candle, **prices) -> dict:
    return candle.to_mapping() | {k: str(v) for k, v in prices.items()}


@pytest.mark.parametrize("prices, reason", [
    # The probe: 1e-12 was stored as 0 and a stop filled at 0 for a loss of 1,002.90.
    ({"low": "1e-12"}, "low 1E-12 cannot be stored without changing it"),
    # The probe: 1e19 booked a profit of 2.15e17.
    ({"high": "1e19"}, "high 1E+19 is "),
    # The probe: these raised a database DataError instead of an event.
    ({"high": "1e25"}, "high 1E+25 is too large"),
    ({"high": "1e308"}, "too large: the desk stores values below 1E+20"),
    ({"high": 1e308}, "too large: the desk stores values below 1E+20"),
])
def test_an_absurd_price_is_refused_and_the_open_position_is_untouched(holding, prices, reason):
    strategy, later = holding
    before = ledger("alpha")

    outcome = live.ingest_candle(next_candle(later[0], **prices))

    assert outcome.status == "rejected"
    assert reason in outcome.reason
    assert rejections("alpha") == [outcome.reason]
    assert ledger("alpha") == before


def test_after_an_absurd_candle_the_real_ones_trade_on(holding):
    strategy, later = holding
    live.ingest_candle(next_candle(later[0], low="1e-12"))

    outcomes = [live.ingest_candle(c.to_mapping()) for c in later[:50]]

    assert [o.status for o in outcomes] == ["new"] * 50
    strategy.refresh_from_db()
    assert (strategy.status, strategy.last_candle_time) == ("active", later[49].time)


def test_a_symbol_longer_than_the_desk_stores_is_a_system_rejection(db):
    data = {"symbol": "X" * 40, "timeframe": "1m", "time": "2022-01-01T00:00:00+00:00",
            "open": "1", "high": "1", "low": "1", "close": "1"}

    outcome = live.ingest_candle(data)

    assert outcome.status == "rejected"
    assert rejections() == ["symbol is 40 characters long; at most 32"]
    assert models.Candle.objects.count() == 0


@pytest.mark.parametrize("payload", [None, [], ["BTC/USD", "1m"], "candle", 42, 1.5, True])
def test_a_payload_that_is_not_an_object_is_a_system_rejection(db, payload):
    outcome = live.ingest_candle(payload)

    assert outcome.status == "rejected"
    assert rejections() == [f"candle must be an object, not {type(payload).__name__}"]


def test_a_candle_from_the_future_is_refused_and_does_not_block_the_real_ones(make_strategy, btc_candles):
    make_strategy("alpha")
    live.ingest_candle(btc_candles[0].to_mapping())

    outcome = live.ingest_candle(btc_candles[1].to_mapping() | {"time": "2030-01-01T00:00:00+00:00"})
    later = [live.ingest_candle(c.to_mapping()) for c in btc_candles[1:21]]

    assert outcome.status == "rejected"
    assert outcome.reason.startswith("from the future: the candle at 2030-01-01T00:00:00+00:00")
    assert [o.status for o in later] == ["new"] * 20
    assert not models.Candle.objects.filter(time__year=2030).exists()
    rejected = models.Event.objects.get(type="DATA_REJECTED", strategy_id="alpha")
    # Reported when it was refused, not in 2030.
    assert rejected.time <= datetime.now(timezone.utc)


def test_a_candle_of_a_market_nobody_configured_is_refused(make_strategy, btc_candles):
    make_strategy("alpha")
    data = btc_candles[0].to_mapping() | {"symbol": "XYZ/USD"}

    outcome = live.ingest_candle(data)

    assert outcome.status == "rejected"
    assert outcome.reason.startswith("no market XYZ/USD 1m on this desk")
    assert rejections() == [outcome.reason]
    assert models.Candle.objects.count() == 0


def test_a_market_added_by_an_operator_takes_candles_without_a_strategy(db, btc_candles):
    models.Market.objects.create(symbol="BTC/USD", timeframe="1m")

    assert live.ingest_candle(btc_candles[0].to_mapping()).status == "new"


def test_a_second_candle_for_a_stored_time_with_other_prices_is_a_visible_conflict(make_strategy, btc_candles):
    make_strategy("alpha")
    live.ingest_candle(btc_candles[0].to_mapping())
    before = ledger("alpha")
    stored_close = btc_candles[0].close

    outcome = live.ingest_candle(btc_candles[0].to_mapping() | {"close": str(stored_close + 1), "high": str(btc_candles[0].high + 1)})

    assert outcome.status == "rejected"
    assert outcome.reason.startswith(f"conflicts with the stored candle at {btc_candles[0].time.isoformat()}: high")
    assert f"close {stored_close + 1} vs stored {stored_close}" in outcome.reason
    assert outcome.reason.endswith("the stored one is kept")
    assert rejections("alpha") == [outcome.reason]
    assert ledger("alpha") == before


def test_the_same_candle_twice_is_still_a_silent_duplicate(make_strategy, btc_candles):
    make_strategy("alpha")
    live.ingest_candle(btc_candles[0].to_mapping())

    outcome = live.ingest_candle(btc_candles[0].to_mapping())

    assert outcome.status == "duplicate"
    assert rejections("alpha") == []


def test_a_move_beyond_the_markets_limit_is_refused_and_the_limit_is_set_per_market(make_strategy, btc_candles):
    make_strategy("alpha")
    live.ingest_candle(btc_candles[0].to_mapping())
    jump = btc_candles[1].to_mapping() | {"high": str(btc_candles[0].close * Decimal("1.3"))}

    models.Market.objects.filter(symbol="BTC/USD").update(max_move=Decimal("0.2"))
    refused = live.ingest_candle(jump)
    models.Market.objects.filter(symbol="BTC/USD").update(max_move=Decimal("0.4"))
    accepted = live.ingest_candle(jump)

    assert refused.status == "rejected"
    assert refused.reason.startswith("high ")
    assert "BTC/USD 1m allows at most 20.00% per candle" in refused.reason
    assert accepted.status == "new"


def test_a_strategy_put_in_error_by_a_bad_stored_candle_can_be_reactivated_and_trades_on(make_strategy, make_user, btc_candles):
    strategy = make_strategy("alpha", fast_period=3, slow_period=8)
    for candle in btc_candles[:30]:
        live.ingest_candle(candle.to_mapping())
    # What the probe left behind before the rules existed: a candle rounded to 0 by the storage,
    # which made every rebuild raise "prices must be positive".
    bad = btc_candles[30]
    models.Candle.objects.create(symbol="BTC/USD", timeframe="1m", time=bad.time, open=0, high=0, low=0, close=0)
    models.Strategy.objects.filter(pk=strategy.pk).update(
        status="error", last_error="CandleRejected: prices must be positive", last_candle_time=bad.time
    )
    orchestrators.forget_all()

    set_active("alpha", make_user("operator", can_control=True), True)
    outcomes = [live.ingest_candle(c.to_mapping()) for c in btc_candles[31:200]]

    assert {o.status for o in outcomes} == {"new"}
    assert all(o.processed == ["alpha"] for o in outcomes)
    strategy.refresh_from_db()
    assert (strategy.status, strategy.last_error, strategy.last_candle_time) == ("active", "", btc_candles[199].time)
    assert models.Fill.objects.filter(strategy=strategy, time__gt=bad.time).exists(), "it must trade on"
