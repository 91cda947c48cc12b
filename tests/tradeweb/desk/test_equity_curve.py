"""The equity curve derived from stored fills and candles is the engine's, mark for mark."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.core_runs import ReferenceRun, money
from tests.ingest import feed
from tradeweb.desk import equity_curve, models, orchestrators

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_worker")]



@pytest.fixture
def traded(make_strategy, btc_candles):
    """A strategy that traded the shipped BTC/USD candles through the live path, and the core's run of them."""
    strategy = make_strategy("alpha", fast_period=3, slow_period=8, stop_loss_pct="0.003", take_profit_pct="0.004")
    # The core's equity after each candle (a quiet candle stores no result, so it is read off the orchestrator).
    reference, marks = ReferenceRun(strategy), []
    for candle in btc_candles:
        reference.take([candle])
        marks.append((candle.time, money(reference.orchestrator.equity)))
    feed(btc_candles[:200])
    orchestrators.forget_all()  # a worker restart in between: the derivation must not care
    feed(btc_candles[200:])
    strategy.refresh_from_db()
    assert models.Fill.objects.filter(strategy=strategy).count() >= 10, "the sample must trade to mean anything"
    return strategy, marks


def test_derived_curve_ends_at_the_stored_equity_exactly(traded):
    strategy, _ = traded

    curve = equity_curve.derive(strategy)

    assert curve.start == strategy.capital
    assert curve.end == strategy.equity
    assert curve.end != strategy.capital


def test_derived_curve_is_the_engines_equity_after_every_candle(traded, btc_candles):
    strategy, expected = traded

    curve = equity_curve.derive(strategy)

    assert len(curve.marks) == len(btc_candles) == len(expected)
    assert curve.marks[57] == expected[57] and curve.marks[233] == expected[233]
    assert curve.marks == expected
    # Open positions move it between fills: it is not a step function of realized P&L.
    assert len({equity for _, equity in curve.marks}) > 100


def test_a_curve_since_a_time_starts_at_the_equity_of_the_candle_before(traded, btc_candles):
    strategy, marks = traded
    since = btc_candles[299].time + timedelta(seconds=30)

    curve = equity_curve.derive(strategy, since=since)

    assert curve.start == marks[299][1]
    assert [time for time, _ in curve.marks] == [c.time for c in btc_candles[300:]]
    assert curve.end == strategy.equity


def test_a_curve_since_before_the_strategy_began_starts_at_its_capital(traded, btc_candles):
    strategy, _ = traded

    curve = equity_curve.derive(strategy, since=btc_candles[0].time - timedelta(days=1))

    assert curve.start == strategy.capital
    assert len(curve.marks) == len(btc_candles)


def test_candles_stored_before_the_strategy_existed_are_not_on_its_curve(make_strategy, btc_candles):
    feed(btc_candles[:50])  # the market's history, before the strategy
    strategy = make_strategy("late", fast_period=3, slow_period=8)
    feed(btc_candles[50:120])
    strategy.refresh_from_db()

    curve = equity_curve.derive(strategy)

    assert [time for time, _ in curve.marks] == [c.time for c in btc_candles[50:120]]


def test_a_strategy_that_took_no_candle_has_an_empty_curve_at_its_capital(make_strategy):
    strategy = make_strategy("idle")

    curve = equity_curve.derive(strategy)

    assert (curve.start, curve.marks, curve.end) == (strategy.capital, [], strategy.capital)
