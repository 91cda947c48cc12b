"""The strategies the desk can run, by registry name."""

from __future__ import annotations

from typing import Any, Mapping

from orchestrator.config import InvalidConfig, StrategyConfig, parse_config
from orchestrator.strategy import Strategy
from strategies.rsi_mean_reversion import RsiMeanReversion, RsiMeanReversionConfig
from strategies.sma_crossover import SmaCrossover, SmaCrossoverConfig

STRATEGIES: dict[str, type] = {cls.name: cls for cls in (SmaCrossover, RsiMeanReversion)}

__all__ = [
    "STRATEGIES",
    "RsiMeanReversion",
    "RsiMeanReversionConfig",
    "SmaCrossover",
    "SmaCrossoverConfig",
    "build_strategy",
    "parse_strategy_config",
]


def parse_strategy_config(strategy_class: str, data: Mapping[str, Any] | None) -> StrategyConfig:
    """Validate JSON config against a strategy's schema; raises InvalidConfig with field errors."""
    try:
        cls = STRATEGIES[strategy_class]
    except KeyError:
        raise InvalidConfig({"strategy_class": f"unknown strategy {strategy_class!r}; known: {', '.join(STRATEGIES)}"}) from None
    return parse_config(cls.config_class, data)


def build_strategy(strategy_class: str, data: Mapping[str, Any] | None) -> Strategy:
    """A strategy instance from its registry name and JSON config."""
    # Validate first: an unknown name must raise InvalidConfig, not the KeyError of the lookup below.
    config = parse_strategy_config(strategy_class, data)
    return STRATEGIES[strategy_class](config)
