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
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import psycopg
import pytest
from psycopg import sql
import redis
from django.db import connection
from django.db.models import OuterRef, Subquery
from django.db.models.functions import Coalesce

from tests.core_runs import assert_desk_equals_the_core, assert_exactly_the_core_run
from tests.live_feed import Feed, feed_order
from tests.worker_processes import RedisServer, Worker, WorkerStack, require_postgresql_and_redis_server
from tradeweb.desk import models
from tradeweb.desk.tasks import process_candle

pytestmark = pytest.mark.django_db(transaction=True)

KILLS = 5


@pytest.fixture
def stack(transactional_db, database_url: str, tmp_path: Path) -> Iterator[WorkerStack]:
    require_postgresql_and_redis_server("the crash tests")
    server = RedisServer(tmp_path)
    crash_stack = WorkerStack(tmp_path, database_url, server)
    try:
        server.start()
        yield crash_stack
    finally:
        crash_stack.stop()


# Sessions running a statement or between two statements of a transaction: their worker is in the
# middle of a candle (storing it, or taking a batch of them with the strategies' rows locked).
WORKING_SQL = """
SELECT DISTINCT application_name FROM pg_stat_activity
WHERE datname = current_database() AND state IN ('active', 'idle in transaction') AND application_name = ANY(%s)
"""


def worker_in_the_database(stack: WorkerStack, rng: random.Random) -> Worker | None:
    """A worker that is running a statement or has a transaction open at this moment, if any is."""
    alive = {worker.session_name: worker for worker in stack.workers if worker.alive}
    with connection.cursor() as cursor:
        cursor.execute(WORKING_SQL, [sorted(alive)])
        inside = [alive[row[0]] for row in cursor.fetchall()]
    return rng.choice(sorted(inside, key=lambda w: w.name)) if inside else None


def worker_caught_in_the_database(stack: WorkerStack, rng: random.Random, within: float = 0.2) -> Worker | None:
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

    stack: WorkerStack
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
def under_load(stack: WorkerStack, candles: dict[tuple[str, str], list]) -> Iterator[tuple[Feed, list[dict]]]:
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
        # The workers held still while the queue is counted and Redis goes, so none takes a counted candle
        # (and stores it, needing no resend) between the two.
        for worker in workers:
            worker.pause()
        try:
            queued = queued_candles(stack)
            stack.redis.restart(down_for=1.0)
        finally:
            for worker in workers:
                worker.resume()
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
