"""Metrics: hand-computed values on a small curve and trade list, and empyrical's numbers (configured to the same
convention) on the equity curve of a real run."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import empyrical
import pandas as pd
import pytest

from orchestrator.datasets import load_candles
from orchestrator.engine import StrategyOrchestrator
from orchestrator.equity_curve import EquityCurve
from orchestrator.metrics import Convention, RunningDrawdown, Trade, compute, daily_returns, day_closes, drawdown
from orchestrator.ports import MemoryPublisher, MemoryStore
from strategies import build_strategy

DAY = timedelta(days=1)
T0 = datetime(2022, 1, 1, 23, 59, tzinfo=timezone.utc)
# Daily closes from 100: +10%, -10%, +10%.
CURVE = [(T0, Decimal(110)), (T0 + DAY, Decimal(99)), (T0 + 2 * DAY, Decimal("108.9"))]
TRADES = [
    Trade(T0 - DAY, T0, Decimal(30), Decimal(1)),
    Trade(T0 - DAY / 2, T0 + DAY, Decimal(-10), Decimal(1)),
    Trade(T0 + DAY, T0 + DAY, Decimal(20), Decimal(1)),
    Trade(T0 + DAY, T0 + DAY, Decimal(-20), Decimal(1)),
]


def test_hand_computed_ratios_on_three_daily_returns():
    metrics = compute(Decimal(100), CURVE, TRADES)

    # Returns 0.1, -0.1, 0.1: mean 1/30, sample deviation sqrt(0.04 / 3) = 0.11547.
    mean, deviation = 1 / 30, math.sqrt(0.04 / 3)
    assert metrics.total_return == pytest.approx(0.089)
    assert metrics.volatility == pytest.approx(deviation * math.sqrt(365))
    assert metrics.sharpe == pytest.approx(mean / deviation * math.sqrt(365))
    # Downside deviation: sqrt((0 + 0.01 + 0) / 3).
    assert metrics.sortino == pytest.approx(mean * 365 / (math.sqrt(0.01 / 3) * math.sqrt(365)))
    assert metrics.cagr == pytest.approx(1.089 ** (365 / 3) - 1)
    assert metrics.max_drawdown == pytest.approx(-0.1)
    assert metrics.max_drawdown_duration == 2 * DAY, "below the 110 peak from the day after it to the end"
    assert metrics.calmar == pytest.approx(metrics.cagr / 0.1)


def test_hand_computed_trade_figures():
    metrics = compute(Decimal(100), CURVE, TRADES)

    assert (metrics.trades, metrics.win_rate) == (4, 0.5)
    assert metrics.profit_factor == pytest.approx(50 / 30)
    assert (metrics.expectancy, metrics.average_win, metrics.average_loss) == (Decimal(5), Decimal(25), Decimal(-15))
    assert metrics.fees == Decimal(4)
    # The curve spans T0 to T0 + 2 days; some position was open from T0 to T0 + 1 day within it.
    assert metrics.exposure == pytest.approx(0.5)


def test_figures_that_cannot_be_computed_are_none():
    metrics = compute(Decimal(100), CURVE[:1], [Trade(T0, T0, Decimal(5))])

    assert (metrics.volatility, metrics.sharpe, metrics.sortino) == (None, None, None)
    assert (metrics.profit_factor, metrics.calmar, metrics.average_loss) == (None, None, None)
    assert metrics.win_rate == 1.0


def test_returns_are_taken_at_each_utc_days_last_mark():
    marks = [(T0 - DAY / 2, Decimal(105)), (T0, Decimal(110)), (T0 + DAY / 2, Decimal(88)), (T0 + DAY, Decimal(99))]

    assert daily_returns(Decimal(100), marks) == pytest.approx([0.1, -0.1])


@pytest.fixture(scope="module")
def btc_equity() -> tuple[Decimal, list[tuple[datetime, Decimal]]]:
    """The equity after every candle of an SMA crossover over the shipped BTC/USD month."""
    runner = StrategyOrchestrator("metrics", build_strategy("sma_crossover", {"position_size": "1"}), "BTC/USD", "1m",
                                  Decimal(10_000), MemoryStore(), MemoryPublisher())
    curve = []
    for candle in load_candles("BTC/USD"):
        runner.process(candle)
        curve.append((candle.time, runner.equity))
    return Decimal(10_000), curve


@pytest.mark.parametrize("periods", [365, 252])
def test_ratios_equal_empyricals_on_a_real_equity_curve(btc_equity, periods):
    start, curve = btc_equity
    # The daily curve built independently of the module: pandas' last mark of each UTC day.
    series = pd.Series([float(e) for _, e in curve], index=pd.DatetimeIndex([t for t, _ in curve]))
    daily = series.resample("1D").last().dropna()
    returns = pd.concat([pd.Series([float(start)]), pd.Series(daily.values)]).pct_change().dropna()
    daily_curve = [(t.to_pydatetime(), Decimal(str(v))) for t, v in daily.items()]

    metrics = compute(start, daily_curve, [], Convention(periods_per_year=periods))

    assert len(returns) == len(daily) > 30
    assert metrics.volatility == pytest.approx(empyrical.annual_volatility(returns, annualization=periods), rel=1e-9)
    assert metrics.sharpe == pytest.approx(empyrical.sharpe_ratio(returns, annualization=periods), rel=1e-9)
    assert metrics.sortino == pytest.approx(empyrical.sortino_ratio(returns, annualization=periods), rel=1e-9)
    assert metrics.cagr == pytest.approx(empyrical.cagr(returns, annualization=periods), rel=1e-9)
    assert metrics.max_drawdown == pytest.approx(empyrical.max_drawdown(returns), rel=1e-9)
    assert metrics.calmar == pytest.approx(empyrical.calmar_ratio(returns, annualization=periods), rel=1e-9)


def test_the_drawdown_of_every_mark_is_at_least_that_of_daily_closes(btc_equity):
    start, curve = btc_equity
    every_mark = compute(start, curve, [])
    daily = compute(start, [marks[-1] for marks in by_day(curve).values()], [])

    assert every_mark.sharpe == pytest.approx(daily.sharpe)
    assert every_mark.max_drawdown <= daily.max_drawdown < 0


def test_a_drawdown_taken_in_pieces_is_the_whole_curves(btc_equity):
    start, curve = btc_equity
    deepest, longest = drawdown(start, curve)
    assert deepest < 0 and longest > timedelta(hours=1)

    for cuts in ((), (1,), (700, 701, 20_000), tuple(range(0, len(curve), 997))):
        running = RunningDrawdown(start)
        for begin, end in zip((0, *cuts), (*cuts, len(curve))):
            running.extend(curve[begin:end])
        low, high = running.longest_stretch()
        assert (running.deepest, high - low) == (deepest, longest), cuts


def test_a_drawdown_reads_times_given_as_numbers_as_it_reads_datetimes(btc_equity):
    start, curve = btc_equity
    running = RunningDrawdown(start)
    running.extend((int(time.timestamp()), equity) for time, equity in curve)

    low, high = running.longest_stretch()
    assert (running.deepest, timedelta(seconds=high - low)) == drawdown(start, curve)


def test_the_drawdown_lasts_to_the_last_mark_while_below_the_peak():
    running = RunningDrawdown(Decimal(100))
    running.extend([(0, Decimal(100)), (1, Decimal(90)), (2, Decimal(100)), (3, Decimal(95))])
    assert (running.deepest, running.longest_stretch()) == (pytest.approx(-0.1), (0, 1))

    running.extend([(4, Decimal(99)), (9, Decimal(98))])
    assert (running.deepest, running.longest_stretch()) == (pytest.approx(-0.1), (2, 9))


def by_day(curve):
    days: dict = {}
    for time, equity in curve:
        days.setdefault(time.date(), []).append((time, equity))
    return days


def test_a_kept_curves_day_closes_are_the_last_marks_of_its_days_with_days_missing(btc_equity):
    start, curve = btc_equity
    # Three days without a mark in the middle, and a day with one mark.
    gap = [(t, e) for t, e in curve if not 5 <= t.day <= 7]
    gap = [mark for mark in gap if mark[0].day != 9 or mark == [m for m in gap if m[0].day == 9][0]]
    kept = EquityCurve(gap)

    closes = day_closes(kept)
    assert closes == [marks[-1][1] for marks in by_day(gap).values()] == day_closes(list(gap))
    assert len(closes) == len(by_day(curve)) - 3


def test_a_drawdown_reads_a_kept_curves_repeated_equities_as_it_reads_equal_copies(btc_equity):
    start, curve = btc_equity
    kept = EquityCurve(curve)
    values = kept.values
    # The kept curve holds an unchanged equity as the one object (what the shortcut reads), the copies never.
    assert sum(a is b for a, b in zip(values, values[1:])) > len(values) // 2
    copies = [(time, Decimal(str(equity))) for time, equity in curve]
    assert not any(a[1] is b[1] for a, b in zip(copies, copies[1:]))

    assert drawdown(start, kept) == drawdown(start, copies)
    for cuts in ((1,), (700, 701, 20_000), tuple(range(0, len(curve), 997))):
        running = RunningDrawdown(start)
        for begin, end in zip((0, *cuts), (*cuts, len(curve))):
            running.extend(kept[begin:end])
        low, high = running.longest_stretch()
        assert (running.deepest, high - low) == drawdown(start, copies), cuts
