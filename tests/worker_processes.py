"""Processes the worker tests start, kill and start again: a private Redis and prefork Celery workers.

Each runs in its own process group, so a test can kill a pool process, a worker's main
process or the whole group, and `stop` never leaves one running.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import redis

from tests.conftest import ROOT, TEST_QUEUE, free_port, service_missing, subprocess_env, wait_for_log

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
# A warm shutdown: a SIGTERM that races a task's result keeps the pool process about 30 s (billiard waits for the
# result to be read before it lets the process go), so a clean exit may take just over STOP_TIMEOUT.
WARM_SHUTDOWN_TIMEOUT = 60.0


def bound_to_this_process(command: list[str]) -> list[str]:
    """The command, killed with this process if it dies first (pytest-timeout ends a run with os._exit, and no
    `finally` runs then), where util-linux's setpriv can arrange it."""
    if shutil.which("setpriv") is None:
        return command
    return ["setpriv", "--pdeathsig", "KILL", "--", *command]


class RedisServer:
    """A redis-server of the test's own on a free port, without persistence: a restart loses every message."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = self.directory / f"redis-{self.starts}.log"
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                bound_to_this_process([
                    "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--daemonize", "no", "--dir", str(self.directory),
                ]),
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.kill()
                    pytest.fail(f"redis-server did not answer on port {self.port}:\n{log.read_text(errors='replace')[-2000:]}")
                time.sleep(0.05)

    def kill(self) -> None:
        """Gone at once, with every message it held (no persistence)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self, down_for: float) -> None:
        """Killed, and started again empty on the same port after `down_for` seconds."""
        self.kill()
        time.sleep(down_for)
        self.start()


class Worker:
    """One `celery worker --pool prefork` (main process and its pool) consuming `queue`, in its own process group."""

    def __init__(self, name: str, queue: str, env: dict[str, str], directory: Path, concurrency: int = 1) -> None:
        self.name = name
        self.queue = queue
        self.env = env
        self.directory = directory
        self.concurrency = concurrency
        self.process: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self.starts = 0

    @property
    def session_name(self) -> str:
        """The application_name of this start's database sessions (PostgreSQL), which names them in
        pg_stat_activity: a test sees at a glance which worker is in the middle of a candle."""
        return f"{self.queue}-{self.name}-{self.starts}"[-63:]

    def launch(self) -> None:
        """Start the worker without waiting for it (`wait_ready` does)."""
        self.starts += 1
        self.log_path = self.directory / f"{self.name}-{self.starts}.log"
        env = dict(self.env)
        if env.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
            url = env["DATABASE_URL"]
            env["DATABASE_URL"] = f"{url}{'&' if '?' in url else '?'}application_name={self.session_name}"
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(
                bound_to_this_process([
                    sys.executable, "-m", "celery", "-A", "tradeweb", "worker", "--pool", "prefork",
                    "--concurrency", str(self.concurrency), "--queues", self.queue,
                    "--hostname", f"{self.queue}-{self.name}@%h", "--loglevel", "INFO",
                    "--without-gossip", "--without-mingle", "--without-heartbeat",
                ]),
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def wait_ready(self) -> None:
        """Wait until the worker consumes its queue."""
        wait_for_log(self.process, self.log_path, "ready.", timeout=START_TIMEOUT)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def pool(self) -> list[psutil.Process]:
        """The pool processes the main process runs now (none while it replaces a dead one)."""
        try:
            return psutil.Process(self.process.pid).children()
        except psutil.NoSuchProcess:
            return []

    def kill_pool_process(self) -> int:
        """kill -9 one pool process; the main process starts another. Returns its pid."""
        deadline = time.monotonic() + START_TIMEOUT
        while not (children := self.pool()):
            if time.monotonic() > deadline:
                pytest.fail(f"worker {self.name} has no pool process to kill:\n{self.log_tail()}")
            time.sleep(0.05)
        os.kill(children[0].pid, signal.SIGKILL)
        return children[0].pid

    def kill_main_process(self) -> None:
        """kill -9 the main process alone (its pool processes die with it: Celery sets their parent-death signal)."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def kill_process_group(self) -> None:
        """kill -9 the main process and its pool processes at once."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def pause(self) -> None:
        """SIGSTOP the main process and its pool: nothing of the queue is taken until `resume`."""
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT what `pause` stopped."""
        os.killpg(self.process.pid, signal.SIGCONT)

    def terminate(self, timeout: float = WARM_SHUTDOWN_TIMEOUT) -> int:
        """SIGTERM (warm shutdown: the tasks under way finish); returns the exit code."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker {self.name} did not exit within {timeout}s of SIGTERM:\n{self.log_tail()}")

    def group(self) -> list[psutil.Process]:
        """The processes still in this worker's process group (its main process and pool, or what is left)."""
        members = []
        for process in psutil.process_iter():
            try:
                if os.getpgid(process.pid) == self.process.pid and process.status() != psutil.STATUS_ZOMBIE:
                    members.append(process)
            except (ProcessLookupError, psutil.NoSuchProcess):
                continue
        return members

    def stop(self) -> None:
        """Nothing of this worker left running, however it stands: what is left of its group is killed."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        for process in self.group():  # pool processes of a main process killed alone, should any outlive it
            process.kill()
        psutil.wait_procs(self.group(), timeout=STOP_TIMEOUT)

    def log_tail(self, size: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-size:] if self.log_path and self.log_path.exists() else ""


def require_postgresql_and_redis_server(who: str) -> None:
    """Skip (fail in CI) unless the tests run on PostgreSQL, where several workers write side by side and
    sessions show which worker is mid-candle, and redis-server is installed for a Redis of their own."""
    from django.db import connection

    if connection.vendor != "postgresql":
        service_missing(f"{who} need PostgreSQL (several workers write at once): set DATABASE_URL")
    if shutil.which("redis-server") is None:
        service_missing(f"redis-server is not installed: {who} start a Redis of their own")


@dataclass
class WorkerStack:
    """A private Redis, the workers on it, and the queue they consume; all stopped by `stop`.
    `extra_env` is added to the workers' environment (settings read from it)."""

    directory: Path
    database_url: str
    redis: RedisServer
    extra_env: dict[str, str] = field(default_factory=dict)
    queue: str = field(default_factory=lambda: f"{TEST_QUEUE}-stack-{uuid.uuid4().hex[:8]}")
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
        env.update(self.extra_env)
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

    def idle(self) -> bool:
        """No message waits in the queue, and none a worker took is unacknowledged (kombu keeps those in
        the `unacked` hash until the task is done): no task is under way."""
        client = redis.Redis.from_url(self.redis.url)
        return client.llen(self.queue) == 0 and client.hlen("unacked") == 0

    def terminate_all(self) -> list[int]:
        """SIGTERM to every worker at once (warm shutdown: the tasks under way finish, the queued ones stay
        queued); returns their exit codes."""
        for worker in self.workers:
            worker.process.send_signal(signal.SIGTERM)
        codes = []
        for worker in self.workers:
            try:
                codes.append(worker.process.wait(timeout=WARM_SHUTDOWN_TIMEOUT))
            except subprocess.TimeoutExpired:
                pytest.fail(f"worker {worker.name} did not exit within {WARM_SHUTDOWN_TIMEOUT}s of SIGTERM:\n{worker.log_tail()}")
        return codes

    def replace_all(self) -> list[Worker]:
        """Fresh workers in place of every one (gone), started side by side; returns them consuming."""
        fresh = [self.replace(worker, wait=False) for worker in list(self.workers)]
        for worker in fresh:
            worker.wait_ready()
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
