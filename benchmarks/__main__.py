"""Run with `make bench`: times the core on the shipped BTC/USD month (`benchmarks.core`), then the live path
through Celery, PostgreSQL and Redis (`benchmarks.live_path`), then switching and config changes through Daphne
(`benchmarks.switching`), then the P&L page of a strategy with a long history (`benchmarks.pnl_page`), then the
dashboard with 100 strategies (`benchmarks.dashboard_page`), then candles to the browser's page
(`benchmarks.candle_to_dom`), and writes each one's section of docs/benchmarks.md."""

from __future__ import annotations

import sys

from benchmarks import candle_to_dom, core, dashboard_page, live_path, pnl_page, switching
from benchmarks.live_stack import BenchmarkFailed

STACK_BENCHMARKS = {
    "live path": live_path, "switching": switching, "P&L page": pnl_page, "dashboard": dashboard_page,
    "candle to browser": candle_to_dom,
}

if __name__ == "__main__":
    core.main()
    for name, benchmark in STACK_BENCHMARKS.items():
        try:
            benchmark.main()
        except BenchmarkFailed as failed:
            sys.exit(f"{name}: {failed}")
