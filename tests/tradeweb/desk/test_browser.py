"""The desk in a real headless Chromium against the real stack (Daphne, Redis channel layer, database)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from orchestrator.candles import Candle
from tests.conftest import free_port
from tradeweb.desk import models
from tradeweb.desk.tasks import process_candle

pytestmark = pytest.mark.django_db(transaction=True)

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def browser(chromium_path):
    """Chromium for this module only: Playwright's loop must be gone before the async tests run."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread; the ORM calls the test
    # makes between browser steps are still plain synchronous calls, which Django must be told.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


def minute(n: int) -> datetime:
    return datetime(2022, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=n)


def candle(n: int, close: str) -> dict:
    price = Decimal(close)
    return Candle("BTC/USD", "1m", minute(n), price, price + 1, price - 1, price, Decimal(1)).to_mapping()


def log_in(page, base_url: str, username: str, password: str) -> None:
    page.goto(base_url + "/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def test_trader_sees_a_candle_event_arrive_live_and_switches_the_strategy_off(
    daphne_url, wait_for_worker, browser, make_strategy, make_user
):
    from playwright.sync_api import expect

    make_strategy("alpha", fast_period=2, slow_period=3)
    make_strategy("beta", strategy_class="rsi_mean_reversion", symbol="GBP/USD")
    make_user("trader", can_control=True, password="a-long-test-password")
    # Falling closes: SMA(2) stays below SMA(3), no signal yet.
    for n, close in enumerate(["100", "99", "98", "97"]):
        process_candle.delay(candle(n, close))
    wait_for_worker(lambda: models.Strategy.objects.get(strategy_id="alpha").last_candle_time == minute(3), "4 candles")

    page = browser.new_page()
    log_in(page, daphne_url, "trader", "a-long-test-password")
    expect(page.locator("#card-alpha .status")).to_have_text("Active")
    expect(page.locator("#card-beta .status")).to_have_text("Active")
    expect(page.locator("#ws-status")).to_have_text("live")
    expect(page.locator("#event-list li.event")).to_have_count(0)

    # A jump: SMA(2) crosses above SMA(3), the strategy signals and orders; the page must show it unreloaded.
    page.evaluate("window.__not_reloaded = true")
    process_candle.delay(candle(4, "105"))

    expect(page.locator("#event-list li.event-signal_generated")).to_have_count(1)
    expect(page.locator("#event-list li.event-order_created")).to_have_count(1)
    expect(page.locator("#card-alpha")).to_contain_text("2022-01-01 00:04")
    assert page.evaluate("window.__not_reloaded") is True

    page.locator("#card-alpha button.control").click()

    expect(page.locator("#card-alpha .status")).to_have_text("Dormant")
    expect(page.locator("#card-alpha button.control")).to_have_text("Activate")
    expect(page.locator("#event-list li.event-strategy_deactivated")).to_have_count(1)
    assert models.Strategy.objects.get(strategy_id="alpha").status == "dormant"
    action = models.ControlAction.objects.get(strategy_id="alpha")
    assert (action.user.username, action.action) == ("trader", "deactivate")
    assert page.evaluate("window.__not_reloaded") is True


def test_a_quiet_candle_moves_the_cards_figures_by_its_marks_without_a_request(
    daphne_url, wait_for_worker, browser, make_strategy, make_user
):
    from playwright.sync_api import expect

    make_strategy("alpha", fast_period=2, slow_period=3)
    make_user("viewer", password="a-long-test-password")
    for n, close in enumerate(["100", "99", "98"]):
        process_candle.delay(candle(n, close))
    wait_for_worker(lambda: models.Strategy.objects.get(strategy_id="alpha").last_candle_time == minute(2), "3 candles")
    page = browser.new_page()
    log_in(page, daphne_url, "viewer", "a-long-test-password")
    expect(page.locator("#ws-status")).to_have_text("live")
    page.evaluate("document.getElementById('card-alpha').__first = true")
    requests = []
    page.on("request", lambda request: requests.append(request.url))

    # Falling closes: no signal, no event; only the marks tell the page.
    process_candle.delay(candle(3, "97"))

    card = page.locator("#card-alpha")
    expect(card.locator('[data-mark="last_candle_time"]')).to_have_text("2022-01-01 00:03")
    expect(card).to_have_attribute("data-last-candle", minute(3).isoformat())
    row = models.Strategy.objects.get(strategy_id="alpha")
    assert card.locator('[data-mark="equity"]').inner_text() == f"{row.current_equity:,.2f}"
    assert models.Event.objects.filter(strategy_id="alpha").count() == 0
    assert page.evaluate("document.getElementById('card-alpha').__first") is True, "the card was not swapped"
    assert requests == [], "no request: the figures came over the websocket"


def test_user_without_control_permission_sees_no_switch(daphne_url, browser, make_strategy, make_user):
    from playwright.sync_api import expect

    make_strategy("alpha")
    make_user("viewer", can_control=False, password="a-long-test-password")

    page = browser.new_page()
    log_in(page, daphne_url, "viewer", "a-long-test-password")

    expect(page.locator("#card-alpha .status")).to_have_text("Active")
    expect(page.locator("#card-alpha button.control")).to_have_count(0)

    # Posting anyway, from the page, with its CSRF token as htmx would send it: refused.
    status, body = page.evaluate("""async () => {
        const token = JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"];
        const answer = await fetch("/strategies/alpha/deactivate/", {
            method: "POST", headers: {"X-CSRFToken": token, "HX-Request": "true"}, credentials: "same-origin"});
        return [answer.status, await answer.text()];
    }""")
    assert status == 403 and "CSRF" not in body, "refused for the permission, not for the token"
    assert models.Strategy.objects.get(strategy_id="alpha").status == "active"
    assert not models.ControlAction.objects.filter(strategy_id="alpha").exists()


def test_feed_filter_shows_and_streams_only_the_chosen_strategy(
    daphne_url, wait_for_worker, browser, make_strategy, make_user
):
    from playwright.sync_api import expect

    make_strategy("alpha")
    make_strategy("beta", strategy_class="rsi_mean_reversion", symbol="GBP/USD")
    make_user("trader", password="a-long-test-password")
    bad_btc = candle(0, "100") | {"close": "NaN"}
    bad_gbp = candle(0, "100") | {"symbol": "GBP/USD", "high": "1"}
    for bad in (bad_btc, bad_gbp):
        process_candle.delay(bad)
    wait_for_worker(lambda: models.Event.objects.filter(type="DATA_REJECTED").count() == 2, "two rejections")

    page = browser.new_page()
    log_in(page, daphne_url, "trader", "a-long-test-password")
    expect(page.locator("#ws-status")).to_have_text("live")
    expect(page.locator("#event-list li.event")).to_have_count(2)

    page.uncheck('#event-filter input[name="strategy_id"][value="alpha"]')
    expect(page.locator("#event-list li.event")).to_have_count(1)
    expect(page.locator('#event-list li[data-strategy-id="beta"]')).to_have_count(1)

    process_candle.delay(bad_btc | {"time": minute(1).isoformat()})
    process_candle.delay(bad_gbp | {"time": minute(1).isoformat()})

    expect(page.locator('#event-list li[data-strategy-id="beta"]')).to_have_count(2)
    wait_for_worker(lambda: models.Event.objects.filter(type="DATA_REJECTED").count() == 4, "four rejections")
    expect(page.locator('#event-list li[data-strategy-id="alpha"]')).to_have_count(0)


def csp_violations(page) -> list[str]:
    """Collect the Content-Security-Policy violations Chromium reports on a page."""
    seen: list[str] = []
    page.on("console", lambda message: seen.append(message.text) if "Content Security Policy" in message.text else None)
    return seen


def test_a_crafted_event_link_runs_no_script_for_a_user_with_control(daphne_url, browser, make_strategy, make_user):
    from urllib.parse import quote

    from playwright.sync_api import expect

    make_strategy("alpha")
    make_user("trader", can_control=True, password="a-long-test-password")
    page = browser.new_page()
    log_in(page, daphne_url, "trader", "a-long-test-password")
    expect(page.locator("#card-alpha .status")).to_have_text("Active")
    # The probe's payload: switch a strategy off in the victim's name, and leave a mark.
    payload = (
        "<script>window.__xss = 1; fetch('/strategies/alpha/deactivate/', {method: 'POST', "
        "headers: {'X-CSRFToken': document.cookie.split('csrftoken=')[1]}})</script>"
        "<img src=x onerror=\"window.__xss = 2\">"
    )

    response = page.goto(f"{daphne_url}/events/?strategy_id={quote(payload)}")
    page.wait_for_timeout(500)

    assert response.status == 404
    assert page.evaluate("window.__xss") is None
    assert page.locator("script, img").count() == 0
    expect(page.locator("#event-list")).to_contain_text("No such strategy.")
    assert models.Strategy.objects.get(strategy_id="alpha").status == "active"
    assert not models.ControlAction.objects.filter(strategy_id="alpha").exists()


def test_the_policy_blocks_injected_inline_script_while_the_desk_itself_runs_clean(
    daphne_url, browser, make_strategy, make_user
):
    from playwright.sync_api import expect

    make_strategy("alpha")
    make_user("trader", can_control=True, password="a-long-test-password")
    page = browser.new_page()
    violations = csp_violations(page)
    log_in(page, daphne_url, "trader", "a-long-test-password")
    expect(page.locator("#ws-status")).to_have_text("live")
    page.goto(f"{daphne_url}/strategies/alpha/")
    expect(page.locator("#ws-status")).to_have_text("live")
    # The desk's own pages (htmx, the websocket, the card controls) work under the policy.
    assert violations == []

    # Whatever markup might one day slip through, an inline script does not run.
    page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.__ran = 1';"
        " document.body.appendChild(s); }"
    )
    page.wait_for_timeout(200)

    assert page.evaluate("window.__ran") is None
    assert any("script-src" in v for v in violations)


def test_the_admin_strategy_form_works_under_the_policy(daphne_url, browser, make_strategy, django_user_model):
    from playwright.sync_api import expect

    strategy = make_strategy("alpha")
    django_user_model.objects.create_superuser("root", "root@example.com", "a-long-test-password")
    page = browser.new_page()
    violations = csp_violations(page)
    page.goto(f"{daphne_url}/admin/login/")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", "a-long-test-password")
    page.click("input[type=submit]")

    page.goto(f"{daphne_url}/admin/desk/strategy/{strategy.pk}/change/")

    expect(page.locator("input[name=name]")).to_have_value("Alpha")
    assert violations == []


def publish(redis_url: str, sequence: int) -> None:
    """An event of strategy alpha into the channel layer on `redis_url`, as a worker publishes one."""
    from django.conf import settings
    from django.utils.module_loading import import_string

    from tests.conftest import TEST_PREFIX
    from tradeweb.desk.publishing import strategy_group

    event = {
        "type": "SIGNAL_GENERATED", "strategy_id": "alpha", "symbol": "BTC/USD", "time": minute(sequence).isoformat(),
        "sequence": sequence, "payload": {"action": "enter_long"},
    }
    layer = import_string(settings.CHANNEL_LAYERS["default"]["BACKEND"])(hosts=[{"address": redis_url}], prefix=TEST_PREFIX)

    async def send() -> None:
        await layer.group_send(strategy_group("alpha"), {"type": "desk.event", "event": event})

    # Playwright's loop runs in this thread: the channel layer gets a thread and loop of its own.
    thread = threading.Thread(target=asyncio.run, args=(send(),))
    thread.start()
    thread.join(10)


def test_an_open_page_gets_live_events_again_after_redis_restarts_empty(
    database_url, browser, make_strategy, make_user, tmp_path
):
    """Redis restarted without its data (every subscription gone): the live feed comes back by itself, the
    page showing events published after the restart without being reloaded."""
    from playwright.sync_api import expect

    from tests.conftest import ROOT, stop, subprocess_env, wait_for_log
    from tests.worker_processes import RedisServer

    make_strategy("alpha")
    make_user("trader", password="a-long-test-password")
    server = RedisServer(tmp_path)
    server.start()
    port = free_port()
    log = tmp_path / "daphne.log"
    with log.open("wb") as out:
        daphne = subprocess.Popen(
            [sys.executable, "-m", "tradeweb.server", "-b", "127.0.0.1", "-p", str(port), "tradeweb.asgi:application"],
            cwd=ROOT, env=subprocess_env(database_url, server.url), stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        wait_for_log(daphne, log, "Listening on", timeout=60)
        page = browser.new_page()
        log_in(page, f"http://127.0.0.1:{port}", "trader", "a-long-test-password")
        expect(page.locator("#ws-status")).to_have_text("live")
        page.evaluate("window.__not_reloaded = true")
        publish(server.url, 1)
        expect(page.locator('#event-list li[data-sequence="1"]')).to_have_count(1)

        server.restart(down_for=1.0)

        # Events published while the server's subscriptions are being restored are not shown live (the
        # stored events hold them); one a second, until one arrives.
        arrived = page.locator("#event-list li[data-sequence]:not([data-sequence='1'])")
        for sequence in range(2, 17):
            publish(server.url, sequence)
            if arrived.count():
                break
            page.wait_for_timeout(1000)
        expect(arrived.first).to_be_visible(timeout=2000)
        expect(page.locator("#ws-status")).to_have_text("live")
        assert page.evaluate("window.__not_reloaded") is True
    finally:
        stop(daphne)
        server.kill()


def test_trader_switches_an_exclusive_slot_with_one_confirmed_click(
    daphne_url, wait_for_worker, browser, make_strategy, make_user
):
    from playwright.sync_api import expect

    make_strategy("alpha")
    make_strategy("beta", status="dormant")
    models.Slot.objects.filter(symbol="BTC/USD").update(exclusive=True)
    make_user("trader", can_control=True, password="a-long-test-password")
    page = browser.new_page()
    log_in(page, daphne_url, "trader", "a-long-test-password")
    expect(page.locator("#ws-status")).to_have_text("live")
    asked = []
    page.on("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))

    page.locator("#card-beta button.switch").click()

    expect(page.locator("#card-beta .status")).to_have_text("Active")
    # The other card learns it was switched out from its event on the websocket, unreloaded.
    expect(page.locator("#card-alpha .status")).to_have_text("Dormant")
    expect(page.locator("#card-alpha button.switch")).to_have_text("Switch to this")
    assert asked == ["Switch paper · BTC/USD to Beta? The active strategy of this slot stops taking entries."]
    assert dict(models.Strategy.objects.values_list("strategy_id", "status")) == {"alpha": "dormant", "beta": "active"}


def test_a_backtest_results_page_draws_its_equity_and_drawdown_charts(daphne_url, browser, make_user):
    from playwright.sync_api import expect

    from orchestrator.backtest import Allocation, BacktestSpec, run_backtest
    from orchestrator.datasets import load_candles
    from strategies import build_strategy
    from tradeweb.desk.backtest_results import store_run

    allocation = Allocation("sma", build_strategy("sma_crossover", {}), "BTC/USD", "1h", Decimal(1))
    run = store_run(run_backtest(BacktestSpec([allocation], Decimal(10_000)), {("BTC/USD", "1h"): load_candles("BTC/USD", "1h")}))
    make_user("quant", password="a-long-test-password")

    page = browser.new_page()
    log_in(page, daphne_url, "quant", "a-long-test-password")
    page.goto(f"{daphne_url}/backtests/{run.pk}/")

    expect(page.locator("body")).to_have_attribute("data-charts-drawn", "true")
    expect(page.locator("#equity-chart canvas").first).to_be_visible()
    expect(page.locator("#drawdown-chart canvas").first).to_be_visible()
    assert page.locator("table.trades tbody tr").count() == len(run.strategies.get().result["trades"]) >= 5
    page.close()


# Records every progress bar the page shows (on load and each live swap) in sessionStorage, which outlives the
# page's navigation to the results. Playwright adds it over the debugging protocol, past the page's CSP.
RECORD_BARS = """
document.addEventListener("DOMContentLoaded", () => {
  const record = () => {
    const bar = document.querySelector("#backtest-progress progress");
    if (!bar) return;
    const seen = JSON.parse(sessionStorage.getItem("bars") || "[]");
    const shown = [bar.getAttribute("value"), bar.getAttribute("max"), bar.closest("[data-status]").dataset.status];
    if (JSON.stringify(seen[seen.length - 1]) !== JSON.stringify(shown)) seen.push(shown);
    sessionStorage.setItem("bars", JSON.stringify(seen));
  };
  new MutationObserver(record).observe(document.body, { childList: true, subtree: true });
  record();
});
"""


def test_trader_starts_a_backtest_watches_its_bar_and_lands_on_its_results(
    database_url, redis_url, browser, make_strategy, make_user, tmp_path
):
    """The form on a Daphne whose backtests go to a queue of their own: the run page is open and following
    before a worker for that queue starts, so the whole run is watched live."""
    import json
    import re
    import uuid

    from playwright.sync_api import expect

    from tests.conftest import ROOT, stop, subprocess_env, wait_for_log
    from tests.worker_processes import Worker

    make_strategy("btc-sma", fast_period=10, slow_period=30)
    make_strategy("btc-rsi", strategy_class="rsi_mean_reversion", rsi_period=7)
    make_user("trader", can_control=True, password="a-long-test-password")
    queue = f"backtests-{uuid.uuid4().hex[:8]}"
    env = subprocess_env(database_url, redis_url) | {"BACKTEST_QUEUE": queue}
    port = free_port()
    log = tmp_path / "daphne.log"
    with log.open("wb") as out:
        daphne = subprocess.Popen(
            [sys.executable, "-m", "tradeweb.server", "-b", "127.0.0.1", "-p", str(port), "tradeweb.asgi:application"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    worker = Worker("backtests", queue, env, tmp_path)
    try:
        wait_for_log(daphne, log, "Listening on", timeout=60)
        base = f"http://127.0.0.1:{port}"
        page = browser.new_page()
        violations: list[str] = []
        page.on("console", lambda message: violations.append(message.location["url"])
                if "Content Security Policy" in message.text else None)
        page.add_init_script(RECORD_BARS)
        pages_asked: list[str] = []
        page.on("request", lambda request: pages_asked.append(request.url) if request.resource_type != "websocket" else None)
        log_in(page, base, "trader", "a-long-test-password")
        expect(page.locator(".topbar .user")).to_have_text("trader")
        page.goto(f"{base}/backtests/")

        # A run cancelled while it waits for a worker.
        page.click("#new-backtest")
        expect(page.locator("input[name=start]")).to_have_value("2021-12-31T23:01")
        page.fill('input[name="weight_btc-sma"]', "1")
        page.fill("input[name=capital]", "0")
        page.click("form.backtest-form button[type=submit]")
        expect(page.locator("#field-capital .error")).to_have_text("must be above 0, got 0")
        page.fill("input[name=capital]", "5000")
        page.click("form.backtest-form button[type=submit]")
        expect(page.locator("#backtest-progress .status")).to_have_text("Queued")
        page.locator("#backtest-progress button.cancel").click()
        expect(page.locator("#backtest-progress .status")).to_have_text("Cancelled")
        page.goto(f"{base}/backtests/")
        expect(page.locator("tr[data-status=cancelled] .status")).to_have_text("Cancelled")

        # A run watched from the start to its results.
        page.click("#new-backtest")
        page.fill('input[name="weight_btc-sma"]', "0.5")
        page.fill('input[name="weight_btc-rsi"]', "0.4")
        page.fill("input[name=start]", "2022-01-03T00:00")
        page.fill("input[name=end]", "2022-01-05T00:00")
        page.fill("input[name=capital]", "25000")
        page.evaluate("sessionStorage.removeItem('bars')")
        page.click("form.backtest-form button[type=submit]")
        expect(page.locator("#backtest-progress .status")).to_have_text("Queued")
        expect(page.locator("#ws-status")).to_have_text("live")
        progress_page = page.url
        asked_before = len(pages_asked)
        worker.launch()
        worker.wait_ready()

        page.wait_for_url(re.compile(r"/backtests/\d+/$"), timeout=60_000)

        expect(page.locator("body")).to_have_attribute("data-charts-drawn", "true")
        expect(page.locator("table.compared")).to_contain_text("btc-rsi")
        run = models.BacktestRun.objects.get(status="done")
        assert page.url == f"{base}/backtests/{run.pk}/" and progress_page == f"{base}/backtests/{run.pk}/progress/"
        assert (run.candles_done, run.candles_total, run.created_by.username) == (2880, 2880, "trader")
        bars = json.loads(page.evaluate("sessionStorage.getItem('bars')"))
        assert bars[0] == [None, "1", "queued"] and bars[-1] == ["2880", "2880", "done"]
        shown = [int(value) for value, _, _ in bars if value is not None]
        assert any(status == "running" and value and 0 < int(value) < 2880 for value, _, status in bars), bars
        assert shown == sorted(shown), bars
        # Live over the websocket: no page was asked for while the run went on but the results.
        assert [url for url in pages_asked[asked_before:] if "/static/" not in url] == [page.url]
        # The form and the run page run clean under the policy (the vendored chart library of the results page
        # sets an inline style, which the policy blocks, and draws all the same).
        assert [url for url in violations if not url.endswith("lightweight-charts.standalone.production.js")] == []
    finally:
        worker.stop()
        stop(daphne)
