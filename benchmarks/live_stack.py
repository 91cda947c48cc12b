"""What the live-path benchmark runs on: its own PostgreSQL database, its own queue and key prefix on
Redis, and Celery worker processes it starts and stops itself.

Nothing here is shared with a `make run` stack or a test run on the same machine: the queue,
the channel-layer prefix and the workers' status keys carry this process's id, and the
database must be one whose name says it is for benchmarks (its tables are dropped).
"""

from __future__ import annotations

import os
import platform
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, TypeVar
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/tradeweb_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
NAME = f"tradeweb-bench-{os.getpid()}"
T = TypeVar("T")


class BenchmarkFailed(RuntimeError):
    """The live path could not be measured: a service is missing, a worker did not start, or candles
    were not processed. The message says what to do."""


def configure() -> None:
    """Point this process (and the workers it starts) at the benchmark's database, queue and prefix,
    with DEBUG off as in production (Django keeps every query's SQL when it is on), and set Django up."""
    database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    database = urlsplit(database_url).path.lstrip("/")
    if "bench" not in database:
        raise BenchmarkFailed(
            f"BENCH_DATABASE_URL names the database {database!r}: the benchmark drops every table of its database, "
            "so it only runs on one whose name contains 'bench' (the default is tradeweb_bench)"
        )
    os.environ.update(
        DATABASE_URL=database_url,
        REDIS_URL=os.environ.get("REDIS_URL", DEFAULT_REDIS_URL),
        CELERY_QUEUE=NAME,
        CHANNELS_PREFIX=NAME,
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
        DJANGO_SETTINGS_MODULE="tradeweb.settings",
    )
    os.environ.pop("CELERY_BROKER_URL", None)
    import django

    django.setup()


def check_services() -> tuple[str, str]:
    """PostgreSQL and Redis answer (their versions), or BenchmarkFailed says which does not and how to fix it."""
    import redis
    from django.conf import settings
    from django.db import OperationalError, connection

    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.postgresql":
        raise BenchmarkFailed("the live path is measured on PostgreSQL: set BENCH_DATABASE_URL=postgres://...")
    create_database(database)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            postgres = cursor.fetchone()[0]
    except OperationalError as error:
        reason = str(error).strip().splitlines()[0].rstrip(".")
        raise BenchmarkFailed(
            f"PostgreSQL has no answer for the database {database['NAME']!r} at {database['HOST']}:{database['PORT']} "
            f"({reason}): start it, create the database (createdb -U postgres {database['NAME']}), "
            "or point BENCH_DATABASE_URL at another"
        ) from None
    try:
        info = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2).info("server")
    except redis.RedisError as error:
        raise BenchmarkFailed(
            f"Redis is not answering at {settings.REDIS_URL} ({str(error).rstrip('.')}): start it (make redis) or set REDIS_URL"
        ) from None
    return postgres, info["redis_version"]


def on_fresh_desk(measure: Callable[[], T]) -> tuple[T, str]:
    """Run `measure` on the benchmark's stack (configured, services checked, database migrated afresh), the desk
    emptied after; returns what it measured and a line saying on what and how: machine, versions, time, load."""
    started, load = time.perf_counter(), os.getloadavg()[0]
    configure()
    postgres, redis = check_services()
    migrate_fresh()
    try:
        measured = measure()
    finally:
        empty_desk()
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return measured, (
        f"Measured {stamp} on {platform.machine()} with {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"PostgreSQL {postgres.split()[0]}, Redis {redis}, in {time.perf_counter() - started:.0f} s. Load average "
        f"(1 min) {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end."
    )


def create_database(database: dict) -> None:
    """Create the benchmark's database on its server when it is not there yet (a fresh machine)."""
    import psycopg

    try:
        with psycopg.connect(
            host=database["HOST"], port=database["PORT"] or 5432, user=database["USER"],
            password=database["PASSWORD"] or None, dbname="postgres", autocommit=True, connect_timeout=5,
        ) as server:
            if not server.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database["NAME"]]).fetchone():
                server.execute(f'CREATE DATABASE "{database["NAME"]}"')
    except psycopg.Error:
        pass  # the server or the right to create is missing: the check that follows says so


def migrate_fresh() -> None:
    """Drop every table of the benchmark database and migrate it from scratch."""
    from django.core.management import call_command
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    call_command("migrate", interactive=False, verbosity=0)


def empty_desk() -> None:
    """Remove every row of the desk (strategies, candles, ledger) and this run's keys on Redis."""
    from django.apps import apps
    from django.db import connection

    tables = ", ".join(model._meta.db_table for model in apps.get_app_config("desk").get_models())
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    forget_keys()


def forget_keys() -> None:
    """Delete this run's queue, channel-layer groups and worker status reports from Redis."""
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = list(client.scan_iter(match=f"*{NAME}*", count=1000))
    if keys:
        client.delete(*keys)


class Workers:
    """Celery worker processes on this run's queue, each started as the Procfile starts one: the prefork
    pool with one process. Gossip, mingle and heartbeats are off, so other workers on this Redis play no part."""

    def __init__(self, count: int, app: str = "tradeweb") -> None:
        self.app = app
        self.names = [f"{NAME}-{n}@bench" for n in range(count)]
        self.log = Path(tempfile.mkstemp(prefix=f"{NAME}-", suffix=".log")[1])
        self.processes: list[subprocess.Popen] = []

    def start(self, timeout: float = 60) -> None:
        with self.log.open("ab") as out:
            for name in self.names:
                self.processes.append(subprocess.Popen(
                    [
                        sys.executable, "-m", "celery", "-A", self.app, "worker", "--concurrency", "1",
                        "--queues", NAME, "--hostname", name, "--loglevel", "WARNING",
                        "--without-gossip", "--without-mingle", "--without-heartbeat",
                    ],
                    cwd=ROOT, env=dict(os.environ), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                ))
        self._wait_until_ready(timeout)

    def _wait_until_ready(self, timeout: float) -> None:
        from tradeweb.celery import app

        ready: set[str] = set()
        deadline = time.monotonic() + timeout
        while ready != set(self.names):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                raise BenchmarkFailed(f"the Celery workers did not start within {timeout:.0f} s:\n{self.tail()}")
            for reply in app.control.ping(destination=self.names, timeout=0.5):
                ready |= set(reply)

    def stop(self) -> None:
        """Warm shutdown, then kill what is left of each worker's process group (its pool process too)."""
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if process.returncode is None:
                process.wait()
        self.processes = []

    def tail(self, size: int = 3000) -> str:
        """The end of the workers' log, for a failure message."""
        return self.log.read_text(errors="replace")[-size:] if self.log.exists() else "(no log)"


@contextmanager
def running_workers(count: int, app: str = "tradeweb") -> Iterator[Workers]:
    """`count` fresh worker processes (no cached orchestrators) of the Celery application `app` for the duration of
    the block."""
    workers = Workers(count, app)
    try:
        workers.start()
        yield workers
    finally:
        workers.stop()
        workers.log.unlink(missing_ok=True)


def wait_until(condition: Callable[[], bool], what: str, timeout: float, workers: Workers | None = None,
               interval: float = 0.02) -> None:
    """Poll `condition` until it holds; BenchmarkFailed (with the workers' log) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            log = f"\n{workers.tail()}" if workers else ""
            raise BenchmarkFailed(f"timed out after {timeout:.0f} s waiting for {what}{log}")
        time.sleep(interval)


def measure_and_write(heading: str, measure: Callable[[], list[tuple[str, str]]],
                      section: Callable[[list[tuple[str, str]], str], str]) -> None:
    """Run `measure` on a fresh desk, print its figures and write its section of docs/benchmarks.md."""
    from benchmarks import report

    rows, conditions = on_fresh_desk(measure)
    report.print_rows(rows)
    report.write_section(heading, section(rows, f"{conditions} Other work on the machine slows every figure here."))


def print_stats(profiler) -> None:
    """A profile's top functions by own time, then by cumulative time."""
    import pstats

    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)
