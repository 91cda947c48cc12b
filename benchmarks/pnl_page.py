"""The P&L page of one strategy with a long history (`python -m benchmarks.pnl_page`; `make bench` runs it last):
at least 10,000 closed trades and 100,000 events, made by the engine on real candles and stored as the workers
store them, then the page's server time, p50 and p95, for the choices a user makes on it.

The history: an SMA crossover 2/5 with stops, targets and shorts, run by `StrategyOrchestrator` on the shipped
BTC/USD one-minute month, repeated with its times moved on (as `benchmarks.core` builds its year), until it has
made both; its results written in batches by the workers' `LedgerBatch`, the candles as the feed stores them
(chained), the strategy's row moved to where the engine left it. Server time: the request through Django's whole
stack (middleware, session, view, template) in this process, with Django's test client, DEBUG off; no network.
Timed four ways: the first request of a web process that has derived nothing yet, with no checkpoint in the
database (the desk's first: it replays the whole history, and asks a worker to store its checkpoint), and with the
checkpoint at the strategy's last candle and 999 candles behind it (the most a checkpoint lags:
`tradeweb.desk.history_checkpoints`); each choice again and again while the strategy stands still (the derived
history is kept, `tradeweb.desk.history_cache`, and the period's figures are worked out once per candle); and the
first request after each of some new candles that the live path (`ingest_candle`) takes, as a page refreshing on
the strategy's events asks. The first of those ways is timed in new Python processes as well (each loads the ASGI
application as Daphne does at its start, logs in, and times its very first request: compiling the page's templates
included). What the worker does is timed too (here, in this process): storing the checkpoint with
none stored yet (deriving the whole history) and with one 1,000 candles behind. The event feed, filtered to a kind
of event the history has none of, is timed on the same database too. The database has its planner's statistics, as
autovacuum keeps them. `--profile` prints where the time of the default page goes instead, in a fresh web process
with the checkpoint 999 candles behind (`--profile warm`: the default page again and again).
"""

from __future__ import annotations

import cProfile
import os
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from decimal import Decimal

from benchmarks import live_stack, report
from benchmarks.live_stack import BenchmarkFailed

HEADING = "## P&L page"

STRATEGY_ID = "bench-pnl"
SYMBOL, TIMEFRAME = "BTC/USD", "1m"
CONFIG = {"fast_period": 2, "slow_period": 5, "stop_loss_pct": "0.002", "take_profit_pct": "0.003", "allow_short": True}
CAPITAL = Decimal(10_000)
TRADES, EVENTS = 10_000, 100_000
BATCH = 2_000  # candle results per stored batch
CONFIG_VERSIONS, CONTROL_ACTIONS = 12, 40
WARM_UP_REQUESTS, REQUESTS = 3, 30
COLD_REQUESTS = 5  # each in a process that has derived nothing yet
NEW_CANDLES = 20  # each taken by the live path (`ingest_candle`) before one timed request
P95_TARGET_MS = 200.0
FEED_KIND = "control"  # the event feed's filter, on the same events: a kind the history has none of
# What a user asks of the page: the default, a shorter period, another sort and a far page, the biggest page, the
# sort that works out every trade's exit reason.
CHOICES = {
    "default (all, day, newest trades)": {},
    "period 7d": {"period": "7d"},
    "sorted by P&L, page 200": {"sort": "pnl", "order": "asc", "page": "200"},
    "200 trades a page, by week": {"per_page": "200", "breakdown": "week"},
    "sorted by exit reason": {"sort": "exit_reason"},
}


def history():
    """The engine's run of CONFIG on the month repeated, until it made TRADES closed trades and EVENTS events:
    (the candles it took, its results, the orchestrator after them, the NEW_CANDLES candles that come next)."""
    from orchestrator.datasets import load_candles
    from orchestrator.engine import StrategyOrchestrator
    from orchestrator.ports import MemoryPublisher, MemoryStore
    from strategies import build_strategy

    month = load_candles(SYMBOL, TIMEFRAME)
    span = month[-1].time - month[0].time + (month[1].time - month[0].time)
    store, publisher = MemoryStore(), MemoryPublisher()
    runner = StrategyOrchestrator(STRATEGY_ID, build_strategy("sma_crossover", CONFIG), SYMBOL, TIMEFRAME, CAPITAL,
                                  store, publisher)

    def repeated():
        shift = span * 0
        while True:
            yield from (replace(candle, time=candle.time + shift) for candle in month)
            shift += span

    candles = repeated()
    taken, closed = [], 0
    while closed < TRADES or len(publisher.events) < EVENTS:
        candle = next(candles)
        result = runner.process(candle)
        taken.append(candle)
        if result is not None:
            closed += sum(1 for p in result.positions if p.closed_at is not None)
    return taken, store.results, runner, [next(candles) for _ in range(NEW_CANDLES)]


def seed() -> tuple[dict[str, int], list]:
    """The strategy, its market's candles and its whole history on the benchmark's (empty) database; returns
    the counts stored and the candles that come next."""
    from django.contrib.auth.models import User
    from django.db import connection, transaction

    from orchestrator.config import config_to_json
    from orchestrator.events import decimal_text
    from strategies import parse_strategy_config
    from tradeweb.desk import models
    from tradeweb.desk.storage import LedgerBatch

    candles, results, runner, upcoming = history()
    strategy = models.Strategy.objects.create(
        strategy_id=STRATEGY_ID, name="Bench P&L", strategy_class="sma_crossover", symbol=SYMBOL,
        timeframe=TIMEFRAME, status=models.Strategy.Status.ACTIVE, capital=CAPITAL,
        config=config_to_json(parse_strategy_config("sma_crossover", CONFIG)),
    )
    previous = None
    rows = []
    for candle in candles:
        rows.append(models.Candle(
            symbol=SYMBOL, timeframe=TIMEFRAME, time=candle.time, previous_time=previous, open=candle.open,
            high=candle.high, low=candle.low, close=candle.close, volume=candle.volume,
        ))
        previous = candle.time
    models.Candle.objects.bulk_create(rows, batch_size=5_000)
    for start in range(0, len(results), BATCH):
        with transaction.atomic():
            batch = LedgerBatch()
            batch.results.extend(results[start:start + BATCH])
            batch.write()
    # Where the engine left it, as a worker writes a strategy's head after its last candle.
    models.Strategy.objects.filter(pk=strategy.pk).update(**runner.head(), snapshot=runner.snapshot())
    user = User.objects.create_user("bench-viewer", password="bench-password-not-secret")
    for version in range(2, CONFIG_VERSIONS + 1):
        saved = strategy.versioned_settings() | {"capital": decimal_text(CAPITAL + version)}
        models.ConfigVersion.objects.create(strategy=strategy, version=version, saved=saved, user=user)
    models.ControlAction.objects.bulk_create([
        models.ControlAction(strategy=strategy, user=user, action="deactivate" if n % 2 else "activate")
        for n in range(CONTROL_ACTIONS)
    ])
    # The planner's statistics, as autovacuum keeps them on a database in use (a fresh seed has none, and
    # estimates one row where there are tens of thousands).
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {
        "candles": len(candles),
        "closed trades": models.Position.objects.filter(strategy=strategy, closed_at__isnull=False).count(),
        "fills": models.Fill.objects.filter(strategy=strategy).count(),
        "orders": models.Order.objects.filter(strategy=strategy).count(),
        "events": models.Event.objects.filter(strategy_id=STRATEGY_ID).count(),
        "journal entries": models.JournalEntry.objects.filter(strategy=strategy).count(),
    }, upcoming


def client():
    """Django's test client, logged in as the benchmark's viewer, asking over HTTPS as production is served."""
    from django.contrib.auth.models import User
    from django.test import Client

    browser = Client(HTTP_HOST="127.0.0.1")
    browser.force_login(User.objects.get(username="bench-viewer"))
    return browser


def server_times(browser, query: dict[str, str], requests: int = REQUESTS, warm_up: int = WARM_UP_REQUESTS,
                 url: str | None = None) -> list[float]:
    """Milliseconds for each of `requests` requests of the page (the P&L page without `url`) with `query` (after
    `warm_up` untimed)."""
    from django.urls import reverse

    url = url or reverse("strategy_pnl", args=[STRATEGY_ID])
    times = []
    for n in range(warm_up + requests):
        started = time.perf_counter()
        response = browser.get(url, query, secure=True)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise BenchmarkFailed(f"{url} answered {response.status_code} to {query}")
        if n >= warm_up:
            times.append(elapsed)
    return times


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of `values` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def timed(browser, query: dict[str, str]) -> float:
    """Milliseconds for one request of the page."""
    return server_times(browser, query, requests=1, warm_up=0)[0]


def cold_figures(times: list[float]) -> str:
    """A table value: p50 and worst of `times` (each once in a fresh state)."""
    return f"p50 {statistics.median(times):.0f} ms, worst {max(times):.0f} ms"


def checkpoint_behind(candles: int) -> None:
    """Store the strategy's checkpoint as a worker stored it `candles` candles before the strategy's last."""
    from tradeweb.desk import history_checkpoints, models
    from tradeweb.desk.equity_curve import FillReplay
    from tradeweb.desk.strategy_history import StrategyHistory, history_identity

    strategy = models.Strategy.objects.get(strategy_id=STRATEGY_ID)
    strategy.last_candle_time = (
        models.Candle.objects.filter(symbol=SYMBOL, timeframe=TIMEFRAME, time__lte=strategy.last_candle_time)
        .order_by("-time").values_list("time", flat=True)[candles]
    )
    history = StrategyHistory(history_identity(strategy), FillReplay(STRATEGY_ID, SYMBOL, strategy.capital))
    history.extend(strategy)
    models.HistoryCheckpoint.objects.filter(strategy=strategy).delete()
    history_checkpoints.store(history, strategy)


def figures(name: str, times: list[float]) -> tuple[str, str]:
    """A table row: p50 and p95 of `times` against the target."""
    p95 = percentile(times, 0.95)
    verdict = "met" if p95 < P95_TARGET_MS else "missed"
    return (f"{name}: server time p50 / p95", f"{statistics.median(times):.1f} ms / {p95:.1f} ms "
            f"(target under {P95_TARGET_MS:.0f} ms: {verdict})")


def measure() -> list[tuple[str, str]]:
    """Seed, then time the page: in a process that derived nothing yet, for each choice, and after new candles."""
    from django.urls import reverse

    from tradeweb.desk import history_checkpoints, models, orchestrators
    from tradeweb.desk.history_cache import histories
    from tradeweb.desk.history_checkpoints import CHECKPOINT_EVERY
    from tradeweb.desk.live import ingest_candle

    started = time.perf_counter()
    counts, upcoming = seed()
    rows = [(f"stored: {name}", f"{count:,}") for name, count in counts.items()]
    rows.append(("seeding (engine run and batched writes)", f"{time.perf_counter() - started:.0f} s"))
    browser = client()
    first = []
    for _ in range(COLD_REQUESTS):
        models.HistoryCheckpoint.objects.all().delete()
        histories.forget()
        first.append(timed(browser, {}))
    rows.append(((f"the desk's first request (no checkpoint: derives the whole history, asks a worker to store it; "
                  f"{COLD_REQUESTS} times)"), cold_figures(first)))
    for behind, name in ((None, "none stored: derives the whole history"),
                         (CHECKPOINT_EVERY, f"from one {CHECKPOINT_EVERY:,} candles behind")):
        stored = []
        for _ in range(COLD_REQUESTS):
            if behind is None:
                models.HistoryCheckpoint.objects.all().delete()
            else:
                checkpoint_behind(behind)
            started = time.perf_counter()
            if not history_checkpoints.refresh(STRATEGY_ID):
                raise BenchmarkFailed("the worker's refresh stored no checkpoint")
            stored.append((time.perf_counter() - started) * 1000)
        rows.append((f"a worker storing the checkpoint, {name} ({COLD_REQUESTS} times)", cold_figures(stored)))
    size = len(models.HistoryCheckpoint.objects.get(strategy__strategy_id=STRATEGY_ID).data)
    rows.append(("stored: the checkpoint (the history packed)", f"{size / 1e6:.2f} MB"))
    for behind, name in ((0, "at its last candle"), (CHECKPOINT_EVERY - 1, f"{CHECKPOINT_EVERY - 1:,} candles behind")):
        cold = []
        for _ in range(COLD_REQUESTS):
            checkpoint_behind(behind)
            histories.forget()
            cold.append(timed(browser, {}))
        rows.append((f"first request with nothing derived in this process, the checkpoint {name} ({COLD_REQUESTS} times)",
                     cold_figures(cold)))
    checkpoint_behind(0)
    firsts = [first_request_of_a_new_process() for _ in range(COLD_REQUESTS)]
    rows.append((f"first request of a new web process, the checkpoint at its last candle ({COLD_REQUESTS} processes)",
                 cold_figures(firsts)))
    # The choices and new candles below, from a history kept with a checkpoint at its last candle: none of them asks
    # a worker for a checkpoint (one of CHECKPOINT_EVERY candles does).
    checkpoint_behind(0)
    histories.forget()
    timed(browser, {})
    for name, query in CHOICES.items():
        rows.append(figures(name, server_times(browser, query)))
    rows.append(figures(f"the event feed filtered to a rare kind ({FEED_KIND}: none among the events)",
                        server_times(browser, {"kind": FEED_KIND}, url=reverse("event_list"))))
    after = []
    for candle in upcoming:
        ingest_candle(candle.to_mapping())
        after.append(timed(browser, {}))
    orchestrators.forget_all()
    rows.append(figures(f"default, the first request after each of {NEW_CANDLES} new candles (taken by the live path)",
                        after))
    return rows


def first_request_of_a_new_process() -> float:
    """Milliseconds of the first request of the page in a new process (`--first-request`) on this database."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.pnl_page", "--first-request"], env=dict(os.environ), cwd=live_stack.ROOT,
        capture_output=True, text=True, timeout=120,
    )
    if done.returncode:
        raise BenchmarkFailed(f"a new web process could not time its first request: {done.stderr.strip()[-500:]}")
    return float(done.stdout.split()[-1])


def first_request() -> None:
    """In this new process: load the ASGI application as the web process does at its start, log in, time the page's
    first request and print its milliseconds."""
    import tradeweb.asgi  # noqa: F401

    print(f"{timed(client(), {}):.1f}")


def section(rows: list[tuple[str, str]], conditions: str) -> str:
    """The P&L page's part of docs/benchmarks.md."""
    about = (
        "Written by `make bench` after switching (alone: `python -m benchmarks.pnl_page`). "
        + " ".join(__doc__.split("\n\n")[1].split())
        + f" Each choice: {WARM_UP_REQUESTS} requests untimed, then {REQUESTS} timed."
    )
    return report.section(HEADING, about, conditions, rows)


def main() -> None:
    """Measure the P&L page and write its section of docs/benchmarks.md."""
    live_stack.measure_and_write(HEADING, measure, section)


def profile(warm: bool) -> None:
    """Print where the time of the default page goes, on a freshly seeded database: the first request in fresh web
    processes (the checkpoint CHECKPOINT_EVERY - 1 candles behind), or (`warm`) requests again and again."""
    live_stack.configure()
    live_stack.check_services()
    live_stack.migrate_fresh()
    from tradeweb.desk.history_cache import histories
    from tradeweb.desk.history_checkpoints import CHECKPOINT_EVERY

    try:
        print(seed()[0])
        browser = client()
        server_times(browser, {}, requests=3)
        checkpoint_behind(CHECKPOINT_EVERY - 1)
        profiler = cProfile.Profile()
        for _ in range(5):
            if not warm:
                histories.forget()
            profiler.enable()
            timed(browser, {})
            profiler.disable()
    finally:
        live_stack.empty_desk()
    live_stack.print_stats(profiler)


if __name__ == "__main__":
    try:
        if "--first-request" in sys.argv[1:]:
            live_stack.configure()
            first_request()
        else:
            profile("warm" in sys.argv[2:]) if "--profile" in sys.argv[1:] else main()
    except BenchmarkFailed as failed:
        sys.exit(f"P&L page: {failed}")
