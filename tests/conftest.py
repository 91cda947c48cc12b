"""Shared test set-up: real Redis, real database, real Celery worker and real Daphne, started per session.

With CI=true a missing Redis or PostgreSQL fails the run; on a laptop the tests that
need them are skipped with the reason.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

# A failed comparison with the core run shows the rows that differ, not only the strategy's id.
pytest.register_assert_rewrite("tests.core_runs")

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
TEST_QUEUE = f"tradeweb-test-{os.getpid()}"
TEST_PREFIX = f"tradeweb-test-{os.getpid()}"
# What a worker started with CELERY_QUEUE=TEST_QUEUE takes for its backtests.
TEST_BACKTEST_QUEUE = f"{TEST_QUEUE}-backtests"


def pytest_configure(config: pytest.Config) -> None:
    from django.conf import settings

    # Keep the tests' tasks and channel messages apart from a `make run` stack on the same Redis.
    settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = TEST_PREFIX
    settings.WORKER_STATUS_PREFIX = f"{TEST_PREFIX}:workers"
    settings.CELERY_TASK_DEFAULT_QUEUE = TEST_QUEUE
    settings.BACKTEST_QUEUE = TEST_BACKTEST_QUEUE
    # Connections opened by sync_to_async threads close after each call, so the test database can be dropped.
    settings.DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Logins in tests hash many passwords; fewer PBKDF2 rounds keep them quick.
    settings.PASSWORD_HASHERS = ["tests.password_hashing.QuickPBKDF2PasswordHasher"]
    engine = settings.DATABASES["default"]["ENGINE"]
    if IN_CI and engine != "django.db.backends.postgresql":
        raise pytest.UsageError("CI=true runs against PostgreSQL: set DATABASE_URL=postgres://...")


def service_missing(what: str) -> None:
    """Fail the run in CI, skip the test elsewhere."""
    if IN_CI:
        pytest.fail(f"{what} (CI=true: services are required, never skipped)", pytrace=False)
    pytest.skip(what)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis the settings point at, checked to answer PING."""
    import redis
    from django.conf import settings

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        service_missing(f"Redis is not answering at {settings.REDIS_URL}: {error}")
    return settings.REDIS_URL


@pytest.fixture(scope="session")
def database_url(django_db_setup, django_db_blocker) -> str:
    """A DATABASE_URL for subprocesses (worker, Daphne) that points at the test database."""
    from django.db import connection

    with django_db_blocker.unblock():
        connection.ensure_connection()
        conf = connection.settings_dict
    if conf["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{conf['NAME']}"
    user = conf.get("USER") or "postgres"
    password = f":{conf['PASSWORD']}" if conf.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{conf.get('HOST') or '127.0.0.1'}:{conf.get('PORT') or 5432}/{conf['NAME']}"


def subprocess_env(database_url: str, redis_url: str) -> dict[str, str]:
    """Environment for a stack process run by the tests."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        CELERY_QUEUE=TEST_QUEUE,
        CHANNELS_PREFIX=TEST_PREFIX,
        DATABASE_CONN_MAX_AGE="0",
        PYTHONPATH=str(ROOT),
    )
    return env


def wait_for_log(process: subprocess.Popen, log: Path, marker: str, timeout: float) -> None:
    """Wait until `marker` appears in the process's log, or fail with the log's tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if marker in text:
            return
        if process.poll() is not None:
            break
        time.sleep(0.2)
    tail = (log.read_text(errors="replace") if log.exists() else "")[-3000:]
    process.kill()
    pytest.fail(f"process did not print {marker!r} within {timeout}s:\n{tail}", pytrace=False)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def stack_env(database_url: str, redis_url: str) -> dict[str, str]:
    """Environment for a manage.py, worker or Daphne process started by a test."""
    return subprocess_env(database_url, redis_url)


@pytest.fixture(scope="session")
def celery_worker(database_url: str, redis_url: str, tmp_path_factory) -> Iterator[subprocess.Popen]:
    """A real Celery worker process consuming the tests' queue, on the test database."""
    import redis

    redis.Redis.from_url(redis_url).delete(TEST_QUEUE, TEST_BACKTEST_QUEUE)
    log = tmp_path_factory.mktemp("celery") / "worker.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "tradeweb", "worker", "--pool", "solo",
                "--queues", f"{TEST_QUEUE},{TEST_BACKTEST_QUEUE}", "--hostname", f"{TEST_QUEUE}@%h", "--loglevel", "INFO",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
            ],
            cwd=ROOT, env=subprocess_env(database_url, redis_url), stdout=out, stderr=subprocess.STDOUT,
        )
    wait_for_log(process, log, "ready.", timeout=60)
    process.log_path = log  # type: ignore[attr-defined]
    yield process
    stop(process)
    redis.Redis.from_url(redis_url).delete(TEST_QUEUE, TEST_BACKTEST_QUEUE)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def daphne_url(database_url: str, redis_url: str, tmp_path_factory) -> Iterator[str]:
    """The real ASGI stack (Daphne with tradeweb's websocket limits: HTTP + websockets) serving the test database,
    started as the Procfile starts it; yields its base URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("daphne") / "daphne.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tradeweb.server", "-b", "127.0.0.1", "-p", str(port), "tradeweb.asgi:application"],
            cwd=ROOT, env=subprocess_env(database_url, redis_url), stdout=out, stderr=subprocess.STDOUT,
        )
    wait_for_log(process, log, "Listening on", timeout=60)
    yield f"http://127.0.0.1:{port}"
    stop(process)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium, which `make test` installs; Playwright never downloads a browser here."""
    path = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not Path(path).exists():
        service_missing(f"Chromium is not installed at {path}: run `make test` (it installs Debian's chromium)")
    return path
