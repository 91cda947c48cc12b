"""Risk halts on real BTC candles: a strategy past its drawdown, daily loss or gross exposure limit stops
entering (exits still managed) with one RISK_HALTED event, stays halted across a rebuild from its
snapshot, and enters again once resumed."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from orchestrator.config import InvalidConfig, parse_config
from orchestrator.datasets import load_candles
from orchestrator.engine import StrategyOrchestrator
from orchestrator.events import EventType
from orchestrator.ports import MemoryPublisher, MemoryStore
from strategies import SmaCrossover, SmaCrossoverConfig

BASE = {"fast_period": 5, "slow_period": 20, "allow_short": True, "position_size": "1",
        "stop_loss_pct": "0.004", "take_profit_pct": "0.006"}


@pytest.fixture(scope="module")
def candles():
    return load_candles("BTC/USD", limit=6000)


def orchestrator(**limits) -> StrategyOrchestrator:
    config = parse_config(SmaCrossoverConfig, BASE | limits)
    return StrategyOrchestrator("s", SmaCrossover(config), "BTC/USD", "1m", Decimal(10000), MemoryStore(), MemoryPublisher())


def events(o: StrategyOrchestrator, kind: EventType) -> list:
    return [e for e in o.publisher.events if e.type is kind]


def equity_path(candles) -> list[Decimal]:
    """The unlimited run's equity after each candle."""
    free = orchestrator()
    path = []
    for candle in candles:
        free.process(candle)
        path.append(free.equity)
    return path


def test_the_limits_are_checked_when_the_config_is_read():
    with pytest.raises(InvalidConfig) as invalid:
        parse_config(SmaCrossoverConfig, BASE | {"max_drawdown_pct": "1.5", "daily_loss_pct": "0", "max_gross_exposure": "-1"})
    assert set(invalid.value.errors) == {"max_drawdown_pct", "daily_loss_pct", "max_gross_exposure"}


def test_a_drawdown_past_the_limit_halts_entries_once_and_exits_are_still_managed(candles):
    path = equity_path(candles)
    peak, deepest, at = Decimal(10000), Decimal(0), None
    for index, equity in enumerate(path):
        peak = max(peak, equity)
        if (peak - equity) / peak > deepest:
            deepest, at = (peak - equity) / peak, index
    limit = (deepest / 2).quantize(Decimal("0.0001"))
    halted = orchestrator(max_drawdown_pct=str(limit))

    results = [halted.process(c) for c in candles]

    [event] = events(halted, EventType.RISK_HALTED)
    first = next(i for i, r in enumerate(results) if r and any(e.type is EventType.RISK_HALTED for e in r.events))
    assert first <= at
    assert results[first].equity == path[first], "identical to the unlimited run until the halt"
    assert event.payload["reason"].startswith("drawdown ") and f"limit of {limit:.2%}" in event.payload["reason"]
    later = [r for r in results[first + 1:] if r is not None]
    assert not [e for r in later for e in r.events if e.type is EventType.POSITION_OPENED]
    refused = [e for r in later for e in r.events if e.type is EventType.SIGNAL_REJECTED]
    assert refused and all(e.payload["reason"].startswith("halted: drawdown") for e in refused)
    assert not len(halted.book), "the position open at the halt was closed by its stop, target or exit signal"


def test_a_loss_within_one_utc_day_past_the_limit_halts(candles):
    path = equity_path(candles)
    worst, start = Decimal(0), Decimal(10000)
    for index, (candle, equity) in enumerate(zip(candles, path)):
        if index and candles[index - 1].time.date() != candle.time.date():
            start = path[index - 1]  # the day starts from the equity at the last close before it
        worst = max(worst, (start - equity) / start)
    halted = orchestrator(daily_loss_pct=str((worst * Decimal("0.8")).quantize(Decimal("0.0001"))))

    for candle in candles:
        halted.process(candle)

    [event] = events(halted, EventType.RISK_HALTED)
    assert event.payload["reason"].startswith("loss ") and "since the UTC day began" in event.payload["reason"]


def test_an_entry_that_would_exceed_gross_exposure_is_refused(candles):
    capped = orchestrator(max_gross_exposure="0.5")  # position size is the whole equity

    for candle in candles[:2000]:
        capped.process(candle)

    assert not events(capped, EventType.POSITION_OPENED)
    refused = events(capped, EventType.SIGNAL_REJECTED)
    assert refused and all(e.payload["reason"].startswith("gross exposure would be 1.00x equity") for e in refused)


def test_a_halt_survives_a_rebuild_from_the_snapshot_and_a_resume_lets_it_enter_again(candles):
    halted = orchestrator(max_drawdown_pct="0.002")
    index = 0
    while halted.halted is None:
        halted.process(candles[index])
        index += 1
    rebuilt = orchestrator(max_drawdown_pct="0.002")
    rebuilt.last_candle_time = halted.last_candle_time
    assert rebuilt.restore(json.loads(json.dumps(halted.snapshot())))
    assert (rebuilt.halted, rebuilt.marks.peak, rebuilt.marks.day_start) == (
        halted.halted, halted.marks.peak, halted.marks.day_start)

    resumed = rebuilt.resume(candles[index - 1].time, "trader")
    assert rebuilt.halted is None and rebuilt.resume(candles[index - 1].time, "trader") is None
    later = [r for r in (rebuilt.process(c) for c in candles[index:index + 3000]) if r is not None]

    assert [e.type for e in resumed.events] == [EventType.RISK_RESUMED]
    assert resumed.events[0].payload == {"user": "trader", "was": halted.halted}
    assert [e for r in later for e in r.events if e.type is EventType.POSITION_OPENED]


def test_a_halt_cancels_the_entry_waiting_for_the_next_open(candles):
    runner = orchestrator()
    for index, candle in enumerate(candles):
        runner.process(candle)
        if any(o.intent == "open" for o in runner.exchange.pending_orders):
            break
    [waiting] = [o.order_id for o in runner.exchange.pending_orders]

    halted = runner.halt("account paper: drawdown", candle.time)
    after = runner.process(candles[index + 1])

    assert halted.cancelled == [waiting] and not runner.exchange.pending_orders
    assert [e.type for e in halted.events] == [EventType.RISK_HALTED, EventType.ORDER_CANCELLED]
    assert events(runner, EventType.ORDER_CANCELLED)[-1].payload["reason"] == "halted: account paper: drawdown"
    assert after is None or not [p for p in after.positions if p.position_id == waiting], "nothing opens after the halt"
    assert not runner.book.held
