"""Switching and config changes on a busy desk, measured as a user meets them: through Daphne, over HTTP and the
event websocket, while a feed sends real candles to 20 strategies and Celery workers advance them.

1. Switch latency: a user with the control permission, on the dashboard with its websocket open, switches an
   exclusive slot from one strategy to the other (the activate view, POSTed as htmx posts it, CSRF token and all);
   the time is from just before the request until the STRATEGY_ACTIVATED event of that strategy reaches the
   websocket. Measured with the feed running, then on an idle desk.
2. Config to candle: a superuser saves a changed config of an active strategy in the admin's change form; the time
   is from just before the POST until the strategy's row shows a candle processed after the save (its
   last_candle_time moves on from where it stood when the new config_version appeared), split into the save
   request, the wait for that candle (its received_at) and its processing.

`python -m benchmarks` runs it after the live path; `python -m benchmarks.switching` runs it alone (replacing its
section of docs/benchmarks.md), and `--profile` prints instead where the time of a switch goes, measured inside
Daphne (`benchmarks.switching_profile`).
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from benchmarks import live_stack, report
from benchmarks.config_change import ConfigSaves, config_saves
from benchmarks.desk_load import CpuUse, caught_up, cores, no_errors, running_feed
from benchmarks.live_path import add_strategies
from benchmarks.live_stack import BenchmarkFailed, running_workers, wait_until
from benchmarks.web_stack import PLAIN_HTTP, Browser, EventSocket, event_socket, running_daphne

HEADING = "## Switching"

MARKET, TIMEFRAME = "BTC/USD", "1m"
STRATEGIES = 20  # active on MARKET, besides the exclusive slot's
SLOT_ACCOUNT = "bench-slot"  # the exclusive slot: this account and MARKET, so the feed's market too
SLOT_STRATEGIES = {
    "slot-sma": ("sma_crossover", {"fast_period": 10, "slow_period": 30}),
    "slot-rsi": ("rsi_mean_reversion", {"rsi_period": 14}),
}
CHANGED_STRATEGY = "btcusd-000"  # an SMA crossover among the 20, whose config the admin changes
SLOW_PERIODS = (30, 32)  # the config saves alternate these
WORKERS = 2  # worker processes, as the Procfile's WORKER_CONCURRENCY default
FEED_RATE = 10  # candles per second
FEED_CANDLES = 2000  # the most the feed can send (200 s): more than a run needs
WARM_UP_CANDLES = 20  # processed by every strategy before anything is timed
WARM_UP_SWITCHES = 4  # untimed: the first requests load templates and open connections
SWITCHES = 60  # timed, per condition
CONFIG_SAVES = 20
PAUSE = (0.15, 0.35)  # seconds between two timed actions, drawn at random so they fall anywhere in a candle's 0.1 s
CARD_REFRESH = 0.15  # seconds: desk.js refreshes a strategy's card this long after its last event
P95_TARGET_MS = 25.0
SEED = 7


def set_up_desk() -> dict[str, str]:
    """20 active strategies on MARKET, an exclusive slot on MARKET under its own account with its first strategy
    active, a user with the control permission and a superuser; returns their passwords."""
    import secrets

    from django.contrib.auth.models import Permission, User

    from orchestrator.config import config_to_json
    from strategies import parse_strategy_config
    from tradeweb.desk import models

    add_strategies(MARKET, STRATEGIES)
    for n, (strategy_id, (strategy_class, config)) in enumerate(SLOT_STRATEGIES.items()):
        models.Strategy.objects.create(
            strategy_id=strategy_id, name=f"slot {strategy_id}", strategy_class=strategy_class, symbol=MARKET,
            timeframe=TIMEFRAME, account=SLOT_ACCOUNT, capital=Decimal(10000),
            status=models.Strategy.Status.ACTIVE if n == 0 else models.Strategy.Status.DORMANT,
            config=config_to_json(parse_strategy_config(strategy_class, config)),
        )
    models.Slot.objects.filter(account=SLOT_ACCOUNT, symbol=MARKET).update(exclusive=True)
    passwords = {"trader": secrets.token_urlsafe(16), "admin": secrets.token_urlsafe(16)}
    trader = User.objects.create_user("trader", password=passwords["trader"])
    trader.user_permissions.add(Permission.objects.get(codename="control_strategy", content_type__app_label="desk"))
    User.objects.create_superuser("admin", password=passwords["admin"])
    return passwords


@dataclass
class Switch:
    """One timed switch to `strategy_id`: perf_counter just before the POST, at its answer, and when the
    STRATEGY_ACTIVATED event arrived on the websocket."""

    strategy_id: str
    started: float
    answered_at: float
    received_at: float

    @property
    def answered(self) -> float:
        """Seconds from before the POST to its answer."""
        return self.answered_at - self.started

    @property
    def event(self) -> float:
        """Seconds from before the POST to the event: the switch's latency."""
        return self.received_at - self.started


def switches(browser: Browser, events: EventSocket, count: int, pause: random.Random) -> list[Switch]:
    """`count` switches of the exclusive slot, each to the strategy that is not active, PAUSE (drawn from `pause`)
    apart. After each, untimed, the page's work: the two cards the switch moved are fetched again CARD_REFRESH
    after the event, as the dashboard refreshes a strategy's card after a burst of its events."""
    from tradeweb.desk import models

    ids = list(SLOT_STRATEGIES)
    active = models.Strategy.objects.get(account=SLOT_ACCOUNT, status=models.Strategy.Status.ACTIVE).strategy_id
    samples = []
    for _ in range(count):
        target = ids[(ids.index(active) + 1) % len(ids)]
        events.forget()
        started = time.perf_counter()
        browser.switch_to(target)
        answered = time.perf_counter()
        received = events.activated(target)
        samples.append(Switch(target, started, answered, received))
        time.sleep(max(0.0, received + CARD_REFRESH - time.perf_counter()))
        for strategy_id in (target, active):
            browser.refresh_card(strategy_id)
        active = target
        time.sleep(pause.uniform(*PAUSE))
    return samples


@dataclass
class Measured:
    """What one run measured: the switches with the feed running and on the idle desk, the config saves."""

    busy: list[Switch]
    idle: list[Switch]
    saves: ConfigSaves | None
    feed_rate: float
    events: int  # events the websocket received during the run
    cpu: dict[str, dict[str, float]]  # cores busy, by phase and role (see CpuUse)
    deadlocks: int  # that PostgreSQL detected in the benchmark's database during the run


def measure(probes: Path | None = None) -> Measured:
    """Start the stack on an empty desk, then: switches with the feed running, config saves with the feed running,
    switches on the idle desk. With `probes` (a directory), Daphne and the workers run with the probes of
    `benchmarks.switching_probe` and `benchmarks.worker_probe`, which write their notes there, and no config is
    saved."""
    from tradeweb.desk import models

    live_stack.empty_desk()
    passwords = set_up_desk()
    pause = random.Random(SEED)
    deadlocks_before = deadlocks()
    application, worker_app, env = "tradeweb.asgi:application", "tradeweb", dict(PLAIN_HTTP)
    if probes is not None:
        application, worker_app = "benchmarks.switching_probe:application", "benchmarks.worker_probe"
        os.environ["WORKER_PROBE_LOG"] = str(probes / "workers.jsonl")
        env["SWITCH_PROBE_LOG"] = str(probes / "daphne.jsonl")
    with running_workers(WORKERS, worker_app) as workers, running_daphne(env, application) as daphne:
        trader, admin = Browser(daphne.url), Browser(daphne.url)
        trader.login("trader", passwords["trader"])
        admin.login("admin", passwords["admin"])
        trader.open_dashboard()
        admin.open_dashboard()
        everyone = list(models.Strategy.objects.values_list("strategy_id", flat=True))
        meter = CpuUse(daphne, workers)
        cpu: dict[str, dict[str, float]] = {"busy": {}, "saves": {}, "idle": {}}
        with event_socket(trader, everyone) as events:
            with running_feed(MARKET, FEED_RATE, FEED_CANDLES) as feed:
                taking = models.Strategy.objects.filter(status__in=models.TAKING_CANDLES)
                wait_until(lambda: feed.sent >= WARM_UP_CANDLES and not taking.filter(last_candle_time=None).exists(),
                           "the strategies to take their first candles", 60, workers)
                switches(trader, events, WARM_UP_SWITCHES, pause)
                with meter.measuring(cpu["busy"]):
                    busy = switches(trader, events, SWITCHES, pause)
                with meter.measuring(cpu["saves"]):
                    saves = config_saves(
                        admin, workers, feed, CHANGED_STRATEGY, SLOW_PERIODS, CONFIG_SAVES, pause, PAUSE
                    ) if probes is None else None
                feed.stop()
                caught_up(feed, workers)
            with meter.measuring(cpu["idle"]):
                idle = switches(trader, events, SWITCHES, pause)
            no_errors(workers)
    return Measured(busy, idle, saves, feed.achieved_rate(), events.events, cpu, deadlocks() - deadlocks_before)


def deadlocks() -> int:
    """Deadlocks PostgreSQL has detected in this database (a backend reports its own when it ends at the latest,
    so this is read once the workers and Daphne have stopped)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of the values lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(fraction * len(ordered)) - 1))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def spread(values: list[float]) -> str:
    """p50, p95 and max."""
    return f"p50 {ms(statistics.median(values))}, p95 {ms(percentile(values, 0.95))}, max {ms(max(values))}"


def rows(measured: Measured) -> list[tuple[str, str]]:
    """The section's figures, as (name, value) rows."""
    target = P95_TARGET_MS / 1000
    table = []
    for condition, samples, phase in (("feed running", measured.busy, "busy"), ("idle desk", measured.idle, "idle")):
        latency = [s.event for s in samples]
        met = "met" if percentile(latency, 0.95) < target else "not met"
        table += [
            (f"switch, {condition}: POST to STRATEGY_ACTIVATED on the websocket ({len(samples)} switches)",
             f"{spread(latency)}; target p95 < {P95_TARGET_MS:g} ms: {met}"),
            (f"switch, {condition}: POST to its HTTP answer", spread([s.answered for s in samples])),
            (f"switch, {condition}: CPU meanwhile", cores(measured.cpu[phase])),
        ]
    saves = measured.saves.timed
    attempts = len(saves) + measured.saves.failed
    table += [
        (f"config save in the admin to its first candle processed, feed running ({len(saves)} saves)",
         spread([s.total for s in saves])),
        ("config to candle, part 1: the save's POST until its answer", spread([s.save for s in saves])),
        ("config to candle, part 2: waiting for the next candle to be stored", spread([s.wait for s in saves])),
        ("config to candle, part 3: processing it with the new config", spread([s.processing for s in saves])),
        ("saves that wrote an older head back over the row (last candle, event number)",
         f"{measured.saves.stale} of {attempts}" + (
             f"; after {measured.saves.failed} the strategy failed on a duplicate event number and was activated "
             "again (those saves untimed)" if measured.saves.failed else "; none left the strategy failed")),
        ("config saves: CPU meanwhile", cores(measured.cpu["saves"])),
        ("deadlocks PostgreSQL detected during the run (pg_stat_database)",
         f"{measured.deadlocks} (the transactions in one wait deadlock_timeout, 1 s by default, before one of them "
         "is aborted)" if measured.deadlocks else "0"),
        ("feed rate achieved", f"{measured.feed_rate:.1f} candles per second (asked {FEED_RATE})"),
    ]
    return table


def section(table: list[tuple[str, str]], conditions: str) -> str:
    """The switching benchmark's part of docs/benchmarks.md."""
    about = (
        "Written by `make bench` after the live path (alone: `python -m benchmarks.switching`). The real stack: "
        f"Daphne serving tradeweb (`python -m tradeweb.server`, as the Procfile starts it), {WORKERS} Celery worker "
        "processes, PostgreSQL and Redis, DEBUG off. On BTC/USD 1m: "
        f"{STRATEGIES} active strategies (SMA crossover and RSI mean reversion in turn), and an exclusive slot of "
        f"two strategies under the account {SLOT_ACCOUNT!r}, so its active one shares the market (and the worker's "
        f"batch transaction) with the {STRATEGIES}. A feed thread sends the real candles of January 2022 at "
        f"{FEED_RATE} a second (`CandleDelivery`, `desk.process_candle`). Switch: a user with the control "
        "permission, logged in, with the dashboard's websocket open and subscribed to every strategy, POSTs the "
        "activate view as htmx does (CSRF token, HX headers) on one keep-alive connection, to the slot's strategy "
        "that is not active; the latency runs from just before the request until the STRATEGY_ACTIVATED event of "
        f"that strategy reaches the websocket client. The answer is no content (the page refreshes the card from the "
        f"switch's events): {CARD_REFRESH:g} s after the event the client fetches both cards the switch moved, as "
        f"the page does, untimed. {WARM_UP_SWITCHES} untimed switches first, then {SWITCHES} "
        f"with the feed running and, after the feed stopped and the workers caught up, {SWITCHES} on the idle "
        f"desk; {PAUSE[0]:g} to {PAUSE[1]:g} s (at random) between two. Config to candle: a superuser opens the "
        f"admin's change form of {CHANGED_STRATEGY} and saves it with slow_period {SLOW_PERIODS[0]} and "
        f"{SLOW_PERIODS[1]} in turn (every field and the CSRF token, as a browser posts it), {CONFIG_SAVES} "
        "times with the feed running; a thread reads the strategy's row every 2 ms, and the first candle under "
        "the new config is the one its last_candle_time moves to after the new config_version appeared. Its "
        "wait is from the save's answer until that candle was stored (its received_at; zero if it was stored "
        "before), its processing from then until the row showed it. A save after which the strategy failed is "
        "not timed: it is counted, the strategy activated again from the desk, and the save made again. CPU "
        "meanwhile: the cores kept busy during the phase, by the whole machine and by each of the stack's "
        "processes (psutil); other work is the rest. Percentiles are nearest-rank."
    )
    return report.section(HEADING, about, conditions, table)


def main() -> None:
    """Measure switching and config changes and write their section of docs/benchmarks.md."""
    measured, conditions = live_stack.on_fresh_desk(measure)
    table = rows(measured)
    report.print_rows(table)
    report.write_section(HEADING, section(table, (
        f"{conditions} The websocket client received {measured.events:,} events. The client, the feed, Daphne, "
        "the workers and both databases share this machine's cores, so every figure here includes waiting for a core."
    )))


if __name__ == "__main__":
    try:
        if "--profile" in sys.argv[1:]:
            from benchmarks.switching_profile import profile

            profile()
        else:
            main()
    except BenchmarkFailed as failed:
        sys.exit(f"switching: {failed}")
