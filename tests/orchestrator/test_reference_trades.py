"""The engine against an independent reference: a long-only SMA 10/30 crossover, all in, filled at the next open,
the same commission, no stops, gives exactly backtesting.py's trades (entry and exit times and prices) on
backtesting.py's own shipped data (GOOG daily, EURUSD hourly) and on the shipped BTC/USD month at 1m, 15m and 1h.

A cross is the fast average strictly below the slow one at the last candle and strictly above at this one (or the
reverse), as backtesting.py's `crossover`, vectorbt and nautilus_trader count it: a path through an exact tie is no
cross. On BTC/USD 1m the averages tie exactly 14 times; counting a touch as a cross made 945 trades there, where
all three references make 931."""

from __future__ import annotations

import hashlib
import warnings
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import backtesting
import pandas as pd
import pytest
from backtesting import Backtest

from benchmarks.reference import COMMISSION, FAST, SLOW, SmaCross
from orchestrator.candles import Candle
from orchestrator.datasets import load_candles
from orchestrator.engine import StrategyOrchestrator
from orchestrator.orders import OrderIntent
from orchestrator.ports import MemoryPublisher, MemoryStore
from strategies import build_strategy

Trade = tuple[datetime, float, datetime, float]  # entry time and price, exit time and price


def shipped_by_backtesting(name: str, timeframe: str) -> list[Candle]:
    """One of backtesting.py's own datasets as candles, its prices read as the decimal text they are written in."""
    frame = pd.read_csv(Path(backtesting.__file__).parent / "test" / f"{name}.csv", index_col=0, parse_dates=True, dtype=str)
    return [
        Candle(name, timeframe, time.to_pydatetime().replace(tzinfo=timezone.utc), Decimal(row.Open), Decimal(row.High),
               Decimal(row.Low), Decimal(row.Close), Decimal(row.Volume))
        for time, row in frame.iterrows()
    ]


def reference_trades(candles: list[Candle]) -> list[Trade]:
    """backtesting.py's closed trades over the candles (whole units, so cash is ample; a trade still open at the
    end is left out, as the engine leaves it open)."""
    frame = pd.DataFrame(
        {"Open": [float(c.open) for c in candles], "High": [float(c.high) for c in candles],
         "Low": [float(c.low) for c in candles], "Close": [float(c.close) for c in candles],
         "Volume": [float(c.volume) for c in candles]},
        index=pd.DatetimeIndex([c.time.replace(tzinfo=None) for c in candles]),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = Backtest(frame, SmaCross, cash=1e12, commission=float(COMMISSION), finalize_trades=False).run()
    return [
        (t.EntryTime.to_pydatetime().replace(tzinfo=timezone.utc), float(t.EntryPrice),
         t.ExitTime.to_pydatetime().replace(tzinfo=timezone.utc), float(t.ExitPrice))
        for t in stats._trades.itertuples()
    ]


def engine_trades(candles: list[Candle]) -> list[Trade]:
    """The engine's closed positions over the candles, configured as the reference trades."""
    config = {"fast_period": FAST, "slow_period": SLOW, "position_size": "1", "stop_loss_pct": None,
              "take_profit_pct": None, "fee_rate": COMMISSION, "slippage": "0"}
    first = candles[0]
    runner = StrategyOrchestrator("reference", build_strategy("sma_crossover", config), first.symbol, first.timeframe,
                                  Decimal(10_000), MemoryStore(), MemoryPublisher())
    for candle in candles:
        runner.process(candle)
    fills = [fill for result in runner.store.results for fill in result.fills]
    entries = {f.position_id: f for f in fills if f.intent is OrderIntent.OPEN}
    return sorted(
        (entries[f.position_id].time, float(entries[f.position_id].price), f.time, float(f.price))
        for f in fills if f.intent is OrderIntent.CLOSE
    )


def digest(trades: list[Trade]) -> str:
    """One hash of a trade list: equal hashes, identical trades."""
    return hashlib.sha256(repr(trades).encode()).hexdigest()


@pytest.mark.parametrize("candles", [
    pytest.param(lambda: shipped_by_backtesting("GOOG", "1d"), id="GOOG-1d"),
    pytest.param(lambda: shipped_by_backtesting("EURUSD", "1h"), id="EURUSD-1h"),
    pytest.param(lambda: load_candles("BTC/USD", "1m"), id="BTCUSD-1m"),
    pytest.param(lambda: load_candles("BTC/USD", "15m"), id="BTCUSD-15m"),
    pytest.param(lambda: load_candles("BTC/USD", "1h"), id="BTCUSD-1h"),
])
def test_the_engine_makes_exactly_backtesting_pys_trades(candles):
    candles = candles()
    reference, ours = reference_trades(candles), engine_trades(candles)

    assert len(reference) >= 10, "enough trades to compare"
    assert digest(ours) == digest(reference), (
        f"{len(ours)} trades against {len(reference)}; only ours: {sorted(set(ours) - set(reference))[:3]}, "
        f"only the reference's: {sorted(set(reference) - set(ours))[:3]}")


def test_on_btc_one_minute_exact_ties_are_no_crosses():
    candles = load_candles("BTC/USD", "1m")
    # 931 is what backtesting.py, vectorbt and nautilus_trader all make here.
    assert len(engine_trades(candles)) == len(reference_trades(candles)) == 931
