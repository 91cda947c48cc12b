"""The dashboard's sampled equity is the P&L page's derived curve at each sampled close, for any number of
strategies in the same few queries."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orchestrator.datasets import load_candles
from tradeweb.desk import equity_curve, equity_samples, live, models
from tradeweb.desk.equity_samples import ANCHOR, BUCKET, BUCKETS
from tradeweb.desk.market_data import receive_candle

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_worker")]

# 28 hours of real BTC/USD five-minute candles from 2021-12-31 23:00: the window is the last 24 hours.
CANDLES = 340
CONFIG = {"timeframe": "5m", "fast_period": 3, "slow_period": 8, "stop_loss_pct": "0.003", "take_profit_pct": "0.004"}


def take(candles) -> None:
    """Store the candles as the feed sends them, then let the live path advance the market over all of them."""
    for candle in candles:
        assert receive_candle(candle.to_mapping())[0] == "new"
    outcome = live.advance_market(candles[0].symbol, candles[0].timeframe, seconds=600)
    assert not outcome.failed and not outcome.more


@pytest.fixture(scope="module")
def day():
    return load_candles("BTC/USD", "5m", limit=CANDLES)


@pytest.fixture
def traded(make_strategy, day):
    """Two strategies that traded the day through the live path (one shorts too, with a loss limit of its own)."""
    alpha = make_strategy("alpha", **CONFIG)
    beta = make_strategy("beta", timeframe="5m", fast_period=5, slow_period=13, allow_short=True, stop_loss_pct="0.002")
    take(day)
    for strategy in (alpha, beta):
        strategy.refresh_from_db()
        assert models.Position.objects.filter(strategy=strategy, closed_at__isnull=False).count() >= 5
    return [alpha, beta]


def sampled(strategies):
    windows = equity_samples.market_windows({(s.symbol, s.timeframe) for s in strategies})
    return windows, equity_samples.samples(strategies, windows)


def test_each_sampled_point_is_the_derived_curve_at_that_candle_to_the_last_decimal(traded):
    windows, samples = sampled(traded)

    for strategy in traded:
        marks = dict(equity_curve.derive(strategy).marks)
        points = samples[strategy.strategy_id].points
        assert len(points) == BUCKETS + 1
        assert [(time, equity) for _, time, equity in points] == [(time, marks[time]) for _, time, _ in points]
        assert points[-1][2] == strategy.equity


def test_the_window_is_the_last_quarter_hour_of_each_of_the_markets_last_96_and_the_candle_before(traded, day):
    windows, _ = sampled(traded)
    window = windows["BTC/USD", "5m"]

    assert window.newest == day[-1].time == datetime(2022, 1, 2, 3, 15, tzinfo=timezone.utc)
    assert window.begins == datetime(2022, 1, 1, 3, 30, tzinfo=timezone.utc)
    assert window.closes[0] == (ANCHOR, datetime(2022, 1, 1, 3, 25, tzinfo=timezone.utc), day[53].close)
    assert [time.minute % 15 for _, time, _ in window.closes[1:-1]] == [10] * (BUCKETS - 1)
    assert [index for index, _, _ in window.closes] == list(range(ANCHOR, BUCKETS))
    assert window.closes[-1][1:] == (day[-1].time, day[-1].close)


def test_pnl_today_runs_from_the_last_close_before_the_markets_utc_day(traded):
    _, samples = sampled(traded)

    for strategy in traded:
        marks = equity_curve.derive(strategy).marks
        before_midnight = [equity for time, equity in marks if time < datetime(2022, 1, 2, tzinfo=timezone.utc)][-1]
        assert samples[strategy.strategy_id].pnl_today == strategy.equity - before_midnight != 0


def test_a_strategy_stopped_earlier_keeps_the_equity_its_row_holds_after_its_last_candle(make_strategy, day):
    make_strategy("alpha", **CONFIG)
    take(day[:200])
    models.Strategy.objects.filter(strategy_id="alpha").update(status="dormant")
    take(day[200:])
    alpha = models.Strategy.objects.get(strategy_id="alpha")
    assert alpha.last_candle_time == day[199].time

    points = sampled([alpha])[1]["alpha"].points

    marks = dict(equity_curve.derive(alpha).marks)
    assert all(equity == marks[time] for _, time, equity in points if time <= alpha.last_candle_time)
    after = [equity for _, time, equity in points if time > alpha.last_candle_time]
    assert after and set(after) == {alpha.equity}


def test_a_strategy_created_during_the_window_is_at_its_capital_before_its_first_candle(make_strategy, day):
    take_market = make_strategy("early", **CONFIG)
    take(day[:200])
    late = make_strategy("late", capital="2500", **CONFIG)
    take(day[200:])
    late.refresh_from_db()
    assert take_market.strategy_id == "early" and models.Fill.objects.filter(strategy=late).exists()

    points = sampled([late])[1]["late"].points

    first = equity_curve.derive(late).marks[0][0]
    assert {equity for _, time, equity in points if time < first} == {Decimal("2500")}
    marks = dict(equity_curve.derive(late).marks)
    assert all(equity == marks[time] for _, time, equity in points if time >= first)


def test_the_combined_curve_sums_each_strategys_equity_per_quarter_hour(traded):
    windows, samples = sampled(traded)

    curve = equity_samples.combined(windows, samples.values())

    assert len(curve) == BUCKETS + 1
    assert curve[0][0] == windows["BTC/USD", "5m"].begins
    assert curve[-1][0] == windows["BTC/USD", "5m"].begins + BUCKETS * BUCKET
    assert [total for _, total in curve] == [
        sum(values) for values in zip(*(samples[s.strategy_id].by_bucket() for s in traded))
    ]
    assert curve[-1][1] == sum(s.equity for s in traded)


def test_a_quarter_hour_without_candles_keeps_the_equity_before_it():
    start = datetime(2022, 1, 1, tzinfo=timezone.utc)
    points = ((ANCHOR, start, Decimal(100)), (0, start + timedelta(minutes=14), Decimal(101)),
              (3, start + timedelta(minutes=59), Decimal(99)))

    values = equity_samples.EquitySamples(Decimal(100), points, Decimal(100), Decimal(99)).by_bucket()

    assert values[:6] == [Decimal(100), Decimal(101), Decimal(101), Decimal(101), Decimal(99), Decimal(99)]
    assert len(values) == BUCKETS + 1 and values[-1] == Decimal(99)


def test_the_queries_do_not_grow_with_the_number_of_strategies(traded, make_strategy):
    def count(strategies) -> int:
        with CaptureQueriesContext(connection) as queries:
            sampled(strategies)
        return len(queries)

    others = [make_strategy(f"gbp-{n}", strategy_class="rsi_mean_reversion", symbol="GBP/USD") for n in range(5)]

    assert count(traded[:1]) == count(traded + others) == 3


def test_a_market_without_candles_gives_the_equity_the_row_holds(make_strategy):
    alpha = make_strategy("alpha", capital="1234")

    windows, samples = sampled([alpha])

    assert windows == {}
    assert samples["alpha"] == equity_samples.EquitySamples(Decimal(1234), (), Decimal(1234), Decimal(1234))
    assert samples["alpha"].pnl_today == 0
