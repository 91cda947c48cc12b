"""A config reloaded mid-run: the orchestrator rebuilt under the new config from the old one's snapshot keeps
the exact state of every unchanged indicator, re-warms a changed one on history, rebuilds the strategy's memory
with the new indicators, and moves its risk marks with a new capital."""

from __future__ import annotations

import copy
import json
from decimal import Decimal

import pytest

from orchestrator.datasets import load_candles
from orchestrator.engine import OrchestratorState, StrategyOrchestrator
from orchestrator.indicators import SMA
from orchestrator.ports import MemoryPublisher, MemoryStore
from strategies import build_strategy

OLD = {"fast_period": 5, "slow_period": 20, "stop_loss_pct": None, "take_profit_pct": None}
WARM_UP = 300


@pytest.fixture(scope="module")
def btc():
    return load_candles("BTC/USD", limit=3000)


def orchestrator(config: dict, state: OrchestratorState | None = None, capital: str = "10000") -> StrategyOrchestrator:
    return StrategyOrchestrator(
        "s", build_strategy("sma_crossover", config), "BTC/USD", "1m", Decimal(capital), MemoryStore(), MemoryPublisher(),
        state,
    )


def carried_state(old: StrategyOrchestrator) -> OrchestratorState:
    """What the database gives a rebuilt orchestrator: where the old one stopped, copies of its positions and orders."""
    return OrchestratorState(old.last_candle_time, old.sequence.last, old.book.realized_pnl,
                             copy.deepcopy(old.book.open_positions("BTC/USD")), copy.deepcopy(old.exchange.pending_orders))


def run_until_holding(btc) -> tuple[StrategyOrchestrator, int]:
    """The old config run on real candles until it holds a position, at least 500 candles in."""
    old = orchestrator(OLD)
    for count, candle in enumerate(btc, 1):
        old.process(candle)
        if count >= 500 and len(old.book):
            return old, count
    raise AssertionError("no position was ever open")


def test_a_changed_period_rewarms_that_indicator_and_keeps_the_other_bit_for_bit(btc):
    old, count = run_until_holding(btc)
    snapshot = json.loads(json.dumps(old.snapshot()))
    new_config = OLD | {"slow_period": 25}
    history = btc[count - WARM_UP:count]

    reloaded = orchestrator(new_config, carried_state(old))
    assert reloaded.restore(snapshot, lambda: history)

    assert reloaded.indicators.state()["sma_5"] == snapshot["indicators"]["sma_5"]
    expected = SMA(25)
    for candle in history:
        expected.update(candle)
    assert reloaded.indicators.state()["sma_25"] == expected.state()
    values = reloaded.indicators.values
    assert reloaded.strategy.state() == {"relation": (values["sma_5"] > values["sma_25"]) - (values["sma_5"] < values["sma_25"])}
    assert [p.position_id for p in reloaded.book.open_positions("BTC/USD")] == [
        p.position_id for p in old.book.open_positions("BTC/USD")]

    # From here on, the unchanged indicator moves exactly as in the run that was never reloaded.
    for candle in btc[count:count + 200]:
        old.process(candle)
        reloaded.process(candle)
        assert reloaded.indicators.values["sma_5"] == old.indicators.values["sma_5"]
    signals = [e.payload["reason"] for e in reloaded.publisher.events if e.type == "SIGNAL_GENERATED"]
    assert signals and all("SMA 5 crossed" in s and "SMA 25" in s for s in signals)


def test_the_strategy_decides_after_a_reload_as_one_that_always_had_the_new_periods(btc):
    old, count = run_until_holding(btc)
    new_config = OLD | {"fast_period": 8, "slow_period": 21}
    reloaded = orchestrator(new_config, carried_state(old))
    assert reloaded.restore(json.loads(json.dumps(old.snapshot())), lambda: btc[count - WARM_UP:count])
    always = orchestrator(new_config)
    always.warm_up(btc[count - WARM_UP:count])

    for candle in btc[count:count + 600]:
        reloaded.process(candle)
        always.process(candle)

    def crosses(runner):
        # Crosses above: both enter long on each (a cross below signals an exit only where a position is held).
        return [(e.time, e.payload["reason"]) for e in runner.publisher.events
                if e.type == "SIGNAL_GENERATED" and "above" in e.payload["reason"]]

    assert crosses(reloaded) and crosses(reloaded) == crosses(always)


def test_without_history_a_changed_indicator_refuses_the_snapshot_and_changes_nothing(btc):
    old, _ = run_until_holding(btc)
    reloaded = orchestrator(OLD | {"slow_period": 25}, carried_state(old))
    before = reloaded.snapshot()

    assert reloaded.restore(old.snapshot()) is False
    assert reloaded.snapshot() == before


def test_a_config_change_outside_the_indicators_keeps_everything_and_applies_to_new_entries(btc):
    old, count = run_until_holding(btc)
    new_config = OLD | {"stop_loss_pct": "0.01", "position_size": "0.5"}
    reloaded = orchestrator(new_config, carried_state(old))

    assert reloaded.restore(old.snapshot(), lambda: pytest.fail("no indicator changed: history is not read"))

    assert reloaded.snapshot() | {"strategy": None} == old.snapshot() | {"strategy": None}
    assert reloaded.strategy.state() == old.strategy.state()
    held = reloaded.book.open_positions("BTC/USD")[0]
    assert held.stop_price is None, "an open position keeps the stop it was opened with"
    opened = []
    for candle in btc[count:]:
        result = reloaded.process(candle)
        opened += [p for p in (result.positions if result else []) if p.position_id != held.position_id]
        if opened:
            break
    assert opened and opened[0].stop_price == (opened[0].entry_price * Decimal("0.99")).quantize(Decimal("0.00000001"))


def test_a_new_capital_moves_the_risk_marks_by_the_difference(btc):
    old = orchestrator(OLD | {"max_drawdown_pct": "0.2"})
    for candle in btc[:800]:
        old.process(candle)
    reloaded = orchestrator(OLD | {"max_drawdown_pct": "0.2"}, carried_state(old), capital="15000")

    assert reloaded.restore(old.snapshot())

    assert reloaded.marks.peak - reloaded.equity_at(reloaded.last_close) == old.marks.peak - old.equity_at(old.last_close)
    assert reloaded.marks.day_start == old.marks.day_start + 5000
    assert reloaded.marks.peak == old.marks.peak + 5000
