"""What the worker processes and the strategies look like from outside: each process's orchestrator
cache as it reported it to Redis, and how far each strategy lags behind its market's newest stored
candle. `manage.py orchestrators` prints it and the staff status page renders it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import redis
from django.conf import settings

from orchestrator.candles import TIMEFRAMES
from tradeweb.desk import models
from tradeweb.desk.orchestrators import STATUS_TTL, reported_statuses

# An active strategy more than this many candles behind its market's newest stored candle is lagging:
# a strategy that keeps up is at most one behind, while the advance its newest candle asked for is queued or under way.
LAGGING_AFTER_CANDLES = 1

NO_WORKER_REPORTED = f"no worker process has reported in the last {STATUS_TTL // 60} minutes"


class WorkerStatusUnavailable(RuntimeError):
    """Redis, where the worker processes report their status, could not be read."""


@dataclass(frozen=True)
class Lag:
    """How far a strategy's last candle lies behind its market's newest stored candle."""

    candles: int
    time: timedelta

    @property
    def text(self) -> str:
        return f"{self.candles} candle{'' if self.candles == 1 else 's'} ({format_duration(self.time)})"


def lag_behind(last_candle_time: datetime | None, newest_candle_time: datetime | None, timeframe: str) -> Lag | None:
    """The lag of a strategy at `last_candle_time` on a market whose newest stored candle is at
    `newest_candle_time`, in whole candles of `timeframe` and as time; None before either exists."""
    if last_candle_time is None or newest_candle_time is None:
        return None
    behind = max(newest_candle_time - last_candle_time, timedelta(0))
    return Lag(candles=behind // TIMEFRAMES[timeframe], time=behind)


def format_duration(duration: timedelta) -> str:
    """A duration in its two largest units, as an operator reads it: 45s, 20m, 2h 5m, 1d 3h."""
    seconds = int(duration.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count or parts:
            parts.append((count, unit))
    return " ".join(f"{count}{unit}" for count, unit in parts[:2] if count)


@dataclass(frozen=True)
class WorkerStatus:
    """One worker process's orchestrator cache, builds and memory, as it last reported them."""

    worker: str
    cached: int
    capacity: int
    hits: int
    misses: int
    evictions: int
    stale: int
    hit_rate: float
    builds: int
    builds_from_snapshot: int
    build_seconds: float
    rss_bytes: int
    reported_at: datetime
    age: timedelta

    @classmethod
    def from_report(cls, report: dict[str, Any], now: datetime) -> WorkerStatus:
        """Read the JSON a worker process put in Redis (`orchestrators.status`)."""
        cache, builds = report["cache"], report["builds"]
        reported_at = datetime.fromisoformat(report["reported_at"])
        return cls(
            worker=report["worker"],
            cached=cache["size"],
            capacity=cache["capacity"],
            hits=cache["hits"],
            misses=cache["misses"],
            evictions=cache["evictions"],
            stale=cache["stale"],
            hit_rate=cache["hit_rate"],
            builds=builds["builds"],
            builds_from_snapshot=builds["from_snapshot"],
            build_seconds=builds["seconds"],
            rss_bytes=report["rss_bytes"],
            reported_at=reported_at,
            age=max(now - reported_at, timedelta(0)),
        )

    @property
    def rss_mib(self) -> float:
        return self.rss_bytes / 2**20

    @property
    def hit_rate_text(self) -> str:
        return f"{self.hit_rate:.1%}"

    @property
    def build_time_text(self) -> str:
        return f"{self.build_seconds:.2f} s"

    @property
    def age_text(self) -> str:
        return f"{format_duration(self.age)} ago"


@dataclass(frozen=True)
class StrategyLag:
    """A strategy, the worker process that last processed it, and its lag behind its market."""

    strategy_id: str
    status: str
    symbol: str
    timeframe: str
    last_worker: str
    last_worker_reporting: bool | None  # None while Redis cannot be read
    last_candle_time: datetime | None
    newest_candle_time: datetime | None
    lag: Lag | None

    @property
    def market(self) -> str:
        return f"{self.symbol} {self.timeframe}"

    @property
    def lagging(self) -> bool:
        """Taking candles (active or draining), and more than LAGGING_AFTER_CANDLES behind (or not started while its market has candles);
        a dormant strategy is not expected to keep up: activating it resumes it at the market."""
        if self.status not in models.TAKING_CANDLES or self.newest_candle_time is None:
            return False
        return self.lag is None or self.lag.candles > LAGGING_AFTER_CANDLES

    @property
    def lag_text(self) -> str:
        if self.newest_candle_time is None:
            return "no candle stored"
        if self.lag is None:
            return "no candle processed"
        return self.lag.text


@dataclass(frozen=True)
class DeskStatus:
    """Both tables of the status page; `workers` is None and `unavailable` says why when Redis could not be read."""

    workers: list[WorkerStatus] | None
    strategies: list[StrategyLag]
    unavailable: str
    checked_at: datetime

    @property
    def no_worker_reported(self) -> str:
        """What to say when Redis answered but holds no report."""
        return NO_WORKER_REPORTED


def reported_workers(now: datetime) -> list[WorkerStatus]:
    """Every worker process whose report has not expired, by name; WorkerStatusUnavailable if Redis cannot be read."""
    try:
        reports = reported_statuses()
    except redis.RedisError as error:
        raise WorkerStatusUnavailable(
            f"cannot read the worker processes' status: Redis at {redis_location()} is unreachable ({error}); "
            "check that Redis runs and that REDIS_URL points at it"
        ) from error
    return [WorkerStatus.from_report(report, now) for report in reports]


def redis_location() -> str:
    """Host, port and database of REDIS_URL, without the password it may hold."""
    url = urlsplit(settings.REDIS_URL)
    return f"{url.hostname or 'localhost'}:{url.port or 6379}{url.path or '/0'}"


def newest_candle_times(markets: set[tuple[str, str]]) -> dict[tuple[str, str], datetime]:
    """The newest stored candle of each market that has one (one indexed look-up per market)."""
    newest = {}
    for symbol, timeframe in markets:
        time = (
            models.Candle.objects.filter(symbol=symbol, timeframe=timeframe)
            .order_by("-time").values_list("time", flat=True).first()
        )
        if time is not None:
            newest[(symbol, timeframe)] = time
    return newest


def strategy_lags(active_only: bool = False, reporting: set[str] | None = None) -> list[StrategyLag]:
    """Every strategy (or only the active ones) with its lag; `reporting` names the live worker processes."""
    rows = models.Strategy.objects.order_by("strategy_id")
    if active_only:
        rows = rows.filter(status=models.Strategy.Status.ACTIVE)
    strategies = list(
        rows.only("strategy_id", "status", "symbol", "timeframe", "last_worker", "last_candle_time")
    )
    newest = newest_candle_times({(s.symbol, s.timeframe) for s in strategies})
    return [
        StrategyLag(
            strategy_id=s.strategy_id,
            status=s.status,
            symbol=s.symbol,
            timeframe=s.timeframe,
            last_worker=s.last_worker,
            last_worker_reporting=None if reporting is None else s.last_worker in reporting,
            last_candle_time=s.last_candle_time,
            newest_candle_time=newest.get((s.symbol, s.timeframe)),
            lag=lag_behind(s.last_candle_time, newest.get((s.symbol, s.timeframe)), s.timeframe),
        )
        for s in strategies
    ]


def desk_status(active_only: bool = False, now: datetime | None = None) -> DeskStatus:
    """The worker processes' reports and the strategies' lags, read now; a Redis outage leaves the
    strategies readable and says what failed."""
    now = now or datetime.now(timezone.utc)
    try:
        workers: list[WorkerStatus] | None = reported_workers(now)
        unavailable = ""
    except WorkerStatusUnavailable as error:
        workers, unavailable = None, str(error)
    reporting = {w.worker for w in workers} if workers is not None else None
    return DeskStatus(workers, strategy_lags(active_only, reporting), unavailable, now)
