"""Run with `make bench`: times the core on the shipped BTC/USD month, then the live path through Celery,
PostgreSQL and Redis (`benchmarks.live_path`), then switching and config changes through Daphne
(`benchmarks.switching`), and writes each one's section of docs/benchmarks.md."""

from __future__ import annotations

import gc
import platform
import statistics
import sys
import time
import tracemalloc
from datetime import datetime, timezone
from decimal import Decimal

from benchmarks import live_path, report, switching
from orchestrator.datasets import load_candles
from orchestrator.engine import StrategyOrchestrator
from orchestrator.ports import MemoryPublisher, MemoryStore
from strategies import build_strategy

CONFIG = {"fast_period": 10, "slow_period": 30}


def orchestrator(strategy_id: str) -> StrategyOrchestrator:
    return StrategyOrchestrator(
        strategy_id, build_strategy("sma_crossover", CONFIG), "BTC/USD", "1m", Decimal(10000),
        MemoryStore(), MemoryPublisher(),
    )


def run(candles, count: int) -> float:
    """Seconds to push every candle through `count` orchestrators."""
    runners = [orchestrator(f"bench-{n}") for n in range(count)]
    gc.collect()
    start = time.perf_counter()
    for candle in candles:
        for runner in runners:
            runner.process(candle)
    return time.perf_counter() - start


def best_of(repeats: int, candles, count: int) -> float:
    return min(run(candles, count) for _ in range(repeats))


def latencies(candles) -> list[float]:
    runner = orchestrator("latency")
    samples = []
    for candle in candles:
        start = time.perf_counter_ns()
        runner.process(candle)
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return samples


def memory_per_orchestrator(candles, count: int = 100) -> float:
    """Mean bytes held by one warmed-up orchestrator (its store keeps nothing: results are dropped)."""
    warm = candles[:500]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    runners = []
    for n in range(count):
        runner = StrategyOrchestrator(
            f"mem-{n}", build_strategy("sma_crossover", CONFIG), "BTC/USD", "1m", Decimal(10000),
            _NullStore(), _NullStore(),
        )
        runner.warm_up(warm)
        runners.append(runner)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    used = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    return used / count


class _NullStore:
    def record(self, result) -> None:
        pass

    def publish(self, events) -> None:
        pass


def main() -> None:
    candles = load_candles("BTC/USD")
    one = best_of(3, candles, 1)
    five = best_of(3, candles, 5)
    samples = latencies(candles)
    p50 = statistics.median(samples)
    p95 = statistics.quantiles(samples, n=20)[18]
    memory = memory_per_orchestrator(candles)
    rows = [
        ("candles (BTC/USD 1m, Jan 2022)", f"{len(candles):,}"),
        ("one strategy: bars per second", f"{len(candles) / one:,.0f}"),
        ("five strategies vs one: time ratio", f"{five / one:.2f}x"),
        ("per-candle latency, one strategy: p50", f"{p50 * 1000:.1f} µs"),
        ("per-candle latency, one strategy: p95", f"{p95 * 1000:.1f} µs"),
        ("memory per warmed-up orchestrator", f"{memory / 1024:.1f} KiB"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name.ljust(width)}  {value}" for name, value in rows]
    print("\n".join(lines))
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    report.write_section(
        report.CORE,
        "# Benchmarks\n\n"
        "Written by `make bench`: the in-memory engine (the code live workers run, with in-memory ports)\n"
        "on the shipped BTC/USD one-minute month, SMA crossover 10/30. Times are the best of three runs.\n\n"
        f"Measured {stamp} on {platform.machine()}, Python {sys.version.split()[0]}.\n\n"
        "| figure | value |\n| --- | --- |\n" + table + "\n",
    )


if __name__ == "__main__":
    main()
    try:
        live_path.main()
    except live_path.BenchmarkFailed as failed:
        sys.exit(f"live path: {failed}")
    try:
        switching.main()
    except switching.BenchmarkFailed as failed:
        sys.exit(f"switching: {failed}")
