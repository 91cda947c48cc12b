"""This worker process's orchestrators: built from the database, kept in an LRU cache, and its
status (cache figures, build time, memory) reported to Redis for the status page.

A cached orchestrator is used only while it matches the strategy's row (config version,
last candle, last event number); otherwise it is rebuilt from the row: positions, orders,
and the snapshot stored with its last candle.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from functools import partial
from typing import Any

import psutil
import redis
from django.conf import settings

from orchestrator.cache import OrchestratorCache
from orchestrator.engine import StrategyOrchestrator, WindDown
from strategies import build_strategy
from tradeweb.desk import models
from tradeweb.desk.redis_client import redis_client
from tradeweb.desk.storage import ChannelsEventPublisher, DjangoStrategyStore, load_state, warm_up_candles

log = logging.getLogger(__name__)

# A process reports its status at most this often, and the report expires when it stops.
STATUS_INTERVAL = 1.0
STATUS_TTL = 120


@dataclass
class BuildFigures:
    """How often this process built an orchestrator from the database, and how long that took."""

    builds: int = 0
    from_snapshot: int = 0
    seconds: float = 0.0


_cache: OrchestratorCache[str, tuple[int, StrategyOrchestrator]] | None = None
_builds = BuildFigures()
_reported_at = 0.0


def worker_name() -> str:
    """This process as the status page names it: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def orchestrator_cache() -> OrchestratorCache[str, tuple[int, StrategyOrchestrator]]:
    """This process's cache of (config version, orchestrator), made on first use."""
    global _cache
    if _cache is None:
        _cache = OrchestratorCache(settings.ORCHESTRATOR_CACHE_SIZE)
    return _cache


def forget_all() -> None:
    """Start again as a freshly started process: no cached orchestrators, no figures."""
    global _cache, _builds
    _cache = None
    _builds = BuildFigures()


def build_orchestrator(strategy: models.Strategy, before: datetime) -> StrategyOrchestrator:
    """A fresh orchestrator from the database: config, positions, orders, and the snapshot stored
    with its last candle. Under a changed config the snapshot still gives the indicators that did not
    change (the others warm up on stored candles); without a usable snapshot (a new strategy, another
    market or class) everything warms up on stored candles older than `before`, the time of the
    candle it is built for."""
    started = time.perf_counter()
    orchestrator = StrategyOrchestrator(
        strategy_id=strategy.strategy_id,
        strategy=build_strategy(strategy.strategy_class, strategy.config),
        symbol=strategy.symbol,
        timeframe=strategy.timeframe,
        capital=strategy.capital,
        store=DjangoStrategyStore(),
        publisher=ChannelsEventPublisher(),
        state=load_state(strategy),
    )
    history = partial(warm_up_candles, strategy, settings.WARM_UP_CANDLES, before)
    restored = orchestrator.restore(strategy.snapshot, history)
    if not restored:
        orchestrator.warm_up(history())
    _builds.builds += 1
    _builds.from_snapshot += restored
    _builds.seconds += time.perf_counter() - started
    return orchestrator


@dataclass(frozen=True, slots=True)
class Head:
    """Where a strategy's row says it is: enough to tell whether a cached orchestrator is current,
    read (and locked) for many strategies at once without loading their configs and snapshots."""

    strategy_id: str
    config_version: int
    last_candle_time: datetime | None
    last_sequence: int
    status: str
    wind_down: str
    account: str

    @property
    def winding_down(self) -> WindDown | None:
        """How the strategy winds down, if it is draining."""
        return WindDown(self.wind_down) if self.status == models.Strategy.Status.DRAINING else None


HEAD_COLUMNS = tuple(column.name for column in fields(Head))


def is_current(config_version: int, orchestrator: StrategyOrchestrator, strategy: models.Strategy | Head) -> bool:
    """True when a cached orchestrator saw exactly what the database holds: same config, candle and event."""
    return (
        config_version == strategy.config_version
        and orchestrator.last_candle_time == strategy.last_candle_time
        and orchestrator.sequence.last == strategy.last_sequence
    )


def orchestrator_for(strategy: models.Strategy | Head, before: datetime) -> StrategyOrchestrator:
    """The cached orchestrator if it is current, else one rebuilt from the database (a miss; a Head's
    whole row is read then)."""
    cache = orchestrator_cache()
    entry = cache.get(strategy.strategy_id, lambda e: is_current(e[0], e[1], strategy))
    if entry is not None:
        return entry[1]
    if isinstance(strategy, Head):
        strategy = models.Strategy.objects.get(strategy_id=strategy.strategy_id)
    orchestrator = build_orchestrator(strategy, before)
    cache.put(strategy.strategy_id, (strategy.config_version, orchestrator))
    return orchestrator


def status() -> dict[str, Any]:
    """This process's figures: its cache, its builds, its memory."""
    cache = orchestrator_cache()
    return {
        "worker": worker_name(),
        "cache": asdict(cache.stats) | {"hit_rate": round(cache.stats.hit_rate, 4)},
        "builds": asdict(_builds),
        "strategies": sorted(cache.keys()),
        "rss_bytes": psutil.Process().memory_info().rss,
        "reported_at": datetime.now(timezone.utc).isoformat(),
    }


def status_key(worker: str) -> str:
    return f"{settings.WORKER_STATUS_PREFIX}:{worker}"


def report_status(force: bool = False) -> None:
    """Put this process's status in Redis (at most once a second), where `manage.py orchestrators`
    and the status page read it; it expires when the process is gone. Never fails the caller."""
    global _reported_at
    now = time.monotonic()
    if not force and now - _reported_at < STATUS_INTERVAL:
        return
    _reported_at = now
    try:
        redis_client().set(status_key(worker_name()), json.dumps(status()), ex=STATUS_TTL)
    except redis.RedisError as error:
        log.warning("could not report worker status to Redis: %s", error)


def start_heartbeat(interval: float) -> threading.Thread:
    """Report this process's status now and every `interval` seconds, candles or not, so an idle worker
    stays on the status page (its report would expire after STATUS_TTL). A daemon thread: it ends
    with the process, and its report then expires."""

    def beat() -> None:
        while True:
            try:
                report_status(force=True)
            except Exception:  # a report read while a candle changes the cache: the next beat carries on
                log.exception("could not report worker status")
            time.sleep(interval)

    orchestrator_cache()  # made here, before the thread reads it
    thread = threading.Thread(target=beat, name="worker-status-heartbeat", daemon=True)
    thread.start()
    return thread


def reported_statuses() -> list[dict[str, Any]]:
    """The statuses every live worker process reported, by name."""
    client = redis_client()
    keys = sorted(client.scan_iter(match=f"{settings.WORKER_STATUS_PREFIX}:*", count=500))
    values = client.mget(keys) if keys else []
    return sorted((json.loads(v) for v in values if v), key=lambda s: s["worker"])
