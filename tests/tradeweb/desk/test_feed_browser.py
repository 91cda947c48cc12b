"""The live event feed in a real headless Chromium against the real stack (Daphne, Redis channel layer,
PostgreSQL): its filter narrows the list and the live stream, and a page that missed events (its server went
away, or an event was lost in the channel layer) gets each of them once, in order, without a reload."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from django.db import transaction

from orchestrator.events import EventType
from tests.conftest import ROOT, free_port, stop, subprocess_env, wait_for_log
from tests.tradeweb.desk.test_browser import browser, candle, csp_violations, log_in  # noqa: F401 (a fixture and helpers)
from tradeweb.desk import live, models
from tradeweb.desk.control import set_active
from tradeweb.desk.strategy_events import append_event

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a-long-test-password"
# Records each reconnect delay the page announces (the status's title), over the debugging protocol, past the CSP.
RECORD_RETRIES = """
document.addEventListener("DOMContentLoaded", () => {
  window.__retries = [];
  const status = document.getElementById("ws-status");
  if (!status) return;
  new MutationObserver(() => {
    const match = /next try in ([\\d.]+) s/.exec(status.title);
    if (match) window.__retries.push(Number(match[1]));
  }).observe(status, { attributes: true, attributeFilter: ["title"] });
});
"""


def sequences(page, strategy_id: str) -> list[int]:
    """The sequences of the strategy's rows, top (newest) first."""
    return page.eval_on_selector_all(
        f'#event-list li[data-strategy-id="{strategy_id}"]', "rows => rows.map(row => Number(row.dataset.sequence))"
    )


def start_daphne(database_url: str, redis_url: str, port: int, log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tradeweb.server", "-b", "127.0.0.1", "-p", str(port), "tradeweb.asgi:application"],
            cwd=ROOT, env=subprocess_env(database_url, redis_url), stdout=out, stderr=subprocess.STDOUT,
        )
    wait_for_log(process, log, f"Listening on TCP address 127.0.0.1:{port}", timeout=60)
    return process


def test_the_filter_narrows_the_feed_and_its_live_stream_to_the_picked_strategies_and_kinds(
    daphne_url, redis_url, browser, make_strategy, make_user  # noqa: F811
):
    from playwright.sync_api import expect

    make_strategy("alpha")
    make_strategy("beta", strategy_class="rsi_mean_reversion", symbol="GBP/USD")
    trader = make_user("trader", can_control=True, password=PASSWORD)
    set_active("alpha", trader, False)
    set_active("alpha", trader, True)
    live.ingest_candle(candle(0, "100") | {"symbol": "GBP/USD", "high": "1"})
    live.ingest_candle(candle(0, "100") | {"symbol": "ETH/USD", "high": "1"})
    page = browser.new_page()
    violations = csp_violations(page)
    log_in(page, daphne_url, "trader", PASSWORD)
    expect(page.locator("#ws-status")).to_have_text("live")
    rows = page.locator("#event-list li.event")
    expect(rows).to_have_count(4)
    expect(rows.first).to_contain_text("Rejected a candle of ETH/USD 1m: ")
    expect(page.locator('#event-list li[data-strategy-id="alpha"]').first).to_contain_text("Activated by trader (was dormant)")

    # One strategy: its rows only, no system event, and only its events live.
    page.uncheck('#event-filter input[name="strategy_id"][value="beta"]')
    expect(rows).to_have_count(2)
    expect(page.locator('#event-list li[data-strategy-id="alpha"]')).to_have_count(2)
    set_active("beta", trader, False)
    set_active("alpha", trader, False)
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("Deactivated by trader, now dormant")
    assert sequences(page, "beta") == []

    # One kind: market data only, live too; control events (still arriving) are hidden.
    for kind in ("signal", "order", "position", "risk", "control", "error", "other"):
        page.uncheck(f'#event-filter input[name="kind"][value="{kind}"]')
    expect(page.locator("#event-list li.empty")).to_have_text("No events yet.")
    set_active("alpha", trader, True)
    live.ingest_candle(candle(1, "100") | {"close": "NaN"})
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-kind", "data")
    expect(rows.first).to_contain_text("Rejected a candle of BTC/USD: ")

    # Several strategies (all) and two kinds: the server's list, then both strategies live.
    page.click('#event-filter button[data-check-all="strategy_id"]')
    page.check('#event-filter input[name="kind"][value="control"]')
    expect(rows).to_have_count(8)
    set_active("beta", trader, True)
    expect(rows).to_have_count(9)
    expect(rows.first).to_contain_text("Activated by trader (was dormant)")
    assert sequences(page, "beta") == [3, 2, 1] and sequences(page, "alpha") == [5, 4, 3, 2, 1]
    assert violations == []
    page.close()


def test_the_filter_is_remembered_in_the_browser_so_a_reload_shows_the_same_feed(
    daphne_url, redis_url, browser, make_strategy, make_user  # noqa: F811
):
    from playwright.sync_api import expect

    make_strategy("alpha")
    make_strategy("beta", strategy_class="rsi_mean_reversion", symbol="GBP/USD")
    trader = make_user("trader", can_control=True, password=PASSWORD)
    set_active("alpha", trader, False)
    set_active("beta", trader, False)
    page = browser.new_page()
    log_in(page, daphne_url, "trader", PASSWORD)
    rows = page.locator("#event-list li.event")
    expect(rows).to_have_count(2)
    page.uncheck('#event-filter input[name="strategy_id"][value="beta"]')
    expect(rows).to_have_count(1)

    page.reload()

    expect(page.locator('#event-filter input[name="strategy_id"][value="beta"]')).not_to_be_checked()
    expect(page.locator('#event-filter input[name="strategy_id"][value="alpha"]')).to_be_checked()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-strategy-id", "alpha")
    expect(page.locator("#ws-status")).to_have_text("live")
    set_active("beta", trader, True)
    set_active("alpha", trader, True)
    expect(rows).to_have_count(2)
    assert page.locator('#event-list li[data-strategy-id="beta"]').count() == 0
    page.close()


def test_a_page_whose_server_went_away_reconnects_with_backoff_and_gets_what_it_missed_once(
    database_url, redis_url, browser, make_strategy, make_user, tmp_path  # noqa: F811
):
    """Daphne stops (every socket dropped) while the strategy's events go on; once it is back, the page has
    them all, each once and in order, unreloaded."""
    from playwright.sync_api import expect

    make_strategy("alpha")
    trader = make_user("trader", can_control=True, password=PASSWORD)
    port, log = free_port(), tmp_path / "daphne.log"
    daphne = start_daphne(database_url, redis_url, port, log)
    try:
        page = browser.new_page()
        page.add_init_script(RECORD_RETRIES)
        log_in(page, f"http://127.0.0.1:{port}", "trader", PASSWORD)
        expect(page.locator("#ws-status")).to_have_text("live")
        page.evaluate("window.__not_reloaded = true")
        set_active("alpha", trader, False)
        expect(page.locator('#event-list li[data-sequence="1"]')).to_have_count(1)

        stop(daphne)
        expect(page.locator("#ws-status")).to_have_text("reconnecting")
        for number in range(4):
            set_active("alpha", trader, number % 2 == 0)
        # Five tries while it is down (the page's own evaluation: the policy forbids wait_for_function's eval).
        for _ in range(150):
            if page.evaluate("window.__retries.length") >= 5:
                break
            page.wait_for_timeout(200)
        daphne = start_daphne(database_url, redis_url, port, log)

        expect(page.locator("#ws-status")).to_have_text("live", timeout=40_000)
        expect(page.locator('#event-list li[data-sequence="5"]')).to_have_count(1)
        set_active("alpha", trader, True)
        expect(page.locator('#event-list li[data-sequence="6"]')).to_have_count(1)
        assert sequences(page, "alpha") == [6, 5, 4, 3, 2, 1]
        assert page.evaluate("window.__not_reloaded") is True
        # Exponential, jittered: the n-th wait is between half and all of 0.5 s x 2^n.
        retries = page.evaluate("window.__retries")
        for n, seconds in enumerate(retries[:5]):
            assert 0.5 * 2**n / 2 - 0.1 <= seconds <= 0.5 * 2**n + 0.1, retries
    finally:
        stop(daphne)


def test_an_event_lost_in_the_channel_layer_is_replayed_when_the_next_one_shows_the_gap(
    daphne_url, browser, make_strategy, make_user  # noqa: F811
):
    """Two events stored but never published (as in a Redis outage): the next live one jumps two numbers, so
    the page asks for them and shows all three, each once and in order."""
    from playwright.sync_api import expect

    make_strategy("alpha")
    trader = make_user("trader", can_control=True, password=PASSWORD)
    page = browser.new_page()
    log_in(page, daphne_url, "trader", PASSWORD)
    expect(page.locator("#ws-status")).to_have_text("live")
    page.evaluate("window.__not_reloaded = true")

    with transaction.atomic():
        strategy = models.Strategy.objects.select_for_update().get(strategy_id="alpha")
        now = datetime.now(timezone.utc)
        append_event(strategy, EventType.DATA_GAP, now, expected_after=now.isoformat(), waiting_from=now.isoformat(), waiting=2)
        append_event(strategy, EventType.STRATEGY_ERROR, now, error="ConnectionError: the feed went away")
        strategy.save(update_fields=["last_sequence"])
    set_active("alpha", trader, False)

    expect(page.locator('#event-list li[data-strategy-id="alpha"]')).to_have_count(3)
    assert sequences(page, "alpha") == [3, 2, 1]
    expect(page.locator('#event-list li[data-sequence="2"]')).to_contain_text("Stopped on an error: ConnectionError")
    page.wait_for_timeout(300)
    assert sequences(page, "alpha") == [3, 2, 1]
    assert page.evaluate("window.__not_reloaded") is True
    page.close()
