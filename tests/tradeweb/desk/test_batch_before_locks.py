"""A batch of candles is worked out before the market's rows are locked and written only if the locked rows still
say what it started from: a switch that lands meanwhile sends the batch round again under the locks, so the candle
goes to the strategy switched in, never to the one switched out."""

from __future__ import annotations

import pytest

from tests.at_once import at_once
from tradeweb.desk import live, models, orchestrators
from tradeweb.desk.control import set_active

pytestmark = pytest.mark.django_db(transaction=True)

# Slow enough that nothing trades within the candles fed: the switched-out strategy is flat and goes dormant.
QUIET = {"fast_period": 5, "slow_period": 150}


@pytest.fixture
def takes(monkeypatch):
    """Every call of `live.take`: whether the rows were locked (a transaction open), and the accounts marked."""
    from django.db import connection

    calls = []
    real = live.take

    def recorded(symbol, timeframe, batch, limit, accounts):
        calls.append((connection.in_atomic_block, accounts is not None))
        real(symbol, timeframe, batch, limit, accounts)

    monkeypatch.setattr(live, "take", recorded)
    return calls


def row(sid: str) -> models.Strategy:
    return models.Strategy.objects.get(strategy_id=sid)


def test_a_batch_is_worked_out_before_the_rows_are_locked_and_written_once(make_strategy, btc_candles, takes):
    make_strategy("alpha", fast_period=3, slow_period=8)
    for candle in btc_candles[:60]:
        live.ingest_candle(candle.to_mapping())

    assert takes == [(False, False)] * 60
    assert row("alpha").last_candle_time == btc_candles[59].time
    assert models.Fill.objects.filter(strategy_id="alpha").exists()


def test_a_switch_while_a_batch_is_worked_out_sends_the_candle_to_the_strategy_switched_in(
    make_strategy, make_user, btc_candles, takes, monkeypatch
):
    make_strategy("alpha", **QUIET)
    make_strategy("beta", status="dormant", **QUIET)
    models.Slot.objects.filter(account="paper", symbol="BTC/USD").update(exclusive=True)
    for candle in btc_candles[:50]:
        live.ingest_candle(candle.to_mapping())
    trader = make_user("trader", can_control=True)
    takes.clear()
    real = live.take  # the recording one

    def switched_meanwhile(symbol, timeframe, batch, limit, accounts):
        real(symbol, timeframe, batch, limit, accounts)
        if len(takes) == 1:  # the first, unlocked: a user switches before the batch locks the rows
            (outcome,) = at_once([lambda: set_active("beta", trader, True)])
            assert not isinstance(outcome, BaseException), outcome

    monkeypatch.setattr(live, "take", switched_meanwhile)

    outcome = live.ingest_candle(btc_candles[50].to_mapping())

    assert takes == [(False, False), (True, False)]  # worked out, found moved, then taken again under the locks
    assert outcome.processed == []
    alpha, beta = row("alpha"), row("beta")
    assert (alpha.status, alpha.last_candle_time) == ("dormant", btc_candles[49].time)
    assert (beta.status, beta.last_candle_time) == ("active", btc_candles[50].time)
    assert not models.Event.objects.filter(strategy_id="alpha", time=btc_candles[50].time).exists()
    # Its cached orchestrator, moved by the batch that was not written, is gone: the next candle rebuilds it.
    assert orchestrators.orchestrator_cache().get("alpha") is None or (
        orchestrators.orchestrator_cache().get("alpha")[1].last_candle_time == btc_candles[49].time
    )
    assert live.ingest_candle(btc_candles[51].to_mapping()).processed == ["beta"]


def test_a_market_whose_account_has_loss_limits_is_taken_under_the_locks(make_strategy, btc_candles, takes):
    make_strategy("alpha", fast_period=3, slow_period=8)
    models.AccountLimit.objects.create(account="paper", max_drawdown_pct="0.5")

    for candle in btc_candles[:5]:
        live.ingest_candle(candle.to_mapping())

    assert takes == [(True, True)] * 5
