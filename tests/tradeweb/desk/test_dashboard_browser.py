"""The dashboard in a real headless Chromium against the real stack: the portfolio table sorts, the combined chart
draws every point under the page's policy, the table and chart follow a worker's candle, and the page fits a phone's
width."""

from __future__ import annotations

import pytest

from orchestrator.datasets import load_candles
from django.template.defaultfilters import floatformat

from tests.tradeweb.desk.test_browser import browser, csp_violations, log_in  # noqa: F401 (browser is a fixture)
from tests.tradeweb.desk.test_equity_samples import take
from tradeweb.desk import models
from tradeweb.desk.control import set_active
from tradeweb.desk.tasks import process_candle

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_worker")]

PASSWORD = "a-long-test-password"
CANDLES = 340


@pytest.fixture
def desk(make_strategy, make_user):
    """Three strategies that traded 28 hours of real BTC/USD five-minute candles, one switched off after, and a
    user with the control permission (so the cards carry their forms)."""
    make_strategy("alpha", timeframe="5m", fast_period=3, slow_period=8, stop_loss_pct="0.003", take_profit_pct="0.004")
    make_strategy("beta", timeframe="5m", fast_period=5, slow_period=13, allow_short=True, stop_loss_pct="0.002")
    make_strategy("gamma", strategy_class="rsi_mean_reversion", timeframe="5m", rsi_period=7)
    take(load_candles("BTC/USD", "5m", limit=CANDLES))
    trader = make_user("trader", can_control=True, password=PASSWORD)
    set_active("beta", trader, False)
    return {s.strategy_id: s for s in models.Strategy.objects.all()}


def rows(page) -> list[str]:
    return page.locator("#portfolio tbody tr").evaluate_all("rows => rows.map(row => row.dataset.strategyId)")


def test_the_portfolio_table_sorts_by_a_clicked_heading_and_the_combined_chart_draws_every_point(
    daphne_url, browser, desk  # noqa: F811
):
    from playwright.sync_api import expect

    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    violations = csp_violations(page)
    log_in(page, daphne_url, "trader", PASSWORD)

    chart = page.locator("#combined-chart")
    expect(chart.locator("canvas").first).to_be_visible()
    expect(chart).to_have_attribute("data-points", "97")
    expect(chart).to_have_attribute("data-drawn-points", "97")
    assert rows(page) == ["alpha", "beta", "gamma"]
    page.evaluate("window.__not_reloaded = true")

    by_equity = sorted(desk, key=lambda sid: desk[sid].current_equity, reverse=True)
    page.click("#portfolio th[data-column=equity] a")
    expect(page.locator("#portfolio th[data-column=equity]")).to_have_attribute("aria-sort", "descending")
    assert rows(page) == by_equity
    page.click("#portfolio th[data-column=equity] a")
    expect(page.locator("#portfolio th[data-column=equity]")).to_have_attribute("aria-sort", "ascending")
    assert rows(page) == by_equity[::-1]

    assert page.evaluate("window.__not_reloaded") is True
    assert page.url.endswith("/?sort=equity&order=asc")
    expect(page.locator("#portfolio tfoot .totals")).to_contain_text("Total, 3 strategies")
    expect(page.locator("#card-alpha svg.sparkline polyline")).to_have_count(1)
    assert errors == [] and violations == []
    page.close()


def test_the_dashboard_fits_a_phone_390_pixels_wide(daphne_url, browser, desk):  # noqa: F811
    from playwright.sync_api import expect

    page = browser.new_page(
        viewport={"width": 390, "height": 844}, device_scale_factor=3, is_mobile=True, has_touch=True
    )
    log_in(page, daphne_url, "trader", PASSWORD)
    expect(page.locator("#combined-chart")).to_have_attribute("data-drawn-points", "97")
    expect(page.locator("#card-gamma")).to_be_visible()

    width = page.evaluate("document.scrollingElement.scrollWidth")

    assert width <= 390
    # The table scrolls inside its own box rather than widening the page.
    table = page.locator("#portfolio").evaluate("box => [box.scrollWidth, box.clientWidth]")
    assert table[1] <= 390
    card = page.locator("#card-alpha").bounding_box()
    assert card["x"] >= 0 and card["x"] + card["width"] <= 390
    page.close()


def test_the_table_and_the_chart_follow_a_candle_a_worker_processes_without_a_reload(
    daphne_url, wait_for_worker, browser, desk  # noqa: F811
):
    from playwright.sync_api import expect

    page = browser.new_page()
    log_in(page, daphne_url, "trader", PASSWORD)
    expect(page.locator("#combined-chart")).to_have_attribute("data-drawn-points", "97")
    before = sum(s.current_equity for s in desk.values())
    total = page.locator("#portfolio tfoot .totals td").nth(2)
    expect(total).to_have_text(floatformat(before, "2g"))
    last_point = "() => JSON.parse(document.getElementById('portfolio').dataset.chart).at(-1)[1]"
    page.evaluate("window.__not_reloaded = true")

    following = load_candles("BTC/USD", "5m", limit=CANDLES + 1)[-1]
    process_candle.delay(following.to_mapping())
    wait_for_worker(
        lambda: models.Strategy.objects.filter(last_candle_time=following.time).count() == 2,
        "alpha and gamma to take the candle",
    )

    after = sum(s.current_equity for s in models.Strategy.objects.all())
    assert after != before, "the candle must move the desk's equity to mean anything"
    expect(total).to_have_text(floatformat(after, "2g"))
    assert page.evaluate(last_point) == float(after)
    # The chart is drawn again from the new series: its last point is the desk's equity now.
    page.wait_for_function(f"document.getElementById('combined-chart').dataset.drawnLast === String({float(after)!r})")
    expect(page.locator("#combined-chart")).to_have_attribute("data-drawn-points", "97")
    assert page.evaluate("window.__not_reloaded") is True
    page.close()
