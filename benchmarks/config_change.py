"""Config to candle: how long after a config is saved in the admin the strategy processes a candle with it.

A superuser saves the strategy's change form over HTTP, as a browser does, so the figure holds however a save is
applied (today the snapshot is dropped and the rebuilt orchestrator warms up). A thread reads the strategy's row
every 2 ms; the first candle under the new config is the one its last_candle_time moves to after the new
config_version appeared.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from benchmarks.desk_load import PacedFeed
from benchmarks.live_stack import BenchmarkFailed, Workers, wait_until
from benchmarks.web_stack import Browser


class Row(NamedTuple):
    """One state of a strategy's row, as the watch saw it, and when (perf_counter)."""

    seen: float
    config_version: int
    last_candle_time: datetime | None
    last_sequence: int
    status: str


class RowWatch(threading.Thread):
    """Notes every change of one strategy's row (config version, last candle, last event number, status), with
    when it was seen: read every 2 ms on its own connection."""

    def __init__(self, pk: int) -> None:
        super().__init__(name="row-watch", daemon=True)
        self.pk = pk
        self.rows: list[Row] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.failure: BaseException | None = None

    def run(self) -> None:
        from django.db import connection

        from tradeweb.desk import models

        # Plain SQL on one cursor: the ORM's own work, 500 times a second, would take a good part of a core.
        query = f"SELECT {', '.join(Row._fields[1:])} FROM {models.Strategy._meta.db_table} WHERE id = %s"
        last = None
        try:
            with connection.cursor() as cursor:
                while not self.stopping.wait(0.002):
                    cursor.execute(query, [self.pk])
                    values = tuple(cursor.fetchone())
                    if values != last:
                        with self.lock:
                            self.rows.append(Row(time.perf_counter(), *values))
                        last = values
        except BaseException as error:  # handed to the benchmark's thread
            self.failure = error
        finally:
            connection.close()

    def since(self, started: float) -> list[Row]:
        """The states seen from `started` on (and the one the row was in then)."""
        if self.failure is not None:
            raise BenchmarkFailed(f"watching the strategy's row failed: {self.failure}")
        with self.lock:
            before = [row for row in self.rows if row.seen < started][-1:]
            return before + [row for row in self.rows if row.seen >= started]


@dataclass
class ConfigSave:
    """One timed config change: seconds from before the POST until its first candle was processed, and the split."""

    total: float
    save: float  # the POST, until its answer
    wait: float  # from the answer until the first candle taken under the new config was stored
    processing: float  # from then (or the answer, if it was stored earlier) until the row showed it processed


@dataclass
class ConfigSaves:
    """The timed saves, and the saves that wrote an older head back over the row (see `stale_head`)."""

    timed: list[ConfigSave]
    stale: int  # saves that moved the row's last candle or event number back
    failed: int  # of those, saves after which the strategy failed (and was activated again, untimed)


def stale_head(rows: list[Row], version: int) -> bool:
    """Whether the save moved the row back: the admin's form writes every field of the row it read when the POST
    began, so a candle a worker stored in between is undone (last candle, event number, equity)."""
    old = [row for row in rows if row.config_version < version]
    saved = next(row for row in rows if row.config_version >= version)
    return any(
        row.last_sequence > saved.last_sequence
        or (row.last_candle_time is not None and (saved.last_candle_time is None or row.last_candle_time > saved.last_candle_time))
        for row in old
    )


def config_saves(admin: Browser, workers: Workers, feed: PacedFeed, strategy_id: str, slow_periods: tuple[int, ...],
                 count: int, pause: random.Random, pauses: tuple[float, float]) -> ConfigSaves:
    """Saves of the strategy's change form, its slow period taking `slow_periods` in turn, until `count` are timed to
    their first candle; `pauses` (seconds, drawn from `pause`) between two. A save after which the strategy fails is
    counted, the strategy activated again from the desk, and the save made again."""
    from tradeweb.desk import models

    strategy = models.Strategy.objects.get(strategy_id=strategy_id)
    watch = RowWatch(strategy.pk)
    watch.start()
    outcome = ConfigSaves([], 0, 0)
    try:
        wait_until(lambda: bool(watch.rows), "the row watch to start", 10)
        for n in range(3 * count):
            fields = admin.change_form(strategy.pk)
            config = json.loads(fields["config"])
            config["slow_period"] = slow_periods[n % len(slow_periods)]
            fields["config"] = json.dumps(config)
            version = watch.since(time.perf_counter())[-1].config_version + 1
            started = time.perf_counter()
            wall_started = time.time()
            admin.save_change_form(strategy.pk, fields)
            answered = time.perf_counter()

            def settled() -> bool:
                new = [row for row in watch.since(started) if row.config_version >= version]
                return bool(new) and (new[-1].status == models.Strategy.Status.ERROR
                                      or new[-1].last_candle_time != new[0].last_candle_time)

            wait_until(settled, "the strategy to process a candle with its new config", 30, workers, interval=0.002)
            feed.check()
            rows = watch.since(started)
            new = [row for row in rows if row.config_version >= version]
            if new[0].config_version != version:
                raise BenchmarkFailed(f"config_version went from {version - 1} to {new[0].config_version} in one save")
            outcome.stale += stale_head(rows, version)
            if new[-1].status == models.Strategy.Status.ERROR:
                outcome.failed += 1
                activate_again(admin, strategy_id, watch, workers)
                continue
            saved, done = new[0], new[-1]
            first = models.Candle.objects.get(symbol=strategy.symbol, timeframe=strategy.timeframe,
                                              previous_time=saved.last_candle_time)
            stored = started + (first.received_at.timestamp() - wall_started)
            outcome.timed.append(ConfigSave(
                total=done.seen - started, save=answered - started, wait=max(0.0, stored - answered),
                processing=done.seen - max(stored, answered),
            ))
            if len(outcome.timed) == count:
                break
            time.sleep(pause.uniform(*pauses))
        else:
            raise BenchmarkFailed(f"only {len(outcome.timed)} of {3 * count} config saves reached a candle")
    finally:
        watch.stopping.set()
        watch.join(timeout=5)
    return outcome


def activate_again(admin: Browser, strategy_id: str, watch: RowWatch, workers: Workers) -> None:
    """Activate the failed strategy from the desk, as an operator would, and wait until it takes a candle again."""
    from tradeweb.desk import models

    started = time.perf_counter()
    admin.switch_to(strategy_id)

    def trading() -> bool:
        rows = [row for row in watch.since(started) if row.status == models.Strategy.Status.ACTIVE]
        return len({row.last_candle_time for row in rows}) > 1

    wait_until(trading, f"{strategy_id} to take a candle after it was activated again", 30, workers)
