"""Candle processed to the browser's page (`python -m benchmarks.candle_to_dom`; `make bench` runs it last).

The real stack: 10 active strategies on BTC/USD 1m, Celery workers as the Procfile starts them, Daphne, and a
logged-in user's dashboard open in headless Chromium (Debian's). A feed sends the shipped candles at FEED_RATE a
second. Once a worker has stored a candle of the market it publishes the strategies' marks (`published_at`, its
wall clock); the page's socket receives them and desk.js moves each card's figures and its `data-last-candle`.
The page notes when each card's `data-last-candle` changes (a MutationObserver, `performance.timeOrigin +
performance.now()`, the same machine's clock); the benchmark's own socket, subscribed to the same strategies,
notes `published_at` for each strategy and candle. Latency: from `published_at` to the card's change, for every
strategy and candle after WARM_UP_CANDLES. Also reported: from the feed's send of the candle to the card's change.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time

from benchmarks import live_stack, report
from benchmarks.desk_load import caught_up, no_errors, running_feed
from benchmarks.live_path import add_strategies
from benchmarks.live_stack import BenchmarkFailed, running_workers, wait_until
from benchmarks.web_stack import PLAIN_HTTP, Browser, running_daphne

HEADING = "## Candle to browser"
MARKET = "BTC/USD"
STRATEGIES = 10
WORKERS = 2
FEED_RATE = 5  # candles per second
WARM_UP_CANDLES = 20
TIMED_CANDLES = 220
P95_TARGET_MS = 50.0
# Notes the time each card's figures move to a new candle (the attribute desk.js sets from the marks).
OBSERVER = """
window.__marked = [];
new MutationObserver(function (records) {
  const at = performance.timeOrigin + performance.now();
  records.forEach(function (record) {
    window.__marked.push([record.target.dataset.marksOf, record.target.dataset.lastCandle, at]);
  });
}).observe(document, {subtree: true, attributes: true, attributeFilter: ["data-last-candle"]});
"""


class MarksReader(threading.Thread):
    """The benchmark's own websocket, subscribed to the strategies: `published_at` of each strategy's marks by
    (strategy, candle time)."""

    def __init__(self, url: str, cookie: str, strategy_ids: list[str]) -> None:
        super().__init__(name="marks-reader", daemon=True)
        self.url, self.cookie, self.strategy_ids = url, cookie, strategy_ids
        self.published: dict[tuple[str, str], float] = {}
        self.subscribed = threading.Event()
        self.stopping = threading.Event()
        self.failure: BaseException | None = None

    def run(self) -> None:
        from websockets.sync.client import connect

        origin = self.url.replace("ws://", "http://").split("/ws/")[0]
        try:
            with connect(self.url, origin=origin, proxy=None, additional_headers={"Cookie": self.cookie}) as socket:
                socket.send(json.dumps({"action": "subscribe", "strategy_ids": self.strategy_ids}))
                while not self.stopping.is_set():
                    try:
                        message = json.loads(socket.recv(timeout=0.5))
                    except TimeoutError:
                        continue
                    if message["type"] == "subscribed":
                        self.subscribed.set()
                    elif message["type"] == "marks":
                        for sid, mark in message["marks"].items():
                            self.published[(sid, mark["last_candle_time"])] = message["published_at"]
        except BaseException as error:
            self.failure = error


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def measure() -> list[tuple[str, str]]:
    import secrets

    from django.contrib.auth.models import User
    from playwright.sync_api import sync_playwright

    from tradeweb.desk import models

    # Playwright's sync API keeps an event loop running in this thread; the ORM calls between its steps are still
    # plain synchronous calls, which Django must be told.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    add_strategies(MARKET, STRATEGIES)
    ids = sorted(models.Strategy.objects.values_list("strategy_id", flat=True))
    password = secrets.token_urlsafe(16)
    User.objects.create_user("watcher", password=password)
    with running_workers(WORKERS) as workers, running_daphne(PLAIN_HTTP) as daphne:
        browser = Browser(daphne.url)
        browser.login("watcher", password)
        reader = MarksReader(daphne.url.replace("http://", "ws://") + "/ws/events/", browser.cookie_header(), ids)
        reader.start()
        if not reader.subscribed.wait(10):
            raise BenchmarkFailed(f"the benchmark's websocket did not subscribe: {reader.failure}")
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path="/usr/bin/chromium")
            context = chromium.new_context()
            context.add_cookies([{"name": name, "value": value, "url": daphne.url}
                                 for name, value in browser.session.cookies.items()])
            page = context.new_page()
            page.add_init_script(OBSERVER)
            page.goto(daphne.url + "/")
            page.wait_for_selector('#ws-status[data-state="live"]', timeout=15_000)
            cards = page.locator("[data-marks-of]").count()
            if cards < STRATEGIES:
                raise BenchmarkFailed(f"the dashboard shows {cards} cards with marks, not {STRATEGIES}")
            sent: dict[str, float] = {}
            with running_feed(MARKET, FEED_RATE, WARM_UP_CANDLES + TIMED_CANDLES + 50) as feed:
                last = None
                while feed.sent < WARM_UP_CANDLES + TIMED_CANDLES:
                    if feed.last_time is not None and feed.last_time != last:
                        last = feed.last_time
                        sent[last.isoformat()] = time.time()
                    feed.check()
                    time.sleep(0.002)
                feed.stop()
                caught_up(feed, workers)
            try:
                wait_until(lambda: page.evaluate("window.__marked.length") >= STRATEGIES * TIMED_CANDLES * 0.9,
                           "the page to show the marks", 15, workers, interval=0.2)
            except BenchmarkFailed:
                raise BenchmarkFailed(
                    f"the page noted {page.evaluate('window.__marked.length')} card updates for {len(sent)} candles "
                    f"sent and {len(reader.published)} marks received by the benchmark's socket"
                ) from None
            time.sleep(0.5)
            marked = page.evaluate("window.__marked")
            chromium.close()
        reader.stopping.set()
        reader.join(5)
        no_errors(workers)
    times = sorted(sent)
    timed = set(times[WARM_UP_CANDLES:])
    latencies, end_to_end = [], []
    seen = set()
    for sid, candle, at in marked:
        key = (sid, candle)
        if candle not in timed or key in seen or key not in reader.published:
            continue
        seen.add(key)
        latencies.append(at - reader.published[key] * 1000)
        end_to_end.append(at - sent[candle] * 1000)
    if len(seen) < STRATEGIES * 200:
        raise BenchmarkFailed(f"only {len(seen)} card updates matched a timed candle's marks")
    shown = {candle for _, candle in seen}
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    met = "met" if p95 < P95_TARGET_MS else "not met"
    return [
        ("candles timed (after the warm-up), strategies", f"{len(timed)}, {STRATEGIES} ({len(shown)} candles shown)"),
        ("card updates timed (strategy x candle)", f"{len(seen):,}"),
        ("candle processed (marks published) to the card's DOM update",
         f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {max(latencies):.1f} ms; target p95 < {P95_TARGET_MS:.0f} ms: {met}"),
        ("candle sent by the feed to the card's DOM update",
         f"p50 {percentile(end_to_end, 50):.1f} ms, p95 {percentile(end_to_end, 95):.1f} ms, "
         f"max {max(end_to_end):.1f} ms"),
        ("feed rate achieved", f"{len(sent) / max(1e-9, max(sent.values()) - min(sent.values())):.1f} candles/s"),
    ]


def section(rows: list[tuple[str, str]], conditions: str) -> str:
    about = (
        "Written by `make bench` after the dashboard (alone: `python -m benchmarks.candle_to_dom`). "
        + " ".join(__doc__.split("\n\n")[1].split())
        .replace("FEED_RATE", str(FEED_RATE)).replace("WARM_UP_CANDLES", f"the first {WARM_UP_CANDLES} candles")
    )
    return report.section(HEADING, about, conditions, rows)


def main() -> None:
    live_stack.measure_and_write(HEADING, measure, section)


if __name__ == "__main__":
    try:
        main()
    except BenchmarkFailed as failed:
        sys.exit(f"candle to browser: {failed}")
