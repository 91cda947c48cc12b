"""A desk for the tests that run real workers: four strategies on three markets of real candles."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from orchestrator.datasets import load_candles
from tests.ingest import feed
from tradeweb.desk import models

# Two strategies on BTC/USD 1m, one on GBP/USD 1m (market breaks: linked messages), one on BTC/USD 5m.
STRATEGIES = [
    ("btc-sma", "sma_crossover", "BTC/USD", "1m",
     {"fast_period": 3, "slow_period": 8, "stop_loss_pct": "0.003", "take_profit_pct": "0.004"}),
    ("btc-rsi", "rsi_mean_reversion", "BTC/USD", "1m",
     {"rsi_period": 7, "stop_loss_pct": "0.003", "take_profit_pct": "0.004"}),
    ("gbp-rsi", "rsi_mean_reversion", "GBP/USD", "1m",
     {"rsi_period": 5, "oversold": "35", "stop_loss_pct": "0.0003", "take_profit_pct": "0.0004"}),
    ("btc-5m-sma", "sma_crossover", "BTC/USD", "5m",
     {"fast_period": 3, "slow_period": 8, "stop_loss_pct": "0.006", "take_profit_pct": "0.008"}),
]
# (after, how many): the GBP/USD sample spans three of its market's breaks.
CANDLES = {
    ("BTC/USD", "1m"): (None, 160),
    ("GBP/USD", "1m"): (datetime(2012, 2, 1, 1, 45, tzinfo=timezone.utc), 160),
    ("BTC/USD", "5m"): (None, 100),
}


@pytest.fixture
def desk(make_strategy) -> tuple[list[models.Strategy], dict[tuple[str, str], list]]:
    """The four strategies and the real candles of their three markets."""
    strategies = [
        make_strategy(sid, strategy_class=cls, symbol=symbol, timeframe=timeframe, **config)
        for sid, cls, symbol, timeframe, config in STRATEGIES
    ]
    candles = {
        market: load_candles(market[0], market[1], start=after, limit=count) for market, (after, count) in CANDLES.items()
    }
    gbp = candles[("GBP/USD", "1m")]
    assert sum(b.time - a.time > timedelta(minutes=1) for a, b in zip(gbp, gbp[1:])) == 3
    return strategies, candles


@pytest.fixture(scope="module")
def month():
    """A month of real hourly BTC/USD candles."""
    return load_candles("BTC/USD", "1h")


@pytest.fixture
def mid_trade(make_strategy, month) -> tuple[models.Strategy, list]:
    """A strategy (SMA 3/8 with stops, targets and shorts) fed the hourly month through the live path up to a
    candle at which it holds a position, at least 300 candles in; and the candles still to come."""
    strategy = make_strategy("alpha", timeframe="1h", fast_period=3, slow_period=8, stop_loss_pct="0.01",
                             take_profit_pct="0.015", allow_short=True)
    fed = 300
    feed(month[:fed])
    while not models.Position.objects.filter(strategy=strategy, closed_at=None).exists():
        feed(month[fed:fed + 1])
        fed += 1
    strategy.refresh_from_db()
    assert models.Position.objects.filter(strategy=strategy, closed_at__isnull=False).count() >= 10
    return strategy, month[fed:]
