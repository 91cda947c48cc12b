"""Print the worker processes' orchestrator caches (from Redis) and each strategy's lag behind its market."""

from __future__ import annotations

from datetime import datetime

from django.core.management.base import BaseCommand, CommandError

from tradeweb.desk.worker_status import DeskStatus, StrategyLag, WorkerStatus, desk_status

MISSING = "-"


def text_table(headers: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows)]
    lines = [headers, *rows]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines)


def shown_time(time: datetime | None) -> str:
    """A UTC time to the second, or a dash when there is none."""
    return f"{time:%Y-%m-%d %H:%M:%S}" if time else MISSING


def worker_row(worker: WorkerStatus) -> list[str]:
    """A worker process's cells, in the order of WORKER_HEADERS."""
    return [
        worker.worker,
        f"{worker.cached}/{worker.capacity}",
        str(worker.hits),
        str(worker.misses),
        worker.hit_rate_text,
        str(worker.evictions),
        str(worker.stale),
        f"{worker.builds} ({worker.builds_from_snapshot})",
        worker.build_time_text,
        f"{worker.rss_mib:.1f}",
        worker.age_text,
    ]


WORKER_HEADERS = [
    "worker", "cached", "hits", "misses", "hit rate", "evictions", "stale", "builds (snapshot)",
    "build time", "RSS MiB", "reported",
]


def strategy_row(strategy: StrategyLag) -> list[str]:
    """A strategy's cells, in the order of STRATEGY_HEADERS; its last worker is marked when it no longer reports."""
    worker = strategy.last_worker or MISSING
    if strategy.last_worker and strategy.last_worker_reporting is False:
        worker += " (not reporting)"
    return [
        strategy.strategy_id,
        strategy.status,
        strategy.market,
        worker,
        shown_time(strategy.last_candle_time),
        shown_time(strategy.newest_candle_time),
        strategy.lag_text,
        "LAGGING" if strategy.lagging else "",
    ]


STRATEGY_HEADERS = ["strategy", "status", "market", "last worker", "last candle (UTC)", "newest candle (UTC)", "behind", ""]


class Command(BaseCommand):
    help = (
        "Show each worker process's orchestrator cache as it reported it to Redis (cached/capacity, hits, "
        "misses, evictions, stale rebuilds, builds, build time, memory, age of the report), then each "
        "strategy's last worker and its lag behind the newest stored candle of its market. "
        "Exits with an error when Redis cannot be read."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--active", action="store_true", help="Only active strategies.")

    def handle(self, *args, **options) -> None:
        status = desk_status(active_only=options["active"])
        self.write_workers(status)
        self.stdout.write("")
        self.write_strategies(status, options["active"])
        if status.unavailable:
            raise CommandError(status.unavailable)

    def write_workers(self, status: DeskStatus) -> None:
        checked = f"{status.checked_at:%Y-%m-%d %H:%M:%S} UTC"
        if status.workers is None:
            self.stdout.write(f"Worker processes at {checked}: unknown, Redis cannot be read")
        elif not status.workers:
            self.stdout.write(f"Worker processes at {checked}: {status.no_worker_reported}")
        else:
            self.stdout.write(f"Worker processes at {checked}: {len(status.workers)} reporting")
            self.stdout.write(text_table(WORKER_HEADERS, [worker_row(w) for w in status.workers]))

    def write_strategies(self, status: DeskStatus, active_only: bool) -> None:
        lagging = sum(s.lagging for s in status.strategies)
        which = "Active strategies" if active_only else "Strategies"
        self.stdout.write(f"{which}: {len(status.strategies)}, {lagging} lagging")
        if status.strategies:
            self.stdout.write(text_table(STRATEGY_HEADERS, [strategy_row(s) for s in status.strategies]))
