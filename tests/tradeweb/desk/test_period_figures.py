"""A period of the kept history as the P&L page shows it: the chart keeps every bucket's peak and trough, the
breakdown counts each trade in the bucket it closed in, and every figure equals the one worked out from scratch on
the derived curve, for the whole history and for a period after a moment."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from orchestrator.metrics import Trade, compute
from tests.ingest import feed
from tradeweb.desk import equity_curve, models, period_figures, trade_list
from tradeweb.desk.history_cache import StrategyHistories

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_worker")]
BUCKETS = period_figures.CHART_BUCKETS


def test_the_chart_keeps_every_buckets_lowest_and_highest_point_and_the_last():
    values = [float((i * 7919) % 1000) for i in range(10_000)]

    kept = period_figures.chart_points(values, 100)

    assert len(kept) <= 201
    assert kept[-1] == len(values) - 1
    assert kept == sorted(set(kept))
    for bucket in range(100):
        run = values[bucket * 100:(bucket + 1) * 100]
        assert bucket * 100 + run.index(min(run)) in kept and bucket * 100 + run.index(max(run)) in kept
    assert min(values[i] for i in kept) == min(values) and max(values[i] for i in kept) == max(values)
    assert period_figures.chart_points(values[:150], 100) == list(range(150))




def from_scratch(strategy: models.Strategy, since, unit: str) -> dict:
    """The figures worked out on the curve derived from scratch, as the page worked them out before it kept a
    history: every mark's date, every trade's closing date, every mark's float."""
    curve = equity_curve.derive(strategy, since=since)
    positions = models.Position.objects.filter(strategy=strategy, closed_at__isnull=False).order_by("closed_at", "id")
    fills = models.Fill.objects.filter(strategy=strategy)
    if since is not None:
        positions, fills = positions.filter(closed_at__gt=since), fills.filter(time__gt=since)
    trades = [Trade(p.opened_at, p.closed_at, p.realized_pnl, p.fees) for p in positions]
    ends, closed = {}, {}
    for time, equity in curve.marks:
        ends[period_figures.bucket_of(time.date(), unit)] = equity
    for trade in trades:
        key = period_figures.bucket_of(trade.closed_at.date(), unit)
        closed[key] = closed.get(key, 0) + 1
    rows, previous = [], curve.start
    for key, equity in ends.items():
        rows.append({"start": key, "pnl": equity - previous, "trades": closed.get(key, 0),
                     "return": float(equity / previous) - 1.0 if previous else None, "equity": equity})
        previous = equity
    levels, peak, fall = [float(e) for _, e in curve.marks], float(curve.start), []
    for level in levels:
        peak = max(peak, level)
        fall.append(level / peak - 1.0)
    seconds = [int(time.timestamp()) for time, _ in curve.marks]
    return {
        "start": curve.start, "marks": curve.marks,
        "metrics": compute(curve.start, curve.marks, trades, fees=sum((f.fee for f in fills), Decimal(0))),
        "breakdown": rows,
        "reasons": [p.exit_reason for p in trade_list.sorted_trades(trade_list.closed_trades(strategy, since),
                                                                    "exit_time", False)],
        "pks": [p.pk for p in positions],
        "series": {name: [[seconds[i], values[i]] for i in period_figures.chart_points(values, BUCKETS)]
                   for name, values in (("equity", levels), ("drawdown", fall))},
    }


def test_every_figure_of_a_period_equals_the_one_worked_out_from_scratch(make_strategy, month):
    strategy = make_strategy("alpha", timeframe="1h", fast_period=3, slow_period=8, stop_loss_pct="0.01",
                             take_profit_pct="0.015")
    histories = StrategyHistories()
    for part in (month[:200], month[200:201], month[201:]):
        feed(part)
        strategy.refresh_from_db()
        history = histories.of(strategy)

    for since in (None, month[-1].time - timedelta(days=7), month[300].time + timedelta(minutes=30),
                  month[0].time - timedelta(days=1)):
        for unit in ("day", "week", "month"):
            figures = period_figures.figures(history, since, unit)
            expected = from_scratch(strategy, since, unit)

            assert (figures["curve"].start, figures["curve"].marks) == (expected["start"], expected["marks"])
            assert figures["metrics"] == expected["metrics"], (since, unit)
            assert figures["breakdown"] == expected["breakdown"], (since, unit)
            assert figures["trade_reasons"] == expected["reasons"] and figures["trade_pks"] == expected["pks"]
            assert figures["series"] == expected["series"]
    assert figures["metrics"].trades >= 30 and figures["metrics"].max_drawdown < 0
    assert len(period_figures.figures(history, None, "week")["breakdown"]) >= 5


def test_a_close_by_a_wind_down_is_a_switch_in_a_history_extended_across_it(make_strategy, make_user, btc_candles):
    from tradeweb.desk.control import set_active

    strategy = make_strategy("closer", fast_period=3, slow_period=8)
    models.Strategy.objects.filter(pk=strategy.pk).update(wind_down="close")
    histories = StrategyHistories()
    for index, candle in enumerate(btc_candles):
        feed([candle])
        holding = models.Position.objects.filter(strategy=strategy, closed_at=None).exists()
        if holding and not models.Order.objects.filter(strategy=strategy, status="pending").exists():
            break
    strategy.refresh_from_db()
    history = histories.of(strategy)
    set_active("closer", make_user("trader", can_control=True), False)
    feed(btc_candles[index + 1:index + 3])
    strategy.refresh_from_db()

    assert histories.of(strategy) is history
    assert history.exit_reasons[-1] == "switch"
    assert history.exit_reasons == [p.exit_reason for p in trade_list.sorted_trades(
        trade_list.closed_trades(strategy), "exit_time", False)]


def test_a_strategy_that_took_no_candle_has_its_capital_and_nothing_else(make_strategy, make_user, client):
    strategy = make_strategy("idle")
    client.force_login(make_user("viewer"))

    figures = period_figures.figures(StrategyHistories().of(strategy), None, "day")
    page = client.get(reverse("strategy_pnl", args=["idle"]), {"period": "7d"})

    curve = figures["curve"]
    assert (curve.start, curve.end, len(curve), curve.marks) == (strategy.capital, strategy.capital, 0, [])
    assert figures["metrics"] == compute(strategy.capital, [], [])
    assert (figures["breakdown"], figures["series"]) == ([], {"equity": [], "drawdown": []})
    assert page.status_code == 200 and page.context["pnl"] == 0
