"""The live path under load: candles sent as a feed sends them, through real Celery workers, PostgreSQL
and Redis, to many strategies; figures appended to docs/benchmarks.md after the core's.

`python -m benchmarks` runs it after the core figures; `python -m benchmarks.live_path` runs it
alone (replacing its section of docs/benchmarks.md), and `--profile` prints instead where a
worker's time goes at 100 strategies (cProfile around `ingest_candle`, in this process).

Django is set up for the benchmark's own database only when it starts (`live_stack.configure`),
so Django and the desk are imported inside the functions that use them.
"""

from __future__ import annotations

import cProfile
import itertools
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal

from benchmarks import live_stack, report
from benchmarks.live_stack import BenchmarkFailed, Workers, running_workers, wait_until
from orchestrator.datasets import load_candles
from orchestrator.market_rules import feed_messages

HEADING = "## Live path"

MARKETS = ("BTC/USD", "GBP/USD")
TIMEFRAME = "1m"
WARM_UP = 30  # candles per market sent untimed first: orchestrators built and cached, connections open
THROUGHPUT_CANDLES = 100  # per market and timed window, 10 strategies on each market
COST_CANDLES = 60  # per timed window, on BTC/USD
SINGLE_CANDLES = 30  # sent one at a time, each when the one before has been processed, at 100 strategies
REPEATS = 3  # timed windows per figure; the median is reported
REBUILDS = 20  # builds per kind; the median is reported
PROFILE_CANDLES = 60
MS_TARGET = 0.5  # ms per strategy per candle at 100 strategies (the target)
MEMORY_TARGET = 5 * 1024 * 1024  # bytes per cached orchestrator


class Feed:
    """One market's real candles as a feed sends them (each names the one before it), handed out in order."""

    def __init__(self, symbol: str, count: int) -> None:
        self.messages = list(feed_messages(load_candles(symbol, TIMEFRAME, limit=count)))
        if len(self.messages) < count:
            raise BenchmarkFailed(f"the {symbol} dataset has {len(self.messages)} candles, the benchmark needs {count}")
        self.sent = 0

    def take(self, count: int) -> list[dict]:
        """The next `count` messages."""
        taken = self.messages[self.sent:self.sent + count]
        self.sent += count
        return taken


def add_strategies(symbol: str, count: int) -> None:
    """`count` active strategies on a market: SMA crossovers and RSI mean reversions in turn, periods varied."""
    from orchestrator.config import config_to_json
    from strategies import parse_strategy_config
    from tradeweb.desk import models

    prefix = symbol.replace("/", "").lower()
    for n in range(count):
        if n % 2 == 0:
            strategy_class, config = "sma_crossover", {"fast_period": 5 + n // 2 % 6, "slow_period": 20 + n // 2 % 11}
        else:
            strategy_class, config = "rsi_mean_reversion", {"rsi_period": 10 + n // 2 % 8}
        models.Strategy.objects.create(
            strategy_id=f"{prefix}-{n:03d}", name=f"{symbol} {n}", strategy_class=strategy_class, symbol=symbol,
            timeframe=TIMEFRAME, status=models.Strategy.Status.ACTIVE, capital=Decimal(10000),
            config=config_to_json(parse_strategy_config(strategy_class, config)),
        )


def send_and_wait(batches: list[list[dict]], workers: Workers, timeout: float = 180) -> float:
    """Send the markets' candles interleaved, as fast as the broker takes them; seconds from the first
    send until every active strategy has processed the last candle of its market."""
    from django.db.models import Count, Q

    from orchestrator.candles import to_utc
    from tradeweb.desk import models
    from tradeweb.desk.delivery import CandleDelivery
    from tradeweb.desk.tasks import process_candle

    at_end = Q()
    for batch in batches:
        at_end |= Q(symbol=batch[-1]["symbol"], last_candle_time=to_utc(batch[-1]["time"]))
    strategies = models.Strategy.objects.filter(status=models.Strategy.Status.ACTIVE).count()

    def processed() -> bool:
        counts = models.Strategy.objects.aggregate(
            done=Count("id", filter=at_end), failed=Count("id", filter=Q(status=models.Strategy.Status.ERROR))
        )
        if counts["failed"]:
            failed = models.Strategy.objects.filter(status=models.Strategy.Status.ERROR).first()
            raise BenchmarkFailed(f"strategy {failed.strategy_id} failed: {failed.last_error}\n{workers.tail()}")
        return counts["done"] == strategies

    # No resend while the benchmark runs: a resent candle would be a duplicate, work no feed would add.
    delivery = CandleDelivery(process_candle.delay, resend_after=3600)
    started = time.perf_counter()
    for message in itertools.chain.from_iterable(itertools.zip_longest(*batches)):
        if message is not None:
            delivery.send(message)
    # Polled every 50 ms: often enough for windows of seconds, seldom enough not to slow the workers.
    wait_until(processed, "every strategy to process its market's last candle", timeout, workers, interval=0.05)
    elapsed = time.perf_counter() - started
    if delivery.check():
        raise BenchmarkFailed(f"{len(delivery.pending)} candles were not confirmed stored and processed")
    return elapsed


def fresh_statuses(workers: Workers) -> list[dict]:
    """A status report from every worker, made now. An advance of a market with nothing left to take
    makes one; one is sent every 0.2 s until each worker has reported (a worker reports at most once
    a second, hence the wait before asking), and the queue is left empty for what follows."""
    import redis
    from django.conf import settings

    from tradeweb.desk.orchestrators import STATUS_INTERVAL, reported_statuses
    from tradeweb.desk.tasks import advance

    time.sleep(STATUS_INTERVAL + 0.1)
    asked = datetime.now(timezone.utc)
    fresh: dict[str, dict] = {}

    def reported() -> bool:
        fresh.update((s["worker"], s) for s in reported_statuses() if datetime.fromisoformat(s["reported_at"]) >= asked)
        if len(fresh) < len(workers.names):
            advance.delay(MARKETS[0], TIMEFRAME)
            return False
        return True

    wait_until(reported, "a status report from every worker", 30, workers, interval=0.2)
    queue = redis.Redis.from_url(settings.REDIS_URL)
    wait_until(lambda: queue.llen(live_stack.NAME) == 0, "the workers to take the last status requests", 30, workers)
    return list(fresh.values())


def builds(statuses: list[dict]) -> int:
    """Orchestrators the workers built from the database (cache misses), all told."""
    return sum(status["builds"]["builds"] for status in statuses)


def one_at_a_time(feed: Feed, count: int, workers: Workers) -> list[float]:
    """Seconds from sending a candle until every active strategy has processed it, for `count` candles
    each sent when the one before is done: a quiet market, where no batch forms."""
    from orchestrator.candles import to_utc
    from tradeweb.desk import models
    from tradeweb.desk.tasks import process_candle

    active = models.Strategy.objects.filter(status=models.Strategy.Status.ACTIVE)
    strategies = active.count()
    samples = []
    for message in feed.take(count):
        candle_time = to_utc(message["time"])
        started = time.perf_counter()
        process_candle.delay(message)
        wait_until(lambda: active.filter(last_candle_time=candle_time).count() == strategies,
                   "every strategy to process a candle sent alone", 60, workers, interval=0.002)
        samples.append(time.perf_counter() - started)
    return samples


@dataclass
class Run:
    """What a run of timed windows measured."""

    windows: list[float]  # seconds, one per timed window
    work: int  # strategy-candles per window
    rebuilds: int  # orchestrators built during the timed windows, all workers together
    idle: dict  # the worker's status report before the first candle (the first worker's, with several)
    held: dict  # its report after the last window
    alone: list[float] = field(default_factory=list)  # seconds per candle sent alone, when measured

    def per_second(self) -> list[float]:
        """Strategy-candles per second, window by window."""
        return [self.work / seconds for seconds in self.windows]

    def ms_each(self) -> list[float]:
        """Milliseconds per strategy per candle, window by window."""
        return [seconds * 1000 / self.work for seconds in self.windows]


def timed_run(feeds: list[Feed], candles: int, workers: Workers) -> Run:
    """Warm up (WARM_UP candles per market, untimed), then REPEATS timed windows of `candles` per market."""
    from tradeweb.desk import models

    idle = fresh_statuses(workers)
    send_and_wait([feed.take(WARM_UP) for feed in feeds], workers)
    warm = fresh_statuses(workers)
    windows = [send_and_wait([feed.take(candles) for feed in feeds], workers) for _ in range(REPEATS)]
    held = fresh_statuses(workers)
    work = models.Strategy.objects.filter(status=models.Strategy.Status.ACTIVE).count() * candles
    return Run(windows, work, builds(held) - builds(warm), idle[0], held[0])


def throughput(processes: int) -> Run:
    """`processes` workers taking candles for 10 strategies on each of two markets."""
    feeds = [Feed(symbol, WARM_UP + REPEATS * THROUGHPUT_CANDLES) for symbol in MARKETS]
    live_stack.empty_desk()
    with running_workers(processes) as workers:
        for symbol in MARKETS:
            add_strategies(symbol, 10)
        return timed_run(feeds, THROUGHPUT_CANDLES, workers)


def cost_per_strategy(count: int, alone: int = 0) -> Run:
    """One worker process taking candles for `count` strategies on BTC/USD (then `alone` candles one at a
    time); its status reports give its memory idle and with the `count` orchestrators cached."""
    feed = Feed(MARKETS[0], WARM_UP + REPEATS * COST_CANDLES + alone)
    live_stack.empty_desk()
    with running_workers(1) as workers:
        add_strategies(MARKETS[0], count)
        run = timed_run([feed], COST_CANDLES, workers)
        run.alone = one_at_a_time(feed, alone, workers)
    if len(run.held["strategies"]) != count:
        raise BenchmarkFailed(f"the worker holds {len(run.held['strategies'])} orchestrators, expected {count}")
    return run


def rebuild_times() -> tuple[float, float]:
    """Milliseconds to build an orchestrator from its row, in this process: with the snapshot stored with
    its last candle, and without one (warming up on WARM_UP_CANDLES stored candles). Medians of REBUILDS."""
    from django.conf import settings

    from tradeweb.desk import models, orchestrators
    from tradeweb.desk.live import ingest_candle

    live_stack.empty_desk()
    orchestrators.forget_all()
    feed = Feed(MARKETS[0], settings.WARM_UP_CANDLES + 1)
    models.Candle.objects.bulk_create(
        models.Candle(symbol=m["symbol"], timeframe=m["timeframe"], time=m["time"], previous_time=m.get("previous"),
                      open=m["open"], high=m["high"], low=m["low"], close=m["close"], volume=m["volume"])
        for m in feed.take(settings.WARM_UP_CANDLES)
    )
    add_strategies(MARKETS[0], 1)  # it starts at the newest stored candle, without a snapshot
    row = models.Strategy.objects.get()
    candle = feed.take(1)[0]
    before = datetime.fromisoformat(candle["time"])

    def restored() -> int:
        return orchestrators.status()["builds"]["from_snapshot"]

    def median_ms(strategy: models.Strategy) -> float:
        orchestrators.build_orchestrator(strategy, before)  # untimed: first queries, first imports
        samples = []
        for _ in range(REBUILDS):
            started = time.perf_counter()
            orchestrators.build_orchestrator(strategy, before)
            samples.append(time.perf_counter() - started)
        return statistics.median(samples) * 1000

    warm_up = median_ms(row)
    if restored():
        raise BenchmarkFailed("a strategy without a snapshot was restored from one")
    ingest_candle(candle)  # the strategy processes one candle: its row now holds a snapshot
    row.refresh_from_db()
    if not row.snapshot:
        raise BenchmarkFailed("no snapshot was stored with the strategy's candle")
    snapshot = median_ms(row)
    if restored() != REBUILDS + 1:
        raise BenchmarkFailed("a strategy with a snapshot was not restored from it")
    orchestrators.forget_all()
    return snapshot, warm_up


def measure() -> list[tuple[str, str]]:
    """Every live-path figure, as (name, value) rows."""
    from django.conf import settings

    one, two = throughput(1), throughput(2)
    costs = {count: cost_per_strategy(count, SINGLE_CANDLES if count == 100 else 0) for count in (1, 10, 100)}
    snapshot, warm_up = rebuild_times()
    ratio = statistics.median(two.per_second()) / statistics.median(one.per_second())
    rows = [
        ("20 strategies, 2 markets, 1 worker: strategy-candles per second", spread(one.per_second(), "{:,.0f}")),
        ("20 strategies, 2 markets, 2 workers: strategy-candles per second", spread(two.per_second(), "{:,.0f}")),
        ("2 workers vs 1: throughput ratio", f"{ratio:.2f}x"),
        ("orchestrators rebuilt in the timed windows, 1 worker / 2 workers",
         f"{one.rebuilds:,} / {two.rebuilds:,} (of {REPEATS * two.work:,} strategy-candles)"),
    ]
    for count, run in costs.items():
        value = spread(run.ms_each(), "{:.2f} ms")
        if count == 100:
            met = statistics.median(run.ms_each()) <= MS_TARGET
            value += f"; target at most {MS_TARGET} ms: {'met' if met else 'not met'}"
        rows.append((f"{count} strateg{'y' if count == 1 else 'ies'}, 1 worker: ms per strategy per candle", value))
    alone = sorted(costs[100].alone)
    rows.append((
        f"100 strategies, 1 worker, {SINGLE_CANDLES} candles sent one at a time: ms from send to processed by all",
        f"median {statistics.median(alone) * 1000:.1f} ms, p95 {alone[int(len(alone) * 0.95) - 1] * 1000:.1f} ms "
        f"({statistics.median(alone) * 1000 / 100:.2f} ms per strategy per candle)",
    ))
    idle, held = costs[100].idle["rss_bytes"], costs[100].held["rss_bytes"]
    per_orchestrator = (held - idle) / 100
    rows += [
        ("worker RSS idle", mib(idle)),
        ("worker RSS with 100 orchestrators cached", mib(held)),
        ("RSS per cached orchestrator ((with 100 - idle) / 100)",
         f"{per_orchestrator / 1024:.1f} KiB (target under {mib(MEMORY_TARGET)}: "
         f"{'met' if per_orchestrator < MEMORY_TARGET else 'not met'})"),
        ("rebuild from the stored snapshot", f"{snapshot:.2f} ms"),
        (f"rebuild without a snapshot (warm-up on {settings.WARM_UP_CANDLES:,} candles)", f"{warm_up:.2f} ms"),
        ("rebuild: without snapshot vs with", f"{warm_up / snapshot:.1f}x"),
    ]
    return rows


def spread(values: list[float], form: str) -> str:
    """The median, and the range of the windows: how much the machine's other work moved them."""
    low, high = min(values), max(values)
    return f"{form.format(statistics.median(values))} (windows {form.format(low)} to {form.format(high)})"


def mib(size: float) -> str:
    return f"{size / 1024 / 1024:.1f} MiB"


def section(rows: list[tuple[str, str]], conditions: str) -> str:
    """The live path's part of docs/benchmarks.md."""
    about = (
        "Written by `make bench` after the core figures (alone: `python -m benchmarks.live_path`). Candles go as "
        "the feed sends them (`CandleDelivery`, `desk.process_candle`) to Celery workers started as the Procfile "
        "starts one (prefork, one process each), on PostgreSQL and Redis, DEBUG off. Each figure starts from an "
        "empty desk and fresh workers; strategies alternate SMA crossover and RSI mean reversion, periods varied. "
        f"The first {WARM_UP} candles per market warm up untimed; then come {REPEATS} timed windows, each from the "
        "first candle sent until every strategy has processed the last of its market: the median is reported, "
        f"with the range. Throughput: {THROUGHPUT_CANDLES} candles per market and window, BTC/USD and GBP/USD 1m "
        f"interleaved. Cost per strategy: {COST_CANDLES} BTC/USD 1m candles per window, sent at once (a backlog: "
        "candles stored while an advance waits are taken in one batch); then, at 100 strategies, "
        f"{SINGLE_CANDLES} candles each sent when the one before was processed (a quiet market: no batch). Memory: the worker's own "
        "status report (rss_bytes) before its first candle and after the last window with 100 strategies; the "
        "difference also holds what the worker allocated for its first candles, so per orchestrator it is an "
        "upper bound. Rebuilds: `build_orchestrator` in the benchmark's process on the same database, median of "
        f"{REBUILDS}."
    )
    return report.section(HEADING, about, conditions, rows)


def write(text: str) -> None:
    """Put the live path's section in docs/benchmarks.md, after the core's, replacing an older one."""
    report.write_section(HEADING, text)


def main() -> None:
    """Measure the live path and write its section of docs/benchmarks.md."""
    rows, conditions = live_stack.on_fresh_desk(measure)
    report.print_rows(rows)
    write(section(rows, f"{conditions} Other work on the machine slows every figure here."))


def profile(count: int = 100) -> None:
    """Print where the time of `ingest_candle` goes with `count` strategies on one market, in this process."""
    live_stack.configure()
    from tradeweb.desk import orchestrators
    from tradeweb.desk.live import ingest_candle

    live_stack.check_services()
    live_stack.migrate_fresh()
    live_stack.empty_desk()
    orchestrators.forget_all()
    add_strategies(MARKETS[0], count)
    feed = Feed(MARKETS[0], WARM_UP + 2 * PROFILE_CANDLES)
    for message in feed.take(WARM_UP):
        ingest_candle(message)
    started = time.perf_counter()
    for message in feed.take(PROFILE_CANDLES):
        ingest_candle(message)
    plain = time.perf_counter() - started
    profiler = cProfile.Profile()
    profiler.enable()
    for message in feed.take(PROFILE_CANDLES):
        ingest_candle(message)
    profiler.disable()
    live_stack.empty_desk()
    print(f"in process, unprofiled: {plain * 1000 / (count * PROFILE_CANDLES):.3f} ms per strategy per candle "
          f"({count} strategies, {PROFILE_CANDLES} candles)\n")
    live_stack.print_stats(profiler)


if __name__ == "__main__":
    try:
        profile() if "--profile" in sys.argv[1:] else main()
    except BenchmarkFailed as failed:
        sys.exit(f"live path: {failed}")
