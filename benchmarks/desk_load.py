"""What a desk runs under while the switching benchmark measures it: a feed sending real candles at a steady rate,
and the CPU that the stack's processes (and whatever else runs on the machine) use meanwhile."""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from datetime import datetime
from typing import Iterator

from benchmarks.live_path import Feed
from benchmarks.live_stack import BenchmarkFailed, Workers, wait_until
from benchmarks.web_stack import Daphne


class PacedFeed(threading.Thread):
    """A feed sending real candles to one market at a steady rate (`CandleDelivery`, `desk.process_candle`, as
    run_feed sends them, resending what is not confirmed after 10 s) until stopped."""

    def __init__(self, symbol: str, rate: float, count: int) -> None:
        super().__init__(name="paced-feed", daemon=True)
        self.messages = Feed(symbol, count).messages
        self.rate = rate
        self.sent = 0
        self.last_time: datetime | None = None
        self.failure: BaseException | str | None = None
        self.stopping = threading.Event()
        self.started_at = self.stopped_at = 0.0

    def run(self) -> None:
        from django.db import connection

        from orchestrator.candles import to_utc
        from tradeweb.desk.delivery import CandleDelivery
        from tradeweb.desk.tasks import process_candle

        delivery = CandleDelivery(process_candle.delay)
        self.started_at = time.perf_counter()
        next_check = self.started_at + 1
        try:
            for n, message in enumerate(self.messages):
                if self.stopping.wait(max(0.0, self.started_at + n / self.rate - time.perf_counter())):
                    break
                delivery.send(message)
                self.sent += 1
                self.last_time = to_utc(message["time"])
                if time.perf_counter() >= next_check:
                    delivery.check()
                    next_check += 1
            else:
                self.failure = f"the feed ran out of its {len(self.messages)} candles"
        except BaseException as error:  # raised in the benchmark's thread by `stop`
            self.failure = error
        finally:
            self.stopped_at = time.perf_counter()
            connection.close()

    def stop(self) -> None:
        """Stop sending and check that the feed did not fail."""
        self.stopping.set()
        self.join(timeout=10)
        self.check()

    def check(self) -> None:
        if self.failure is not None:
            raise BenchmarkFailed(f"the feed stopped: {self.failure}")

    def achieved_rate(self) -> float:
        """Candles sent per second, from its first to its last."""
        return self.sent / max(1e-9, (self.stopped_at or time.perf_counter()) - self.started_at)


@contextmanager
def running_feed(symbol: str, rate: float, count: int) -> Iterator[PacedFeed]:
    """A PacedFeed sending for the duration of the block (at most `count` candles)."""
    feed = PacedFeed(symbol, rate, count)
    feed.start()
    try:
        yield feed
    finally:
        feed.stopping.set()
        feed.join(timeout=10)


def caught_up(feed: PacedFeed, workers: Workers) -> None:
    """Wait until every strategy taking candles has processed the last candle the feed sent."""
    from tradeweb.desk import models

    taking = models.Strategy.objects.filter(status__in=models.TAKING_CANDLES)
    wait_until(lambda: feed.last_time is not None and not taking.exclude(last_candle_time__gte=feed.last_time).exists(),
               "every strategy to process the feed's last candle", 60, workers, interval=0.05)
    no_errors(workers)


def no_errors(workers: Workers) -> None:
    """BenchmarkFailed if a strategy failed (with the workers' log)."""
    from tradeweb.desk import models

    failed = models.Strategy.objects.filter(status=models.Strategy.Status.ERROR).first()
    if failed is not None:
        raise BenchmarkFailed(f"strategy {failed.strategy_id} failed: {failed.last_error}\n{workers.tail()}")


class CpuUse:
    """Cores kept busy during a phase: by the whole machine, and by this run's processes, role by role. Whatever the
    machine did besides is other work (another test run, say), which every latency here waits behind."""

    def __init__(self, daphne: Daphne, workers: Workers) -> None:
        from django.conf import settings

        self.database = settings.DATABASES["default"]["NAME"]
        self.pids = {"Daphne": [daphne.process.pid], "workers": [p.pid for p in workers.processes],
                     "benchmark client and feed": [os.getpid()]}

    def snapshot(self) -> tuple[float, float, dict[str, dict[int, float]]]:
        import psutil

        machine = psutil.cpu_times()
        busy = sum(machine) - machine.idle - machine.iowait - getattr(machine, "steal", 0.0)
        used: dict[str, dict[int, float]] = {}
        for role, pids in self.pids.items():
            for pid in pids:
                try:
                    root = psutil.Process(pid)
                    # A worker's pool process is its child; Daphne and the workers are this process's children.
                    family = [root] if pid == os.getpid() else [root, *root.children(recursive=True)]
                    for process in family:
                        used.setdefault(role, {})[process.pid] = sum(process.cpu_times()[:2])
                except psutil.NoSuchProcess:
                    pass
        for process in psutil.process_iter(["name", "cmdline", "cpu_times"]):
            if process.info["name"] == "postgres" and self.database in " ".join(process.info["cmdline"] or []):
                used.setdefault("PostgreSQL (this database)", {})[process.pid] = sum(process.info["cpu_times"][:2])
        return time.perf_counter(), busy, used

    @contextmanager
    def measuring(self, into: dict[str, float]) -> Iterator[None]:
        """Fill `into` with the cores each role kept busy (and 'machine', 'other work') during the block."""
        started, busy, used = self.snapshot()
        yield
        ended, busy_after, used_after = self.snapshot()
        wall = ended - started
        into["machine"] = (busy_after - busy) / wall
        for role, after in used_after.items():
            before = used.get(role, {})
            into[role] = sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items()) / wall
        into["other work"] = into["machine"] - sum(v for k, v in into.items() if k != "machine")


def cores(use: dict[str, float]) -> str:
    """The cores busy, as in '1.85 of 2 cores busy: Daphne 0.16, workers 0.27, ..., other work 1.32'."""
    parts = ", ".join(f"{role} {value:.2f}" for role, value in use.items() if role != "machine")
    return f"{use['machine']:.2f} of {os.cpu_count()} cores busy: {parts}"
