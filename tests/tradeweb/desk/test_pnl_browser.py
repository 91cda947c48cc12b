"""The P&L page in a real headless Chromium against the real stack: it draws its charts (candles with the fills
as markers and the strategy's averages, equity, drawdown) and shows the metrics; a fill made by a real worker
while the page is open adds its marker and its table row and extends the equity curve, without a reload."""

from __future__ import annotations

import re

import pytest

from orchestrator.datasets import load_candles
from tests.tradeweb.desk.test_browser import browser, candle, csp_violations, log_in, minute  # noqa: F401 (a fixture and helpers)
from tradeweb.desk import equity_curve, live, models, orchestrators, price_chart
from tradeweb.desk.tasks import process_candle

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_pnl_page_draws_the_equity_and_drawdown_charts_and_shows_the_metrics(
    daphne_url, browser, make_strategy, make_user  # noqa: F811
):
    from playwright.sync_api import expect

    strategy = make_strategy("alpha", timeframe="1h", fast_period=3, slow_period=8, stop_loss_pct="0.01",
                             take_profit_pct="0.015")
    orchestrators.forget_all()
    for candle in load_candles("BTC/USD", "1h"):
        live.ingest_candle(candle.to_mapping())
    orchestrators.forget_all()
    strategy.refresh_from_db()
    marks = len(equity_curve.derive(strategy).marks)
    trades = models.Position.objects.filter(strategy=strategy, closed_at__isnull=False).count()
    assert marks > 700 and trades >= 30
    make_user("viewer", password="a-long-test-password")

    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    violations = csp_violations(page)
    log_in(page, daphne_url, "viewer", "a-long-test-password")
    page.goto(f"{daphne_url}/strategies/alpha/pnl/")

    expect(page.locator("body")).to_have_attribute("data-charts-drawn", "true")
    for chart in ("#equity-chart", "#drawdown-chart"):
        expect(page.locator(f"{chart} canvas").first).to_be_visible()
        expect(page.locator(chart)).to_have_attribute("data-points", str(marks))
        expect(page.locator(chart)).to_have_attribute("data-drawn-points", str(marks))
    shown = price_chart.CANDLES_SHOWN
    first_shown = models.Candle.objects.filter(symbol="BTC/USD", timeframe="1h").order_by("-time")[shown - 1].time
    markers = models.Fill.objects.filter(strategy=strategy, time__gte=first_shown).count()
    assert markers > 10
    expect(page.locator("#price-chart canvas").first).to_be_visible()
    expect(page.locator("#price-chart")).to_have_attribute("data-drawn-candles", str(shown))
    expect(page.locator("#price-chart")).to_have_attribute("data-drawn-markers", str(markers))
    expect(page.locator("#price-chart")).to_have_attribute("data-drawn-lines", "sma_3 sma_8")
    expect(page.locator('[data-metric="trades"]')).to_have_text(str(trades))
    expect(page.locator('[data-metric="equity"]')).not_to_have_text("")
    expect(page.locator('[data-metric="sharpe"]')).to_have_text(re.compile(r"^-?\d+\.\d\d$"))
    expect(page.locator("table.trades tbody tr")).to_have_count(25)

    page.click("nav.periods >> text=7d")
    expect(page.locator("#equity-chart")).to_have_attribute("data-drawn-points", str(7 * 24))
    assert errors == []
    assert violations == [], "the charts' logo style is refused by the policy: the page credits TradingView in text"
    page.close()


def test_a_fill_made_by_a_worker_adds_a_marker_and_a_table_row_and_extends_the_equity_curve_without_a_reload(
    daphne_url, wait_for_worker, browser, make_strategy, make_user  # noqa: F811
):
    from playwright.sync_api import expect

    strategy = make_strategy("alpha", fast_period=2, slow_period=3)
    make_user("viewer", password="a-long-test-password")

    def send(closes: dict[int, str]) -> None:
        for n, close in closes.items():
            process_candle.delay(candle(n, close))
        last = max(closes)
        wait_for_worker(lambda: models.Strategy.objects.get(strategy_id="alpha").last_candle_time == minute(last),
                        f"the candle at minute {last}")

    # Falling closes: SMA(2) stays below SMA(3), nothing happens.
    send({0: "100", 1: "99", 2: "98", 3: "97"})
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(page, daphne_url, "viewer", "a-long-test-password")
    page.goto(f"{daphne_url}/strategies/alpha/pnl/")
    expect(page.locator("#ws-status")).to_have_text("live")
    expect(page.locator("#price-chart")).to_have_attribute("data-drawn-candles", "4")
    expect(page.locator("#price-chart")).to_have_attribute("data-drawn-markers", "0")
    expect(page.locator("#equity-chart")).to_have_attribute("data-drawn-points", "4")
    expect(page.locator("table.open-positions tbody")).to_contain_text("No open position.")
    page.evaluate("window.__not_reloaded = true")

    # A jump: SMA(2) crosses above SMA(3); the order fills at the next candle's open.
    send({4: "105", 5: "106"})
    (entry,) = models.Fill.objects.filter(strategy=strategy)

    expect(page.locator("#price-chart")).to_have_attribute("data-drawn-markers", "1")
    expect(page.locator(f'table.open-positions tr[data-position="{entry.position_id}"]')).to_have_count(1)
    expect(page.locator("#equity-chart")).to_have_attribute("data-drawn-points", "6")
    expect(page.locator("#price-chart")).to_have_attribute("data-drawn-candles", "6")

    # Still rising, no cross: no event, only the market's marks, which move the unrealized P&L and equity.
    events = models.Event.objects.filter(strategy_id="alpha").count()
    send({6: "108"})
    row = models.Strategy.objects.get(strategy_id="alpha")
    assert models.Event.objects.filter(strategy_id="alpha").count() == events and row.unrealized_pnl > 0
    expect(page.locator('[data-metric="unrealized_pnl"]')).to_have_text(f"{row.unrealized_pnl:,.2f}")
    expect(page.locator('[data-metric="equity"]')).to_have_text(f"{row.equity:,.2f}")

    # A fall: the position closes (its stop, or the cross below, whichever the candles give).
    send({7: "90", 8: "85"})
    wait_for_worker(lambda: models.Position.objects.filter(strategy=strategy, closed_at__isnull=False).exists(),
                    "the position closed")
    fills = models.Fill.objects.filter(strategy=strategy).count()

    expect(page.locator("#price-chart")).to_have_attribute("data-drawn-markers", str(fills))
    expect(page.locator(f'table.trades tr[data-position="{entry.position_id}"]')).to_have_count(1)
    expect(page.locator('[data-metric="trades"]')).to_have_text("1")
    expect(page.locator("#equity-chart")).to_have_attribute("data-drawn-points", "9")
    assert fills == 2
    assert page.evaluate("window.__not_reloaded") is True
    assert errors == []
    page.close()
