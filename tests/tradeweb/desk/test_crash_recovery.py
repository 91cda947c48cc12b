"""Exactly once through crashes: real prefork workers killed with kill -9 (a pool process, the main
process, the whole process group), a Redis restarted empty, the database gone for seconds, and a
worker stopped with SIGTERM, all while candles are in flight; the feed resends what was lost, and every strategy ends with exactly
the rows of the uninterrupted core run.

Each test has a Redis of its own (a killed worker leaves its message in the broker's unacked
set, which no other test or `make run` stack must ever see) and a queue named for the test run.
"""

from __future__ import annotations

import json
import random
import shutil
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

import kombu
import psycopg
import pytest
from psycopg import sql
import redis
from django.db import connection
from django.db.models import OuterRef, Subquery
from django.db.models.functions import Coalesce

from orchestrator.datasets import load_candles
from orchestrator.market_rules import feed_messages
from tests.conftest import TEST_QUEUE, service_missing, subprocess_env
from tests.core_runs import assert_exactly_the_core_run
from tests.worker_processes import RedisServer, Worker
from tradeweb.desk import models
from tradeweb.desk.delivery import CandleDelivery
from tradeweb.desk.management.commands.run_feed import interleave
from tradeweb.desk.tasks import process_candle

pytestmark = pytest.mark.django_db(transaction=True)

KILLS = 5
RESEND_AFTER = 4.0
# Candles sent and not yet confirmed, at most: the workers always have a backlog (candles in flight),
# and a resend is not triggered by the backlog alone.
MAX_IN_FLIGHT = 40
# Every wait ends within pytest-timeout's 300 s (the workers die with the test process: setpriv --pdeathsig);
# generous, because a machine busy with other work slows the workers several times over.
FINISH_TIMEOUT = 120.0

# Two strategies on BTC/USD 1m, one on GBP/USD 1m (market breaks: linked messages), one on BTC/USD 5m.
STRATEGIES = [
    ("btc-sma", "sma_crossover", "BTC/USD", "1m",
     {"fast_period": 3, "slow_period": 8, "stop_loss_pct": "0.003", "take_profit_pct": "0.004"}),
    ("btc-rsi", "rsi_mean_reversion", "BTC/USD", "1m",
     {"rsi_period": 7, "stop_loss_pct": "0.003", "take_profit_pct": "0.004"}),
    ("gbp-rsi", "rsi_mean_reversion", "GBP/USD", "1m",
     {"rsi_period": 5, "oversold": "35", "stop_loss_pct": "0.0003", "take_profit_pct": "0.0004"}),
    ("btc-5m-sma", "sma_crossover", "BTC/USD", "5m",
     {"fast_period": 3, "slow_period": 8, "stop_loss_pct": "0.006", "take_profit_pct": "0.008"}),
]
# (after, how many): the GBP/USD sample spans three of its market's breaks.
CANDLES = {
    ("BTC/USD", "1m"): (None, 160),
    ("GBP/USD", "1m"): (datetime(2012, 2, 1, 1, 45, tzinfo=timezone.utc), 160),
    ("BTC/USD", "5m"): (None, 100),
}


@dataclass
class CrashStack:
    """A private Redis, the workers on it, and the queue they consume; all stopped by `stop`."""

    directory: Path
    database_url: str
    redis: RedisServer
    queue: str = field(default_factory=lambda: f"{TEST_QUEUE}-crash-{uuid.uuid4().hex[:8]}")
    workers: list[Worker] = field(default_factory=list)
    retired: list[Worker] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        env = subprocess_env(self.database_url, self.redis.url)
        env.update(
            CELERY_BROKER_URL=self.redis.url,  # the machine's own setting must not send the workers elsewhere
            CELERY_QUEUE=self.queue,
            # The reference run reports no gap: a candle lost with a worker must not be waited for so long
            # (on a slow machine) that a DATA_GAP event is written before the feed resends it.
            CANDLE_GAP_GRACE_SECONDS="600",
            # Connections kept from task to task, as in production: these workers are gone before the test
            # database is dropped.
            DATABASE_CONN_MAX_AGE="60",
        )
        return env

    def start_workers(self, *names: str, concurrency: int = 1) -> list[Worker]:
        """Start workers side by side and wait until each consumes."""
        started = [Worker(name, self.queue, self.env, self.directory, concurrency) for name in names]
        self.workers += started
        for worker in started:
            worker.launch()
        for worker in started:
            worker.wait_ready()
        return started

    def replace(self, worker: Worker, wait: bool = True) -> Worker:
        """A new worker in place of one that is gone (its name, its next log); `wait`: until it consumes."""
        self.workers.remove(worker)
        self.retired.append(worker)
        fresh = Worker(worker.name, self.queue, self.env, self.directory, worker.concurrency)
        fresh.starts = worker.starts
        self.workers.append(fresh)
        fresh.launch()
        if wait:
            fresh.wait_ready()
        return fresh

    def logs(self) -> str:
        """The last of each worker's errors and warnings, for a failure's message."""
        lines = []
        for worker in self.retired + self.workers:
            text = worker.log_path.read_text(errors="replace") if worker.log_path else ""
            noted = [line for line in text.splitlines() if "ERROR/" in line or "WARNING/" in line]
            lines += [f"--- {worker.log_path.name}: {len(noted)} errors and warnings, the last ones:", *noted[-5:]]
        return "\n".join(line[:500] for line in lines)

    def stop(self) -> None:
        for worker in self.retired + self.workers:
            worker.stop()
        if self.redis.process is not None and self.redis.process.poll() is None:
            redis.Redis.from_url(self.redis.url).delete(self.queue)
        self.redis.kill()


@pytest.fixture
def stack(transactional_db, database_url: str, tmp_path: Path) -> Iterator[CrashStack]:
    if connection.vendor != "postgresql":
        service_missing("the crash tests need PostgreSQL (its sessions show which worker is mid-candle): set DATABASE_URL")
    if shutil.which("redis-server") is None:
        service_missing("redis-server is not installed: the crash tests start a Redis of their own")
    server = RedisServer(tmp_path)
    crash_stack = CrashStack(tmp_path, database_url, server)
    try:
        server.start()
        yield crash_stack
    finally:
        crash_stack.stop()


@pytest.fixture
def desk(make_strategy) -> tuple[list[models.Strategy], dict[tuple[str, str], list]]:
    """The four strategies and the real candles of their three markets."""
    strategies = [
        make_strategy(sid, strategy_class=cls, symbol=symbol, timeframe=timeframe, **config)
        for sid, cls, symbol, timeframe, config in STRATEGIES
    ]
    candles = {
        market: load_candles(market[0], market[1], start=after, limit=count) for market, (after, count) in CANDLES.items()
    }
    gbp = candles[("GBP/USD", "1m")]
    assert sum(b.time - a.time > timedelta(minutes=1) for a, b in zip(gbp, gbp[1:])) == 3
    return strategies, candles


def feed_order(candles: dict[tuple[str, str], list]) -> list[dict]:
    """Every market's linked messages, stepped through together as run_feed sends them."""
    return [m for step in interleave([list(feed_messages(c)) for c in candles.values()]) for m in step]


class Feed:
    """The feed as run_feed plays it, through this stack's Redis: each candle sent until confirmed, at most
    MAX_IN_FLIGHT unconfirmed. `during(sent)` is called between sends and while the feed waits."""

    def __init__(self, stack: CrashStack, broker: kombu.Connection) -> None:
        self.stack = stack
        send = partial(process_candle.apply_async, connection=broker, queue=stack.queue)
        self.delivery = CandleDelivery(lambda message: send((message,)), resend_after=RESEND_AFTER)
        self.sent = 0
        self._checked = time.monotonic()

    def tick(self) -> None:
        """Forget what is confirmed and resend what is overdue, twice a second."""
        if time.monotonic() - self._checked > 0.5:
            self.delivery.check()
            self._checked = time.monotonic()

    def play(self, messages: list[dict], during: Callable[[int], object] = lambda sent: None) -> None:
        for message in messages:
            during(self.sent)
            deadline = time.monotonic() + FINISH_TIMEOUT
            while len(self.delivery.pending) >= MAX_IN_FLIGHT and self.delivery.check() >= MAX_IN_FLIGHT:
                if time.monotonic() > deadline:
                    pytest.fail(f"no candle confirmed for {FINISH_TIMEOUT}s after {self.sent} sent\n{self.stack.logs()}")
                during(self.sent)
                time.sleep(0.02)
            self.tick()
            self.delivery.send(message)
            self.sent += 1

    def wait_until(self, condition: Callable[[], object], what: str, timeout: float = FINISH_TIMEOUT) -> None:
        """Keep the feed going (resending) until `condition()` is true."""
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}\n{self.stack.logs()}"
            self.tick()
            time.sleep(0.02)

    def finish(self, candles: dict[tuple[str, str], list]) -> None:
        """Wait until every candle is stored and processed by every strategy of its market."""
        pending = self.delivery.wait(FINISH_TIMEOUT, interval=0.2)
        assert pending == 0, f"{pending} candles still unprocessed after {FINISH_TIMEOUT}s\n{self.stack.logs()}"
        for strategy in models.Strategy.objects.all():
            assert (strategy.status, strategy.last_error) == ("active", ""), f"{strategy.strategy_id}: {strategy.last_error}"
            assert strategy.last_candle_time == candles[(strategy.symbol, strategy.timeframe)][-1].time


# Sessions running a statement or between two statements of a transaction: their worker is in the
# middle of a candle (storing it, or taking a batch of them with the strategies' rows locked).
WORKING_SQL = """
SELECT DISTINCT application_name FROM pg_stat_activity
WHERE datname = current_database() AND state IN ('active', 'idle in transaction') AND application_name = ANY(%s)
"""


def worker_in_the_database(stack: CrashStack, rng: random.Random) -> Worker | None:
    """A worker that is running a statement or has a transaction open at this moment, if any is."""
    alive = {worker.session_name: worker for worker in stack.workers if worker.alive}
    with connection.cursor() as cursor:
        cursor.execute(WORKING_SQL, [sorted(alive)])
        inside = [alive[row[0]] for row in cursor.fetchall()]
    return rng.choice(sorted(inside, key=lambda w: w.name)) if inside else None


def worker_caught_in_the_database(stack: CrashStack, rng: random.Random, within: float = 0.2) -> Worker | None:
    """A worker in the middle of a candle, looked for as often as the database answers for up to `within`
    seconds: a worker with a backlog of a few candles is in a transaction for milliseconds at a time."""
    deadline = time.monotonic() + within
    while True:
        worker = worker_in_the_database(stack, rng)
        if worker is not None or time.monotonic() > deadline:
            return worker


def assert_rows_agree_with_their_events() -> None:
    """Whatever moment another session looks, each strategy's row (its last event number, its last candle and
    the snapshot taken after it) agrees with its stored events: a half-stored candle would show here.
    One statement, so one consistent view of the database."""
    latest = models.Event.objects.filter(strategy_id=OuterRef("strategy_id")).order_by("-sequence").values("sequence")[:1]
    rows = models.Strategy.objects.annotate(stored=Coalesce(Subquery(latest), 0)).values_list(
        "strategy_id", "last_sequence", "stored", "last_candle_time", "snapshot")
    torn = [
        row for row in rows
        if row[1] != row[2] or (row[4] or {}).get("last_candle_time") != (row[3] and row[3].isoformat())
    ]
    assert not torn, f"(strategy, last event, last stored event, last candle, snapshot) disagree: {torn}"


def assert_desk_equals_the_core(strategies: list[models.Strategy], candles: dict[tuple[str, str], list]) -> None:
    for market, market_candles in candles.items():
        stored = list(models.Candle.objects.filter(symbol=market[0], timeframe=market[1]).order_by("time").values_list("time", flat=True))
        assert stored == [c.time for c in market_candles], f"{market}: every candle stored once"
    fills = {s.strategy_id: assert_exactly_the_core_run(s, candles[(s.symbol, s.timeframe)]) for s in strategies}
    assert min(fills.values()) >= 4, f"every strategy must trade for the comparison to mean anything: {fills}"


KILL_MODES = {
    "pool-process": Worker.kill_pool_process,
    "main-process": Worker.kill_main_process,
    "process-group": Worker.kill_process_group,
}


@dataclass
class Kills:
    """kill -9 at KILLS random moments: once the feed has sent the next of `at` messages and a random
    fraction of a second more has passed, the first time a worker is seen at work in the database (the
    feed waits up to 0.2 s after each candle for that). The test starts again what the kill took (a pool
    process is started again by its main process)."""

    stack: CrashStack
    feed: Feed
    mode: str
    rng: random.Random
    at: list[int]
    done: list[tuple[int, str, int]] = field(default_factory=list)  # (messages sent, worker, candles in flight)
    not_before: float | None = None

    def __call__(self, sent: int) -> bool:
        assert_rows_agree_with_their_events()
        if len(self.done) < len(self.at) and sent >= self.at[len(self.done)]:
            if self.not_before is None:
                self.not_before = time.monotonic() + self.rng.uniform(0, 0.3)
            worker = worker_caught_in_the_database(self.stack, self.rng) if time.monotonic() >= self.not_before else None
            if worker is not None:
                self.not_before = None
                self.done.append((sent, worker.name, len(self.feed.delivery.pending)))
                KILL_MODES[self.mode](worker)
                if self.mode != "pool-process":
                    self.stack.replace(worker, wait=False)  # the other worker carries on meanwhile
        return len(self.done) == len(self.at)


@pytest.mark.parametrize("mode", list(KILL_MODES))
def test_workers_killed_five_times_under_load_end_with_exactly_the_core_run(stack, desk, mode):
    strategies, candles = desk
    messages = feed_order(candles)
    rng = random.Random(f"crash-{mode}")
    stack.start_workers("one", "two")

    with process_candle.app.connection_for_write(stack.redis.url) as broker:
        feed = Feed(stack, broker)
        # Not in the last fifth: the workers must still be busy when the last kill comes.
        kills = Kills(stack, feed, mode, rng, sorted(rng.sample(range(len(messages) // 10, len(messages) * 4 // 5), KILLS)))
        feed.play(messages, during=kills)
        feed.wait_until(lambda: kills(feed.sent), "the last kills")
        feed.finish(candles)

    assert len(kills.done) == KILLS and all(in_flight for _, _, in_flight in kills.done), kills.done
    assert all(w.alive for w in stack.workers), stack.logs()
    assert_desk_equals_the_core(strategies, candles)


def queued_candles(stack) -> int:
    """Candle messages waiting in the queue (the rest are advances, which the feed does not send)."""
    queue = redis.Redis.from_url(stack.redis.url).lrange(stack.queue, 0, -1)
    return sum(json.loads(message)["headers"]["task"] == process_candle.name for message in queue)


@contextmanager
def under_load(stack: CrashStack, candles: dict[tuple[str, str], list]) -> Iterator[tuple[Feed, list[dict]]]:
    """Two workers taking the feed's first two fifths of the candles (each strategy's rows checked against
    its events as they go); yields the feed and the candles still to send."""
    messages = feed_order(candles)
    split = len(messages) * 2 // 5
    stack.start_workers("one", "two")
    with process_candle.app.connection_for_write(stack.redis.url) as broker:
        feed = Feed(stack, broker)
        feed.play(messages[:split], during=lambda sent: assert_rows_agree_with_their_events())
        yield feed, messages[split:]


def test_a_redis_restarted_empty_under_load_loses_nothing_once_the_feed_resends(stack, desk):
    strategies, candles = desk

    with under_load(stack, candles) as (feed, rest):
        workers, pids = list(stack.workers), [w.process.pid for w in stack.workers]
        queued = queued_candles(stack)
        stack.redis.restart(down_for=1.0)
        feed.play(rest, during=lambda sent: assert_rows_agree_with_their_events())
        feed.finish(candles)

    assert queued > 0, "the restart must lose queued messages"
    assert feed.delivery.resent >= queued
    assert [w.process.pid for w in workers if w.alive] == pids, "the same workers, never restarted"
    for worker in workers:
        log = worker.log_path.read_text(errors="replace")
        reconnected = log.rfind("] Connected to redis://")
        assert log.count("] Connected to redis://") == 2 and "succeeded" in log[reconnected:], (
            f"{worker.name} reconnected by itself and took candles again:\n{worker.log_tail()}")
    assert_desk_equals_the_core(strategies, candles)


def test_a_worker_stopped_with_sigterm_under_load_exits_cleanly_and_a_new_one_finishes(stack, desk):
    strategies, candles = desk
    messages = feed_order(candles)
    half = len(messages) // 2
    [worker] = stack.start_workers("one", concurrency=2)
    rng = random.Random("sigterm")

    with process_candle.app.connection_for_write(stack.redis.url) as broker:
        feed = Feed(stack, broker)
        feed.play(messages[:half], during=lambda sent: assert_rows_agree_with_their_events())
        # One more candle at a time until the worker is caught in the middle of one.
        rest = messages[half:]
        while worker_caught_in_the_database(stack, rng) is None:
            assert rest, "the worker was never caught in the middle of a candle"
            feed.play(rest[:1])
            rest = rest[1:]
        assert feed.delivery.pending, "SIGTERM must come while candles are in flight"
        assert worker.terminate() == 0, worker.log_tail()
        assert not worker.group(), "the pool processes exit with it"

        rows = list(models.Strategy.objects.order_by("strategy_id"))
        assert [(s.strategy_id, s.snapshot and s.snapshot["last_candle_time"]) for s in rows] == [
            (s.strategy_id, s.last_candle_time and s.last_candle_time.isoformat()) for s in rows
        ], "every orchestrator's memory is stored with its last candle"
        assert all(s.last_candle_time for s in rows), "every strategy took candles before the SIGTERM"
        for strategy in rows:  # what it stored so far is the core's run up to its last candle, exactly
            last = strategy.last_candle_time
            done = [c for c in candles[(strategy.symbol, strategy.timeframe)] if last is not None and c.time <= last]
            assert_exactly_the_core_run(strategy, done)

        stack.replace(worker)
        feed.play(rest, during=lambda sent: assert_rows_agree_with_their_events())
        feed.finish(candles)

    assert_desk_equals_the_core(strategies, candles)


class DatabaseOutage(threading.Thread):
    """What the workers see of a PostgreSQL restart, without restarting the server other tests' databases
    live on: every session of the test database is ended, and new ones are refused for `seconds`."""

    def __init__(self, seconds: float) -> None:
        super().__init__(name="database-outage")
        self.seconds = seconds
        self.ended_sessions = 0

    def run(self) -> None:
        conf = connection.settings_dict
        database = sql.Identifier(conf["NAME"])
        with psycopg.connect(
            host=conf["HOST"], port=conf["PORT"] or 5432, user=conf["USER"], password=conf["PASSWORD"] or None,
            dbname="postgres", autocommit=True,
        ) as server:
            server.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(database))
            try:
                ended = server.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s", [conf["NAME"]]
                ).fetchone()
                self.ended_sessions = ended[0]
                time.sleep(self.seconds)
            finally:
                server.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(database))


def test_the_database_gone_under_load_loses_nothing_and_no_worker_restarts(stack, desk):
    strategies, candles = desk

    with under_load(stack, candles) as (feed, rest):
        workers, pids = list(stack.workers), [w.process.pid for w in stack.workers]
        outage = DatabaseOutage(seconds=3.0)
        outage.start()
        # Sent while the database is gone: the feed cannot confirm them, and sends on once it can.
        feed.play(rest)
        outage.join()
        connection.close()  # this test's own session was ended too
        feed.finish(candles)
        assert_rows_agree_with_their_events()

    assert outage.ended_sessions >= 3, "the workers' sessions and the test's were ended"
    assert [w.process.pid for w in workers if w.alive] == pids, "the same workers, never restarted"
    logs = "".join(w.log_path.read_text(errors="replace") for w in workers)
    assert "OperationalError" in logs, "the outage must hit the workers under load"
    assert_desk_equals_the_core(strategies, candles)
