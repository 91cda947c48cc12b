"""The P&L page in a real headless Chromium against the real stack: it draws its charts and shows the metrics."""

from __future__ import annotations

import re

import pytest

from orchestrator.datasets import load_candles
from tests.tradeweb.desk.test_browser import browser, log_in  # noqa: F401 (a fixture and a helper)
from tradeweb.desk import equity_curve, live, models, orchestrators

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
    log_in(page, daphne_url, "viewer", "a-long-test-password")
    page.goto(f"{daphne_url}/strategies/alpha/pnl/")

    expect(page.locator("body")).to_have_attribute("data-charts-drawn", "true")
    for chart in ("#equity-chart", "#drawdown-chart"):
        expect(page.locator(f"{chart} canvas").first).to_be_visible()
        expect(page.locator(chart)).to_have_attribute("data-points", str(marks))
        expect(page.locator(chart)).to_have_attribute("data-drawn-points", str(marks))
    expect(page.locator('[data-metric="trades"]')).to_have_text(str(trades))
    expect(page.locator('[data-metric="equity"]')).not_to_have_text("")
    expect(page.locator('[data-metric="sharpe"]')).to_have_text(re.compile(r"^-?\d+\.\d\d$"))
    expect(page.locator("table.trades tbody tr")).to_have_count(25)

    page.click("nav.periods >> text=7d")
    expect(page.locator("#equity-chart")).to_have_attribute("data-drawn-points", str(7 * 24))
    assert errors == []
    page.close()
