"""The dashboard with 100 strategies: server time of the page a trader keeps open all day, on a desk seeded through
the live path with days of real candles (fills, positions, orders, events and journal as workers write them).

Seeding: 100 strategies (SMA crossovers and RSI mean reversions in turn, periods varied, stops and targets; a few
with a drawdown limit tight enough to halt) on four markets (BTC/USD and GBP/USD one-minute, 40 each; BTC/USD
five-minute and GBP/USD fifteen-minute, 10 each), created before their candles; the real candles of SEED_DAYS
days stored as the feed stores them (`receive_candle`) and every market advanced over them by `advance_market`,
as a worker does. Then one strategy in ten is switched off by a user (draining or dormant).

Timing: in a fresh process of its own (as a web process, without the seeding's objects in memory), a logged-in
user with the control permission GETs the dashboard through Django's request handler (middleware, view, queries,
template; no network and no ASGI server), WARM_UP times untimed and REQUESTS times timed, DEBUG off; p50 and p95
of those. The portfolio table partial and one strategy card partial
(what the page polls and what an event refreshes) are timed the same way. The figures alone
(`strategy_figures.figures` and `portfolio.table`, the queries and the Python around them) are timed apart, so
the template's share shows.

`python -m benchmarks` runs it last; `python -m benchmarks.dashboard_page` runs it alone (replacing its section of
docs/benchmarks.md), and `--profile` prints where a dashboard request's time goes instead. Its database is the
benchmarks' (`BENCH_DATABASE_URL`, default tradeweb_bench), migrated afresh and emptied after.
"""

from __future__ import annotations

import cProfile
import json
import os
import statistics
import subprocess
import sys
import time
from decimal import Decimal

from benchmarks import live_stack, report
from benchmarks.live_stack import BenchmarkFailed
from orchestrator.datasets import load_candles

HEADING = "## Dashboard"

# (symbol, timeframe, strategies): 100 in all.
MARKETS = (("BTC/USD", "1m", 40), ("GBP/USD", "1m", 40), ("BTC/USD", "5m", 10), ("GBP/USD", "15m", 10))
SEED_DAYS = 3
HALTING = 5  # strategies with a drawdown limit tight enough to halt them
SWITCHED_OFF_EVERY = 10  # one strategy in ten is switched off by a user after the candles
WARM_UP = 5
REQUESTS = 40
TARGET_MS = 300.0  # p95 of the dashboard's server time with 100 strategies (the target)


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of the values lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(share * len(ordered)) - 1))]


def add_strategies() -> None:
    """The 100 strategies, created before any candle (so every candle stored after is on their curves)."""
    from orchestrator.config import config_to_json
    from strategies import parse_strategy_config
    from tradeweb.desk import models

    number = 0
    for symbol, timeframe, count in MARKETS:
        for n in range(count):
            if n % 2 == 0:
                strategy_class = "sma_crossover"
                config = {"fast_period": 5 + n // 2 % 6, "slow_period": 20 + n // 2 % 11, "allow_short": n % 4 == 0}
            else:
                strategy_class, config = "rsi_mean_reversion", {"rsi_period": 10 + n // 2 % 8}
            config |= {"stop_loss_pct": "0.004", "take_profit_pct": "0.006"} if symbol == "BTC/USD" else \
                {"stop_loss_pct": "0.0006", "take_profit_pct": "0.0009"}
            if number < HALTING:
                config["max_drawdown_pct"] = "0.002"
            models.Strategy.objects.create(
                strategy_id=f"{symbol.replace('/', '').lower()}-{timeframe}-{n:02d}", name=f"{symbol} {timeframe} #{n}",
                strategy_class=strategy_class, symbol=symbol, timeframe=timeframe,
                status=models.Strategy.Status.ACTIVE, capital=Decimal(10000),
                config=config_to_json(parse_strategy_config(strategy_class, config)),
            )
            number += 1


def seed() -> dict[str, int]:
    """The strategies, SEED_DAYS of each market's real candles taken through the live path, some strategies switched
    off after; returns how many rows of each kind the desk holds."""
    from django.contrib.auth.models import Permission, User
    from django.db import connection

    from orchestrator.candles import TIMEFRAMES
    from tradeweb.desk import models, orchestrators
    from tradeweb.desk.control import set_active
    from tradeweb.desk.live import advance_market
    from tradeweb.desk.market_data import receive_candle

    add_strategies()
    for symbol, timeframe, _ in MARKETS:
        count = SEED_DAYS * 24 * 60 * 60 // int(TIMEFRAMES[timeframe].total_seconds())
        for candle in load_candles(symbol, timeframe, limit=count):
            status, _, reason = receive_candle(candle.to_mapping())
            if status != "new":
                raise BenchmarkFailed(f"a {symbol} {timeframe} candle was not stored ({status}): {reason}")
        outcome = advance_market(symbol, timeframe, seconds=3600)
        if outcome.failed or outcome.more:
            raise BenchmarkFailed(f"{symbol} {timeframe}: strategies {outcome.failed} failed, or candles were left")
    orchestrators.forget_all()
    operator = User.objects.create_user("operator", password=None)
    operator.user_permissions.add(Permission.objects.get(codename="control_strategy", content_type__app_label="desk"))
    ids = list(models.Strategy.objects.order_by("strategy_id").values_list("strategy_id", flat=True))
    for strategy_id in ids[::SWITCHED_OFF_EVERY]:
        set_active(strategy_id, operator, False)
    # The planner's statistics, as autovacuum keeps them on a desk that has run for days.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {
        "candles": models.Candle.objects.count(), "fills": models.Fill.objects.count(),
        "positions": models.Position.objects.count(), "events": models.Event.objects.count(),
        "journal lines": models.JournalEntry.objects.count(),
        "halted": sum(1 for s in models.Strategy.objects.all() if s.halted_reason),
        "switched off": models.Strategy.objects.exclude(status=models.Strategy.Status.ACTIVE).count(),
    }


def timed(request, times: int) -> list[float]:
    """Milliseconds of each of `times` calls of `request`."""
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        request()
        spent.append((time.perf_counter() - started) * 1000)
    return spent


def logged_in_client():
    """A test client of the operator's, over HTTPS to an allowed host as production's settings want."""
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client(HTTP_HOST="localhost")
    client.force_login(User.objects.get(username="operator"))
    return client


def get(client, path: str, expected: int = 200):
    """A GET that must answer `expected`, with what it answered."""
    response = client.get(path, secure=True)
    if response.status_code != expected:
        raise BenchmarkFailed(f"GET {path} answered {response.status_code}, not {expected}")
    return response


def timings() -> dict:
    """Time the pages on the seeded desk, in this process (a fresh one, as a web process is: see `measure`)."""
    from django.db import connection
    from django.urls import reverse

    from tradeweb.desk import models, portfolio, strategy_figures

    client = logged_in_client()
    dashboard = reverse("dashboard")
    table = reverse("portfolio_table") + "?sort=pnl_today&order=desc"
    card = reverse("strategy_card", args=[models.Strategy.objects.order_by("strategy_id").first().strategy_id])
    for path in (dashboard, table, card):
        timed(lambda: get(client, path), WARM_UP)
    queries = []
    # Counted as they go out: the query log is reset when a request starts.
    with connection.execute_wrapper(lambda execute, sql, *args: queries.append(sql) or execute(sql, *args)):
        page = get(client, dashboard).content.decode()
    if page.count('class="card status-') != 100:
        raise BenchmarkFailed("the dashboard does not show the 100 strategies' cards")

    def figures() -> None:
        strategies = list(models.Strategy.objects.order_by("account", "symbol", "strategy_id"))
        portfolio.table(list(strategy_figures.figures(strategies).values()), portfolio.TableChoice())

    return {
        "dashboard": timed(lambda: get(client, dashboard), REQUESTS),
        "table": timed(lambda: get(client, table), REQUESTS),
        "card": timed(lambda: get(client, card), REQUESTS),
        "figures": timed(figures, REQUESTS),
        "queries": len(queries),
        "page_bytes": len(page.encode()),
    }


def measure() -> list[tuple[str, str]]:
    """Seed the desk, then time its pages in a fresh process of its own: the seeding leaves this one's memory full
    of objects that every garbage collection would walk again, which a web process does not carry. The figures
    as (name, value) rows."""
    started = time.perf_counter()
    seeded = seed()
    seeding = time.perf_counter() - started
    child = subprocess.run(
        [sys.executable, "-m", "benchmarks.dashboard_page", "--timings"], cwd=live_stack.ROOT, env=dict(os.environ),
        capture_output=True, text=True,
    )
    if child.returncode != 0:
        raise BenchmarkFailed(f"the timing process failed:\n{child.stderr[-3000:]}")
    times = json.loads(child.stdout.splitlines()[-1])
    p95 = percentile(times["dashboard"], 0.95)

    def spread(values: list[float]) -> str:
        return f"p50 {statistics.median(values):.1f} ms, p95 {percentile(values, 0.95):.1f} ms"

    return [
        ("desk seeded through the live path", f"100 strategies on 4 markets, {SEED_DAYS} days of candles: "
         + ", ".join(f"{count:,} {name}" for name, count in seeded.items()) + f"; in {seeding:.0f} s"),
        ("dashboard, 100 strategies: server time", f"{spread(times['dashboard'])}; target p95 under {TARGET_MS:.0f} ms: "
         f"{'met' if p95 < TARGET_MS else 'not met'}"),
        ("dashboard: queries per request", f"{times['queries']} (the same with 1 strategy or 100)"),
        ("dashboard: page size", f"{times['page_bytes'] / 1024:.0f} KiB"),
        ("figures alone (strategy_figures.figures + portfolio.table, no template)", spread(times["figures"])),
        ("portfolio table partial (sorted by P&L today)", spread(times["table"])),
        ("one strategy card partial", spread(times["card"])),
    ]


def section(rows: list[tuple[str, str]], conditions: str) -> str:
    """The dashboard's part of docs/benchmarks.md."""
    about = (
        "Written by `make bench` last (alone: `python -m benchmarks.dashboard_page`). A desk of 100 strategies on "
        "four markets (BTC/USD and GBP/USD 1m with 40 each, BTC/USD 5m and GBP/USD 15m with 10 each; SMA crossovers "
        f"and RSI mean reversions in turn, stops and targets, {HALTING} with a drawdown limit that halts them), seeded "
        f"through the live path: {SEED_DAYS} days of each market's real candles stored as the feed stores them and "
        "taken by `advance_market` as a worker takes them; then one strategy in ten switched off by a user, and the "
        "planner's statistics gathered (ANALYZE, as autovacuum keeps them). In a fresh process (as a web process, "
        "without the seeding's objects in memory), a logged-in user with the control permission GETs each page "
        "through Django's request handler (middleware, view, queries, template; no network, no ASGI server), DEBUG "
        f"off, on PostgreSQL: {WARM_UP} untimed, then {REQUESTS} timed; p50 and p95. Sparklines, P&L today and the combined "
        "chart come from each market's last 24 hours sampled per quarter-hour (`tradeweb/desk/equity_samples.py`)."
    )
    return report.section(HEADING, about, conditions, rows)


def main() -> None:
    """Seed the desk, time the dashboard and write its section of docs/benchmarks.md."""
    live_stack.measure_and_write(HEADING, measure, section)


def profile() -> None:
    """Print where a dashboard request's time goes with 100 strategies, in this process."""
    from django.urls import reverse

    live_stack.configure()
    live_stack.check_services()
    live_stack.migrate_fresh()
    try:
        seed()
        client = logged_in_client()
        timed(lambda: get(client, reverse("dashboard")), WARM_UP)
        profiler = cProfile.Profile()
        profiler.enable()
        timed(lambda: get(client, reverse("dashboard")), 10)
        profiler.disable()
    finally:
        live_stack.empty_desk()
    live_stack.print_stats(profiler)


if __name__ == "__main__":
    try:
        if "--timings" in sys.argv[1:]:
            live_stack.configure()
            print(json.dumps(timings()))
        elif "--profile" in sys.argv[1:]:
            profile()
        else:
            main()
    except BenchmarkFailed as failed:
        sys.exit(f"dashboard: {failed}")
