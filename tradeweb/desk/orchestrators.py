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
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

import psutil
import redis
from django.conf import settings

from orchestrator.cache import OrchestratorCache
from orchestrator.engine import StrategyOrchestrator
from strategies import build_strategy
from tradeweb.desk import models
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
    with its last candle; without a usable snapshot (a new strategy, a changed config) its
    indicators warm up on stored candles older than `before`, the time of the candle it is built for."""
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
        keep_snapshots=True,
    )
    restored = orchestrator.restore(strategy.snapshot)
    if not restored:
        orchestrator.warm_up(warm_up_candles(strategy, settings.WARM_UP_CANDLES, before))
    _builds.builds += 1
    _builds.from_snapshot += restored
    _builds.seconds += time.perf_counter() - started
    return orchestrator


def is_current(config_version: int, orchestrator: StrategyOrchestrator, strategy: models.Strategy) -> bool:
    """True when a cached orchestrator saw exactly what the database holds: same config, candle and event."""
    return (
        config_version == strategy.config_version
        and orchestrator.last_candle_time == strategy.last_candle_time
        and orchestrator.sequence.last == strategy.last_sequence
    )


def orchestrator_for(strategy: models.Strategy, before: datetime) -> StrategyOrchestrator:
    """The cached orchestrator if it is current, else one rebuilt from the database (a miss)."""
    cache = orchestrator_cache()
    entry = cache.get(strategy.strategy_id, lambda e: is_current(e[0], e[1], strategy))
    if entry is not None:
        return entry[1]
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
        status_client().set(status_key(worker_name()), json.dumps(status()), ex=STATUS_TTL)
    except redis.RedisError as error:
        log.warning("could not report worker status to Redis: %s", error)


_client: tuple[int, redis.Redis] | None = None


def status_client() -> redis.Redis:
    """This process's Redis client for status reports (a forked process makes its own)."""
    global _client
    if _client is None or _client[0] != os.getpid():
        _client = (os.getpid(), redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2))
    return _client[1]


def reported_statuses() -> list[dict[str, Any]]:
    """The statuses every live worker process reported, by name."""
    client = status_client()
    keys = sorted(client.scan_iter(match=f"{settings.WORKER_STATUS_PREFIX}:*", count=500))
    values = client.mget(keys) if keys else []
    return sorted((json.loads(v) for v in values if v), key=lambda s: s["worker"])
