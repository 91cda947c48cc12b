"""Run with `make bench`: times the core on the shipped BTC/USD month (`benchmarks.core`), then the live path
through Celery, PostgreSQL and Redis (`benchmarks.live_path`), then switching and config changes through Daphne
(`benchmarks.switching`), then the P&L page of a strategy with a long history (`benchmarks.pnl_page`), then the
dashboard with 100 strategies (`benchmarks.dashboard_page`), and writes each one's section of docs/benchmarks.md."""

from __future__ import annotations

import sys

from benchmarks import core, dashboard_page, live_path, pnl_page, switching

if __name__ == "__main__":
    core.main()
    try:
        live_path.main()
    except live_path.BenchmarkFailed as failed:
        sys.exit(f"live path: {failed}")
    try:
        switching.main()
    except switching.BenchmarkFailed as failed:
        sys.exit(f"switching: {failed}")
    try:
        pnl_page.main()
    except pnl_page.BenchmarkFailed as failed:
        sys.exit(f"P&L page: {failed}")
    try:
        dashboard_page.main()
    except dashboard_page.BenchmarkFailed as failed:
        sys.exit(f"dashboard: {failed}")
