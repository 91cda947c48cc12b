"""Candles through the live path in-process: ingest, routing, storage, rebuild, isolation, bad data."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.core_runs import ReferenceRun
from tradeweb.desk import orchestrators, live, models

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_worker")]


def feed(candles) -> list[live.IngestOutcome]:
    return [live.ingest_candle(c.to_mapping()) for c in candles]


def stored_events(strategy_id: str) -> list[tuple]:
    return list(models.Event.objects.filter(strategy_id=strategy_id).order_by("sequence").values_list("sequence", "type", "payload"))


def test_candle_reaches_only_active_strategies_of_its_market(make_strategy, btc_candles):
    make_strategy("alpha")
    make_strategy("beta", status="dormant")
    make_strategy("gamma", strategy_class="rsi_mean_reversion", symbol="GBP/USD")

    outcome = live.ingest_candle(btc_candles[0].to_mapping())

    assert outcome.status == "new"
    assert outcome.processed == ["alpha"]
    times = dict(models.Strategy.objects.values_list("strategy_id", "last_candle_time"))
    assert times == {"alpha": btc_candles[0].time, "beta": None, "gamma": None}
    assert models.Candle.objects.count() == 1


def test_live_desk_trades_exactly_like_the_core_engine_even_across_a_worker_restart(make_strategy, btc_candles):
    strategy = make_strategy("alpha", fast_period=3, slow_period=8, stop_loss_pct="0.003", take_profit_pct="0.004")
    reference = ReferenceRun(strategy).take(btc_candles)
    expected_store, expected_publisher = reference.store, reference.publisher

    feed(btc_candles[:200])
    orchestrators.forget_all()  # the worker process restarts: orchestrators are rebuilt from the database
    feed(btc_candles[200:])

    expected_fills = [(f.order_id, f.price, f.quantity, f.fee, f.time) for r in expected_store.results for f in r.fills]
    assert len(expected_fills) >= 10, "the sample must trade for this comparison to mean anything"
    fills = list(models.Fill.objects.filter(strategy=strategy).order_by("time", "id").values_list("order_id", "price", "quantity", "fee", "time"))
    assert fills == expected_fills
    assert stored_events("alpha") == [(e.sequence, str(e.type), e.payload) for e in expected_publisher.events]
    strategy.refresh_from_db()
    assert strategy.equity == reference.orchestrator.equity
    assert strategy.realized_pnl == sum(p.realized_pnl for p in models.Position.objects.filter(strategy=strategy))


def test_orchestrator_stays_cached_between_candles_and_rebuilds_after_a_config_change(make_strategy, btc_candles):
    strategy = make_strategy("alpha")
    feed(btc_candles[:5])
    stats = orchestrators.orchestrator_cache().stats
    assert (stats.misses, stats.hits) == (1, 4)

    models.Strategy.objects.filter(pk=strategy.pk).update(config_version=strategy.config_version + 1)
    feed(btc_candles[5:6])

    assert orchestrators.orchestrator_cache().stats.misses == 2


def test_invalid_candle_is_rejected_with_a_visible_event_and_nothing_stored_is_lost(make_strategy, btc_candles):
    alpha = make_strategy("alpha")
    make_strategy("gamma", strategy_class="rsi_mean_reversion", symbol="GBP/USD")
    feed(btc_candles[:50])
    before = {model: model.objects.count() for model in (models.Candle, models.Fill, models.Order, models.Position)}
    bad = btc_candles[50].to_mapping() | {"high": "1", "low": "2"}

    outcome = live.ingest_candle(bad)

    assert outcome.status == "rejected"
    assert "high" in outcome.reason
    rejected = models.Event.objects.get(strategy_id="alpha", type="DATA_REJECTED")
    assert "high" in rejected.payload["reason"]
    assert not models.Event.objects.filter(strategy_id="gamma").exists()
    assert {model: model.objects.count() for model in before} == before
    alpha.refresh_from_db()
    assert alpha.last_candle_time == btc_candles[49].time


@pytest.mark.parametrize(
    "junk",
    [
        {"symbol": "BTC/USD", "timeframe": "1m", "time": "yesterday", "open": "1", "high": "1", "low": "1", "close": "1"},
        {"symbol": "BTC/USD", "timeframe": "1m", "time": "2022-01-01T00:00:00+00:00", "open": "NaN", "high": "1", "low": "1", "close": "1"},
        {"symbol": "BTC/USD", "timeframe": "1m", "time": "2022-01-01T00:00:00", "open": "1", "high": "1", "low": "1", "close": "1"},
        {"symbol": "BTC/USD", "timeframe": "1m"},
    ],
    ids=["unparseable-time", "nan-open", "naive-time", "missing-fields"],
)
def test_junk_candle_never_reaches_a_strategy(make_strategy, junk):
    make_strategy("alpha")

    outcome = live.ingest_candle(junk)

    assert outcome.status == "rejected"
    assert list(models.Event.objects.values_list("strategy_id", "type")) == [("alpha", "DATA_REJECTED")]
    assert models.Candle.objects.count() == 0
    assert models.Strategy.objects.get(strategy_id="alpha").last_candle_time is None


def test_rejected_candle_of_a_market_nobody_trades_becomes_a_system_event(db):
    outcome = live.ingest_candle({"symbol": "ETH/USD", "timeframe": "1m", "time": "2022-01-01T00:00:00+00:00",
                                  "open": "-1", "high": "1", "low": "1", "close": "1"})

    assert outcome.status == "rejected"
    event = models.Event.objects.get()
    assert (event.strategy_id, event.type, event.symbol) == ("", "DATA_REJECTED", "ETH/USD")


def test_an_old_candle_sent_again_changes_nothing_and_a_different_one_is_rejected(make_strategy, btc_candles):
    make_strategy("alpha")
    feed(btc_candles[:10])
    events_before = stored_events("alpha")

    duplicate = live.ingest_candle(btc_candles[9].to_mapping())
    assert duplicate.status == "duplicate"
    assert stored_events("alpha") == events_before
    assert models.Candle.objects.count() == 10

    again = live.ingest_candle(btc_candles[3].to_mapping())
    assert (again.status, again.processed) == ("duplicate", [])
    assert stored_events("alpha") == events_before

    altered = live.ingest_candle(btc_candles[3].to_mapping() | {"volume": "1"})
    assert altered.status == "rejected"
    assert altered.reason.startswith(f"conflicts with the stored candle at {btc_candles[3].time.isoformat()}: volume 1")
    new_events = stored_events("alpha")[len(events_before):]
    assert [e[1] for e in new_events] == ["DATA_REJECTED"]


def test_one_strategy_failing_does_not_stop_another(make_strategy, btc_candles):
    make_strategy("alpha")
    make_strategy("beta")
    models.Strategy.objects.filter(strategy_id="beta").update(strategy_class="vanished_strategy")

    first = live.ingest_candle(btc_candles[0].to_mapping())
    second = live.ingest_candle(btc_candles[1].to_mapping())

    assert (first.processed, first.failed) == (["alpha"], ["beta"])
    assert (second.processed, second.failed) == (["alpha"], [])
    beta = models.Strategy.objects.get(strategy_id="beta")
    assert beta.status == "error"
    assert "vanished_strategy" in beta.last_error
    error = models.Event.objects.get(strategy_id="beta")
    assert error.type == "STRATEGY_ERROR" and "vanished_strategy" in error.payload["error"]
    assert models.Strategy.objects.get(strategy_id="alpha").last_candle_time == btc_candles[1].time


def test_a_strategy_whose_events_got_ahead_of_its_row_still_gets_its_error_event(make_strategy, btc_candles):
    make_strategy("beta")
    models.Strategy.objects.filter(strategy_id="beta").update(strategy_class="vanished_strategy")
    models.Event.objects.create(
        strategy_id="beta", sequence=1, type="SIGNAL_GENERATED", symbol="BTC/USD", time=btc_candles[0].time, payload={}
    )

    outcome = live.ingest_candle(btc_candles[0].to_mapping())

    assert outcome.failed == ["beta"]
    assert [(s, t) for s, t, _ in stored_events("beta")] == [(1, "SIGNAL_GENERATED"), (2, "STRATEGY_ERROR")]
    beta = models.Strategy.objects.get(strategy_id="beta")
    assert (beta.status, beta.last_sequence) == ("error", 2)


def test_equity_starts_at_capital_and_moves_with_open_positions(make_strategy, btc_candles):
    strategy = make_strategy("alpha", fast_period=3, slow_period=8, stop_loss_pct=None, take_profit_pct=None)
    for candle in btc_candles:
        live.ingest_candle(candle.to_mapping())
        strategy.refresh_from_db()
        if models.Position.objects.filter(strategy=strategy, closed_at=None).exists():
            break
    else:
        pytest.fail("no position opened on the sample")
    position = models.Position.objects.get(strategy=strategy, closed_at=None)
    expected_unrealized = (strategy.last_close - position.entry_price) * position.quantity - position.entry_fee
    assert strategy.unrealized_pnl == expected_unrealized.quantize(Decimal("1e-10"))
    assert strategy.equity == strategy.capital + strategy.realized_pnl + strategy.unrealized_pnl



def test_a_strategy_added_later_warms_up_on_the_stored_history_of_its_market(make_strategy, btc_candles):
    make_strategy("early", fast_period=5, slow_period=20)
    feed(btc_candles[:100])
    make_strategy("late", fast_period=5, slow_period=20)

    outcome = live.ingest_candle(btc_candles[100].to_mapping())

    assert outcome.processed == ["early", "late"]
    early = orchestrators.orchestrator_cache().get("early")[1]
    late = orchestrators.orchestrator_cache().get("late")[1]
    assert late.indicators.ready
    assert late.indicators.values == early.indicators.values
    assert late.last_candle_time == early.last_candle_time == btc_candles[100].time
    assert models.Strategy.objects.get(strategy_id="late").last_candle_time == btc_candles[100].time
    assert not models.Fill.objects.filter(strategy_id="late", time__lt=btc_candles[100].time).exists()
    stale = orchestrators.orchestrator_cache().stats.stale
    live.ingest_candle(btc_candles[101].to_mapping())
    assert orchestrators.orchestrator_cache().stats.stale == stale  # the warmed orchestrator stays cached
