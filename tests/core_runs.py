"""The reference a live-path test compares with: the same strategy run by the bare core engine."""

from __future__ import annotations

from orchestrator.engine import StrategyOrchestrator
from orchestrator.ports import MemoryPublisher, MemoryStore
from strategies import build_strategy


def core_run(strategy, candles) -> tuple[MemoryStore, MemoryPublisher]:
    """Run a strategy row's config through the core, uninterrupted, with in-memory ports."""
    store, publisher = MemoryStore(), MemoryPublisher()
    orchestrator = StrategyOrchestrator(
        strategy.strategy_id, build_strategy(strategy.strategy_class, strategy.config), strategy.symbol,
        strategy.timeframe, strategy.capital, store, publisher,
    )
    for candle in candles:
        orchestrator.process(candle)
    return store, publisher
