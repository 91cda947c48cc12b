"""The derived history the P&L page keeps between requests: extended as the strategy moves on, it stays equal to a
derivation from scratch; another row under the same id, or another capital, starts it again."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orchestrator.metrics import Trade
from tests.ingest import feed
from tradeweb.desk import equity_curve, models
from tradeweb.desk.history_cache import StrategyHistories

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_worker")]



def stored(strategy: models.Strategy, since=None) -> tuple[list[Trade], Decimal]:
    positions = models.Position.objects.filter(strategy=strategy, closed_at__isnull=False).order_by("closed_at", "id")
    fills = models.Fill.objects.filter(strategy=strategy)
    if since is not None:
        positions, fills = positions.filter(closed_at__gt=since), fills.filter(time__gt=since)
    return [Trade(p.opened_at, p.closed_at, p.realized_pnl, p.fees) for p in positions], sum((f.fee for f in fills), Decimal(0))


def test_a_history_extended_candle_batch_by_batch_equals_one_derived_from_scratch(make_strategy, btc_candles):
    strategy = make_strategy("alpha", fast_period=3, slow_period=8, stop_loss_pct="0.003", take_profit_pct="0.004")
    histories = StrategyHistories()
    for part in (btc_candles[:90], btc_candles[90:91], btc_candles[91:250], btc_candles[250:]):
        feed(part)
        strategy.refresh_from_db()
        history = histories.of(strategy)

        assert history.through == strategy.last_candle_time == part[-1].time
        assert history.curve() == equity_curve.derive(strategy)
    since = btc_candles[180].time
    assert history.curve(since) == equity_curve.derive(strategy, since=since)
    for moment in (None, since):
        trades, fees = stored(strategy, moment)
        assert history.closed_trades(moment)[0] == trades and history.fees(moment) == fees
    assert len(trades) >= 5 and fees > 0


def test_what_was_worked_out_is_kept_until_the_strategy_takes_another_candle(make_strategy, btc_candles):
    strategy = make_strategy("alpha", fast_period=3, slow_period=8)
    histories = StrategyHistories()
    feed(btc_candles[:100])
    strategy.refresh_from_db()
    counted = []

    def work_out(history):
        counted.append(len(history.times))
        return len(history.times)

    assert histories.of(strategy).recall("marks", work_out) == 100
    assert histories.of(strategy).recall("marks", work_out) == 100
    feed(btc_candles[100:120])
    strategy.refresh_from_db()
    assert histories.of(strategy).recall("marks", work_out) == 120
    assert counted == [100, 120]


def test_a_new_capital_or_a_new_strategy_under_the_same_id_derives_it_again(make_strategy, btc_candles):
    strategy = make_strategy("alpha", fast_period=3, slow_period=8)
    histories = StrategyHistories()
    feed(btc_candles[:150])
    strategy.refresh_from_db()
    first = histories.of(strategy)

    models.Strategy.objects.filter(pk=strategy.pk).update(capital=Decimal("20000"))
    strategy.refresh_from_db()
    again = histories.of(strategy)

    assert again is not first
    assert again.curve() == equity_curve.derive(strategy) and again.curve().start == Decimal("20000")
