"""A strategy's P&L page: metrics of the one metrics module on the derived curve, the period filter by market
time, the breakdown, the trades table (sort, pages, exit reasons, bounded queries), the candle chart with its
fills and indicator lines, open positions, journal, config versions and control actions, the live update, the
exports, and access."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from orchestrator.exit_reasons import exit_reasons
from orchestrator.indicators import SMA
from orchestrator.metrics import Trade, compute
from tests.core_runs import core_run
from tests.ingest import feed
from tradeweb.desk import config_history, equity_curve, models, price_chart, trade_list
from tradeweb.desk.control import set_active

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_worker")]




@pytest.fixture
def traded(make_strategy, month):
    """A strategy that traded the month through the live path."""
    strategy = make_strategy("alpha", timeframe="1h", fast_period=3, slow_period=8, stop_loss_pct="0.01",
                             take_profit_pct="0.015")
    feed(month)
    strategy.refresh_from_db()
    assert models.Position.objects.filter(strategy=strategy, closed_at__isnull=False).count() >= 30
    return strategy


@pytest.fixture
def viewer(client, make_user):
    client.force_login(make_user("viewer"))
    return client


def closed(strategy, since=None) -> list[models.Position]:
    rows = models.Position.objects.filter(strategy=strategy, closed_at__isnull=False)
    return list(rows.filter(closed_at__gt=since) if since else rows)


def test_it_shows_the_metrics_of_compute_on_the_derived_curve_and_the_closed_trades(viewer, traded):
    page = viewer.get(reverse("strategy_pnl", args=["alpha"]))

    assert page.status_code == 200
    curve = equity_curve.derive(traded)
    positions = closed(traded)
    fees = sum((f.fee for f in models.Fill.objects.filter(strategy=traded)), Decimal(0))
    expected = compute(traded.capital, curve.marks, [Trade(p.opened_at, p.closed_at, p.realized_pnl, p.fees) for p in positions],
                       fees=fees)
    assert page.context["metrics"] == expected
    assert expected.sharpe is not None and expected.max_drawdown < 0 and expected.trades == len(positions)
    assert page.context["pnl"] == traded.equity - traded.capital
    assert page.context["realized_pnl"] == traded.realized_pnl
    html = page.content.decode()
    assert f'data-metric="trades">{expected.trades}<' in html
    assert f'data-metric="sharpe">{expected.sharpe:.2f}<' in html
    assert "365 periods a year, risk-free rate 0" in html and "ddof 1" in html


def test_the_period_cuts_the_curve_at_market_time_before_the_newest_candle(viewer, traded, month):
    page = viewer.get(reverse("strategy_pnl", args=["alpha"]), {"period": "7d"})

    since = month[-1].time - timedelta(days=7)
    assert page.context["since"] == since
    curve = page.context["curve"]
    assert [t for t, _ in curve.marks] == [c.time for c in month if c.time > since]
    full = dict(equity_curve.derive(traded).marks)
    assert curve.start == full[max(t for t in full if t <= since)]
    trades = [Trade(p.opened_at, p.closed_at, p.realized_pnl, p.fees) for p in closed(traded, since)]
    fees = sum((f.fee for f in models.Fill.objects.filter(strategy=traded, time__gt=since)), Decimal(0))
    assert page.context["metrics"] == compute(curve.start, curve.marks, trades, fees=fees)
    assert 0 < page.context["metrics"].trades < len(closed(traded))


def test_the_breakdown_sums_to_the_periods_pnl_and_trades(viewer, traded):
    for period, unit, rows in (("all", "day", 31), ("all", "week", 6), ("all", "month", 2), ("7d", "day", 8)):
        page = viewer.get(reverse("strategy_pnl", args=["alpha"]), {"period": period, "breakdown": unit})

        breakdown = page.context["breakdown"]
        assert len(breakdown) >= rows - 1, (period, unit)
        assert sum((row["pnl"] for row in breakdown), Decimal(0)) == page.context["pnl"], (period, unit)
        assert sum(row["trades"] for row in breakdown) == page.context["metrics"].trades, (period, unit)
        start = page.context["curve"].start
        assert breakdown[0]["return"] == pytest.approx(float(breakdown[0]["equity"] / start) - 1)


def test_the_trades_table_sorts_and_pages_on_the_server(viewer, traded):
    url = reverse("strategy_pnl", args=["alpha"])
    everything = closed(traded)

    by_pnl = [t.realized_pnl for t in viewer.get(url, {"sort": "pnl", "order": "asc", "per_page": 25}).context["trades"]]
    second = viewer.get(url, {"sort": "pnl", "order": "asc", "per_page": 25, "page": 2}).context["trades"]
    newest = viewer.get(url).context["trades"]
    by_size = viewer.get(url, {"sort": "size", "order": "desc"}).context["trades"]
    by_reason = viewer.get(url, {"sort": "exit_reason", "order": "asc", "per_page": 200}).context["trades"]

    ranked = sorted(t.realized_pnl for t in everything)
    assert by_pnl == ranked[:25]
    assert [t.realized_pnl for t in second] == ranked[25:50]
    assert [t.closed_at for t in newest] == sorted((t.closed_at for t in everything), reverse=True)[:25]
    assert [t.initial_quantity for t in by_size] == sorted((t.initial_quantity for t in everything), reverse=True)[:25]
    assert newest.paginator.count == len(everything)
    reasons = {t.position_id: t.exit_reason for t in viewer.get(url, {"per_page": 200}).context["trades"]}
    assert [(t.exit_reason, t.id) for t in by_reason] == sorted((reasons[t.position_id], t.id) for t in everything)[:200]


def test_every_trade_has_the_exit_reason_its_closing_fill_and_order_give(viewer, traded):
    page = viewer.get(reverse("strategy_pnl", args=["alpha"]), {"per_page": 200})

    closing = {f.position_id: f for f in models.Fill.objects.filter(strategy=traded, intent="close")}
    reasons = {"stop_loss": "stop-loss", "take_profit": "take-profit", "market": "signal"}
    trades = list(page.context["trades"])
    assert {t.position_id: t.exit_reason for t in trades} == {
        t.position_id: reasons[closing[t.position_id].trigger] for t in trades
    }
    counts = page.context["reason_counts"]
    assert counts["stop-loss"] > 0 and counts["take-profit"] > 0 and counts["signal"] > 0
    assert counts == {reason: sum(1 for t in trades if t.exit_reason == reason)
                      for reason in ("signal", "stop-loss", "take-profit", "switch", "halt")}
    assert f'data-reason="stop-loss">stop-loss {counts["stop-loss"]}<' in page.content.decode()


def test_the_tables_exit_reasons_are_the_cores_on_the_same_strategys_uninterrupted_run(traded, month):
    store, _ = core_run(traded, month)
    results = store.results

    expected = exit_reasons((f for r in results for f in r.fills), (o for r in results for o in r.orders))

    assert {t.position_id: t.exit_reason for t in trade_list.closed_trades(traded)} == expected
    assert {"signal", "stop-loss", "take-profit"} <= set(expected.values())


def test_a_position_closed_by_switching_the_strategy_off_with_the_close_policy_exits_for_a_switch(
    viewer, make_strategy, make_user, btc_candles
):
    strategy = make_strategy("closer", fast_period=3, slow_period=8)
    models.Strategy.objects.filter(pk=strategy.pk).update(wind_down="close")
    for index, candle in enumerate(btc_candles):
        feed([candle])
        if models.Position.objects.filter(strategy=strategy, closed_at=None).exists() and not models.Order.objects.filter(
                strategy=strategy, status="pending").exists():
            break
    set_active("closer", make_user("trader", can_control=True), False)
    feed(btc_candles[index + 1:index + 3])

    page = viewer.get(reverse("strategy_pnl", args=["closer"]))

    last = page.context["trades"][0]
    assert last.exit_reason == "switch"
    assert page.context["reason_counts"]["switch"] == 1


def test_the_number_of_queries_does_not_grow_with_the_page_size(viewer, traded, django_assert_max_num_queries):
    url = reverse("strategy_pnl", args=["alpha"])
    with django_assert_max_num_queries(20) as small:
        viewer.get(url, {"per_page": 25})
    with django_assert_max_num_queries(len(small.captured_queries)):
        page = viewer.get(url, {"per_page": 200})
    assert len(page.context["trades"]) > 25


def test_the_exports_hold_the_rows_of_the_period(viewer, traded, month):
    since = month[-1].time - timedelta(days=7)

    trades_csv = viewer.get(reverse("strategy_pnl_export", args=["alpha", "trades", "csv"]), {"period": "7d"})
    trades_json = viewer.get(reverse("strategy_pnl_export", args=["alpha", "trades", "json"]), {"period": "7d"}).json()
    equity_csv = viewer.get(reverse("strategy_pnl_export", args=["alpha", "equity", "csv"]), {"period": "7d"})
    equity_json = viewer.get(reverse("strategy_pnl_export", args=["alpha", "equity", "json"]), {"period": "7d"}).json()

    positions = sorted(closed(traded, since), key=lambda p: (p.closed_at, p.id))
    rows = list(csv.DictReader(io.StringIO(trades_csv.content.decode())))
    assert trades_csv["Content-Type"] == "text/csv" and "attachment" in trades_csv["Content-Disposition"]
    assert rows == trades_json["trades"]
    assert [(r["position_id"], Decimal(r["pnl"]), Decimal(r["size"]), Decimal(r["fees"])) for r in rows] == [
        (p.position_id, p.realized_pnl, p.initial_quantity, p.fees) for p in positions]
    assert [Decimal(r["exit_price"]) for r in rows] == [p.exit_price for p in positions]
    assert {r["exit_reason"] for r in rows} <= {"signal", "stop-loss", "take-profit"}
    curve = equity_curve.derive(traded, since=since)
    assert list(csv.DictReader(io.StringIO(equity_csv.content.decode()))) == equity_json["equity"]
    assert [(r["time"], Decimal(r["equity"])) for r in equity_json["equity"]] == [
        (t.isoformat(), e) for t, e in curve.marks]
    assert (equity_json["period"], Decimal(equity_json["start"])) == ("7d", curve.start)
    assert len(equity_json["equity"]) == 7 * 24


def test_the_charts_carry_the_downsampled_curve_and_its_drawdown(viewer, traded):
    page = viewer.get(reverse("strategy_pnl", args=["alpha"]))

    html = page.content.decode()
    charts = json.loads(html.split('id="pnl-charts" type="application/json">')[1].split("</script>")[0])
    curve = page.context["curve"]
    assert len(charts["equity"]) == len(curve.marks)  # a month of hours is under the bucket limit: all of it
    assert charts["equity"][-1] == [int(curve.marks[-1][0].timestamp()), float(traded.equity)]
    assert min(v for _, v in charts["drawdown"]) == pytest.approx(page.context["metrics"].max_drawdown)
    assert f'data-points="{len(charts["equity"])}"' in html


def test_an_unknown_choice_falls_back_and_an_unknown_export_or_strategy_is_404(viewer, traded):
    page = viewer.get(reverse("strategy_pnl", args=["alpha"]), {"period": "1y", "sort": "id;drop", "page": "x", "per_page": "7"})

    assert page.status_code == 200
    assert (page.context["choice"].period, page.context["choice"].sort, page.context["choice"].per_page) == ("all", "exit_time", 25)
    assert viewer.get(reverse("strategy_pnl_export", args=["alpha", "orders", "csv"])).status_code == 404
    assert viewer.get(reverse("strategy_pnl_export", args=["alpha", "trades", "xml"])).status_code == 404
    assert viewer.get(reverse("strategy_pnl", args=["nobody"])).status_code == 404


def test_it_rejects_post(viewer, traded):
    assert viewer.post(reverse("strategy_pnl", args=["alpha"])).status_code == 405
    assert viewer.post(reverse("strategy_pnl_export", args=["alpha", "trades", "csv"])).status_code == 405


def test_it_checks_access(client, traded):
    for url in (reverse("strategy_pnl", args=["alpha"]), reverse("strategy_pnl_export", args=["alpha", "equity", "json"])):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_the_strategy_page_links_to_it_and_still_shows_its_positions(viewer, traded):
    html = viewer.get(reverse("strategy_detail", args=["alpha"])).content.decode()

    assert reverse("strategy_pnl", args=["alpha"]) in html
    assert closed(traded)[0].position_id in html


def test_the_candle_chart_shows_the_newest_candles_the_fills_among_them_and_the_strategys_own_averages(
    viewer, traded, month
):
    page = viewer.get(reverse("strategy_pnl", args=["alpha"]))

    price = page.context["charts"]["price"]
    shown = month[-price_chart.CANDLES_SHOWN:]
    assert [row[0] for row in price["candles"]] == [int(c.time.timestamp()) for c in shown]
    assert price["candles"][-1] == [int(shown[-1].time.timestamp()), float(shown[-1].open), float(shown[-1].high),
                                    float(shown[-1].low), float(shown[-1].close)]
    # The core's averages fed the month's candles, as the strategy read them: equal, not close.
    for key, period in (("sma_3", 3), ("sma_8", 8)):
        sma = SMA(period)
        values = {int(c.time.timestamp()): sma.update(c) for c in month}
        (line,) = [line for line in price["lines"] if line["key"] == key]
        assert line["on_price"] is True
        assert line["points"] == [[row[0], values[row[0]]] for row in price["candles"]]
    fills = models.Fill.objects.filter(strategy=traded, time__gte=shown[0].time).order_by("time", "id")
    assert [(m["time"], m["side"], m["intent"], m["position_id"]) for m in price["markers"]] == [
        (int(f.time.timestamp()), f.side, f.intent, f.position_id) for f in fills]
    assert {m["intent"] for m in price["markers"]} == {"open", "close"}
    html = page.content.decode()
    assert f'data-candles="{len(shown)}" data-markers="{fills.count()}" data-lines="sma_3 sma_8"' in html


def test_chart_end_moves_the_candle_window_back_and_a_wrong_one_shows_the_newest(viewer, traded, month):
    url = reverse("strategy_pnl", args=["alpha"])
    end = int(month[400].time.timestamp())

    earlier = viewer.get(url, {"chart_end": end}).context["charts"]["price"]
    wrong = [viewer.get(url, {"chart_end": value}).context["charts"]["price"]
             for value in ("x", "-5", "1e9", "99999999999999", "")]

    assert earlier["candles"][-1][0] == end and earlier["end"] == end
    assert len(earlier["candles"]) == price_chart.CANDLES_SHOWN
    assert earlier["earlier"] == earlier["candles"][0][0] - 1
    for price in wrong:
        assert price["candles"][-1][0] == int(month[-1].time.timestamp()) and price["end"] is None


@pytest.fixture
def holding(make_strategy, make_user, btc_candles):
    """A strategy holding an open position after a control action and a second config version."""
    strategy = make_strategy("holder", fast_period=3, slow_period=8)
    for index, candle in enumerate(btc_candles):
        feed([candle])
        if models.Position.objects.filter(strategy=strategy, closed_at=None).exists():
            break
    trader = make_user("trader", can_control=True)
    set_active("holder", trader, False)
    set_active("holder", trader, True)
    strategy.refresh_from_db()
    strategy.config = dict(strategy.config, take_profit_pct="0.05")
    config_history.save_settings(strategy, trader, ["config"])
    strategy.refresh_from_db()
    return strategy


def test_it_shows_open_positions_at_the_last_close_the_journal_the_config_versions_and_control_actions(viewer, holding):
    page = viewer.get(reverse("strategy_pnl", args=["holder"]))

    html = page.content.decode()
    (position,) = models.Position.objects.filter(strategy=holding, closed_at=None)
    sign = 1 if position.side == "long" else -1
    unrealized = (holding.last_close - position.entry_price) * position.quantity * sign - position.entry_fee
    assert [(p["position"].position_id, p["unrealized_pnl"]) for p in page.context["open_positions"]] == [
        (position.position_id, unrealized)]
    assert f'data-unrealized="{unrealized}"' in html
    journal = models.JournalEntry.objects.filter(strategy=holding)
    assert journal.count() > 0 and all(entry.message in html for entry in journal)
    assert "version 2 in force" in html and "<code>config.take_profit_pct</code>" in html
    assert html.count("<td>trader</td>") == 3  # two control actions and the saved version
    assert "<td>deactivate</td>" in html and "<td>activate</td>" in html


def test_the_live_update_carries_the_pages_charts_and_its_live_partial(viewer, traded):
    url = reverse("strategy_pnl_live", args=["alpha"])
    query = {"period": "7d", "sort": "pnl", "per_page": 50}

    update = viewer.get(url, query)
    page = viewer.get(reverse("strategy_pnl", args=["alpha"]), query)

    assert update.status_code == 200 and update["Content-Type"] == "application/json"
    body = update.json()
    assert body["charts"] == json.loads(json.dumps(page.context["charts"]))
    assert body["html"].startswith('<div id="pnl-live" data-strategy-id="alpha"')
    assert body["html"].strip() in page.content.decode()


def test_the_live_update_rejects_post_and_an_unknown_strategy(viewer, traded):
    assert viewer.post(reverse("strategy_pnl_live", args=["alpha"])).status_code == 405
    assert viewer.get(reverse("strategy_pnl_live", args=["nobody"])).status_code == 404


def test_the_live_update_checks_access(client, traded):
    response = client.get(reverse("strategy_pnl_live", args=["alpha"]))

    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
