"""The core alone (`python -m benchmarks.core`; `make bench` runs it first): the in-memory engine, the code live
workers run, on the shipped BTC/USD one-minute month, side by side with backtesting.py on the same data and the
same strategy, then several strategies on one market, memory, and a year of one-minute candles."""

from __future__ import annotations

import gc
import hashlib
import platform
import statistics
import sys
import time
import tracemalloc
import warnings
from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal

import pandas as pd

from benchmarks import report
from benchmarks.reference import COMMISSION, FAST, SLOW, SmaCross
from orchestrator.backtest import Allocation, BacktestSpec, run_backtest
from orchestrator.candles import Candle
from orchestrator.datasets import load_candles
from orchestrator.engine import StrategyOrchestrator
from orchestrator.orders import OrderIntent
from orchestrator.ports import MemoryPublisher, MemoryStore
from orchestrator.progress_bar import ProgressBar
from strategies import build_strategy

SYMBOL, TIMEFRAME = "BTC/USD", "1m"
CAPITAL = Decimal(10_000)
# The strategy backtesting.py runs too: all in on the cross above, out on the cross below, filled at the next
# open, no stops, no slippage.
REFERENCE = {"fast_period": FAST, "slow_period": SLOW, "position_size": "1", "stop_loss_pct": None,
             "take_profit_pct": None, "fee_rate": COMMISSION, "slippage": "0"}
# Strategies of different parameters on one market: the first five a sweep of the reference strategy's periods
# (periods repeat across them, as they do in a sweep, so identical indicators are shared), then other settings
# and the RSI mean reversion.
VARIANTS = [
    ("sma_crossover", REFERENCE),
    ("sma_crossover", REFERENCE | {"fast_period": 5}),
    ("sma_crossover", REFERENCE | {"slow_period": 60}),
    ("sma_crossover", REFERENCE | {"fast_period": 20, "slow_period": 60}),
    ("sma_crossover", REFERENCE | {"fast_period": 5, "slow_period": 60}),
    ("rsi_mean_reversion", {"rsi_period": 14}),
    ("sma_crossover", {"fast_period": 10, "slow_period": 30, "stop_loss_pct": "0.01", "take_profit_pct": "0.02"}),
    ("sma_crossover", {"fast_period": 20, "slow_period": 60, "allow_short": True}),
    ("rsi_mean_reversion", {"rsi_period": 7, "oversold": "25", "overbought": "75", "allow_short": True}),
    ("sma_crossover", {"fast_period": 30, "slow_period": 120}),
]
# The floor under "5 vs 1" with no trading at all: the sweep's periods again, but each slow SMA longer than the
# month, so that no strategy ever trades; what is left is each strategy's own passes over the run (its indicators,
# its decision candles, its equity curve).
IDLE_VARIANTS = [
    ("sma_crossover", REFERENCE | {"fast_period": fast, "slow_period": 100_000 + n})
    for n, fast in enumerate((FAST, 5, FAST, 20, 5))
]
REPEATS = 5
YEAR_STRATEGIES = 10
MEMORY_COUNTS = (1, 5, 10, 50)
Trade = tuple[datetime, float, datetime, float]  # entry time and price, exit time and price


def engine_run(candles: list[Candle]) -> tuple[float, list[Trade]]:
    """Seconds to push every candle through one orchestrator of the reference strategy, and its closed trades."""
    runner = StrategyOrchestrator("bench", build_strategy("sma_crossover", REFERENCE), SYMBOL, TIMEFRAME, CAPITAL,
                                  MemoryStore(), MemoryPublisher())
    process = runner.process
    gc.collect()
    start = time.perf_counter()
    for candle in candles:
        process(candle)
    seconds = time.perf_counter() - start
    fills = [fill for result in runner.store.results for fill in result.fills]
    entries = {f.position_id: f for f in fills if f.intent is OrderIntent.OPEN}
    trades = sorted(
        (entries[f.position_id].time, float(entries[f.position_id].price), f.time, float(f.price))
        for f in fills if f.intent is OrderIntent.CLOSE
    )
    return seconds, trades


def latencies(candles: list[Candle]) -> list[float]:
    """Milliseconds each candle takes through one orchestrator of the reference strategy."""
    runner = StrategyOrchestrator("latency", build_strategy("sma_crossover", REFERENCE), SYMBOL, TIMEFRAME, CAPITAL,
                                  MemoryStore(), MemoryPublisher())
    samples = []
    for candle in candles:
        start = time.perf_counter_ns()
        runner.process(candle)
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return samples


class _Nowhere:
    """Ports that keep nothing: what an orchestrator itself holds is measured, not its results."""

    def record(self, result) -> None:
        pass

    def publish(self, events) -> None:
        pass


def memory_per_orchestrator(candles: list[Candle], count: int = 100) -> float:
    """Mean bytes held by one orchestrator warmed up on 500 candles, as a live worker caches it."""
    warm = candles[:500]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    runners = []
    for n in range(count):
        runner = StrategyOrchestrator(f"mem-{n}", build_strategy("sma_crossover", REFERENCE), SYMBOL, TIMEFRAME,
                                      CAPITAL, _Nowhere(), _Nowhere())
        runner.warm_up(warm)
        runners.append(runner)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    return sum(stat.size_diff for stat in after.compare_to(before, "filename")) / count


def reference_frame(candles: list[Candle]) -> pd.DataFrame:
    """The candles as backtesting.py reads them."""
    return pd.DataFrame(
        {"Open": [float(c.open) for c in candles], "High": [float(c.high) for c in candles],
         "Low": [float(c.low) for c in candles], "Close": [float(c.close) for c in candles],
         "Volume": [float(c.volume) for c in candles]},
        index=pd.DatetimeIndex([c.time.replace(tzinfo=None) for c in candles]),
    )


def reference_run(frame: pd.DataFrame) -> tuple[float, list[Trade]]:
    """Seconds backtesting.py takes to run the same strategy on the same candles (its `run`, indicators
    included), and its closed trades."""
    from backtesting import Backtest

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backtest = Backtest(frame, SmaCross, cash=1e12, commission=float(COMMISSION), finalize_trades=False)
        gc.collect()
        start = time.perf_counter()
        stats = backtest.run()
        seconds = time.perf_counter() - start
    trades = [
        (t.EntryTime.to_pydatetime().replace(tzinfo=timezone.utc), float(t.EntryPrice),
         t.ExitTime.to_pydatetime().replace(tzinfo=timezone.utc), float(t.ExitPrice))
        for t in stats._trades.itertuples()
    ]
    return seconds, trades


def digest(trades: list[Trade]) -> str:
    """One hash of a trade list: equal hashes, identical trades."""
    return hashlib.sha256(repr(trades).encode()).hexdigest()


def spec(count: int, variants: list = VARIANTS) -> BacktestSpec:
    """`count` strategies on the one market (the variants in turn, numbered), each with an equal share."""
    weight = Decimal(1) / count
    allocations = [
        Allocation(f"s{n}", build_strategy(*variants[n % len(variants)]), SYMBOL, TIMEFRAME, weight)
        for n in range(count)
    ]
    return BacktestSpec(allocations, CAPITAL)


def backtest_seconds(candles: list[Candle], count: int, variants: list = VARIANTS) -> tuple[float, int]:
    """Seconds `run_backtest` takes with `count` strategies over the candles, and the trades they closed."""
    plan = spec(count, variants)
    gc.collect()
    start = time.perf_counter()
    result = run_backtest(plan, {(SYMBOL, TIMEFRAME): candles})
    seconds = time.perf_counter() - start
    return seconds, sum(len(run.trades()) for run in result.runs.values())


def backtest_from_file_seconds(count: int) -> float:
    """Seconds a backtest of `count` strategies takes from the shipped file to its metrics: the candles read and
    built once for every strategy, `run_backtest`, and every strategy's and the portfolio's metrics."""
    plan = spec(count)
    gc.collect()
    start = time.perf_counter()
    run_backtest(plan, {(SYMBOL, TIMEFRAME): load_candles(SYMBOL, TIMEFRAME)}).metrics()
    return time.perf_counter() - start


def alternately(one, five) -> tuple[list[float], list[float]]:
    """`one()` and `five()` timed in turn, REPEATS times each: their seconds."""
    ones: list[float] = []
    fives: list[float] = []
    for _ in range(REPEATS):
        ones.append(one())
        fives.append(five())
    return ones, fives


def ratio_text(ones: list[float], fives: list[float], target: str = "") -> str:
    """The median of the paired ratios, and the ratio of the best times."""
    ratios = [f / o for f, o in zip(fives, ones)]
    return (f"{statistics.median(ratios):.2f}x median of {REPEATS} (best {min(fives) / min(ones):.2f}x"
            f"{'; ' + target if target else ''}); {statistics.median(ones) * 1000:.0f} vs "
            f"{statistics.median(fives) * 1000:.0f} ms")


def backtest_memory(candles: list[Candle], count: int) -> tuple[int, int]:
    """Bytes the finished backtest of `count` strategies holds (its results, equity curves, orchestrators), and
    the peak while it ran, both above what was allocated before it (the candles are not counted)."""
    plan = spec(count)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    result = run_backtest(plan, {(SYMBOL, TIMEFRAME): candles})
    gc.collect()
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del result
    return held - before, peak - before


def year_of(candles: list[Candle], bars: int) -> list[Candle]:
    """`bars` one-minute candles: the month repeated, each repetition moved on by the month's span."""
    span = candles[-1].time - candles[0].time + (candles[1].time - candles[0].time)
    year: list[Candle] = []
    shift = span * 0
    while len(year) < bars:
        year += [replace(c, time=c.time + shift) for c in candles[: bars - len(year)]]
        shift += span
    return year


def progress_bar(total: int):
    """A progress callback drawing a bar on stderr."""
    bar = ProgressBar(total)

    def draw(done: int) -> None:
        drawn = bar.redraw(done)
        if drawn is not None:
            end = "\n" if done == total else ""
            sys.stderr.write(f"\r{drawn} {done:,} of {total:,} candles{end}")
            sys.stderr.flush()

    return draw


def main() -> None:
    started = time.perf_counter()
    candles = load_candles(SYMBOL, TIMEFRAME)
    frame = reference_frame(candles)
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(REPEATS):
        seconds, our_trades = engine_run(candles)
        ours.append(seconds)
        seconds, their_trades = reference_run(frame)
        theirs.append(seconds)
    engine_rate, reference_rate = len(candles) / min(ours), len(candles) / min(theirs)
    identical = digest(our_trades) == digest(their_trades)

    one, five = alternately(lambda: backtest_seconds(candles, 1)[0], lambda: backtest_seconds(candles, 5)[0])
    one_trades, five_trades = backtest_seconds(candles, 1)[1], backtest_seconds(candles, 5)[1]
    idle_one, idle_five = alternately(lambda: backtest_seconds(candles, 1, IDLE_VARIANTS)[0],
                                      lambda: backtest_seconds(candles, 5, IDLE_VARIANTS)[0])
    file_one, file_five = alternately(lambda: backtest_from_file_seconds(1), lambda: backtest_from_file_seconds(5))

    samples = latencies(candles)
    cached = memory_per_orchestrator(candles)
    memory = {count: backtest_memory(candles, count) for count in MEMORY_COUNTS}

    bars = 525_600
    built = time.perf_counter()
    year = year_of(candles, bars)
    built = time.perf_counter() - built
    plan = spec(YEAR_STRATEGIES)
    gc.collect()
    ran = time.perf_counter()
    result = run_backtest(plan, {(SYMBOL, TIMEFRAME): year}, progress_bar(len(year)))
    ran = time.perf_counter() - ran
    trades = sum(len(run.trades()) for run in result.runs.values())
    del result, year

    mib = 1024 * 1024
    rows = [
        ("candles (BTC/USD 1m, Jan 2022)", f"{len(candles):,}"),
        ("one strategy, tradeweb engine: bars per second", f"{engine_rate:,.0f}"),
        ("one strategy, backtesting.py 0.6.6: bars per second", f"{reference_rate:,.0f}"),
        ("tradeweb vs backtesting.py: bars per second ratio", f"{engine_rate / reference_rate:.2f}x (target at least 3x)"),
        ("same trades as backtesting.py (hash of entry and exit times and prices)",
         f"{'identical' if identical else 'DIFFERENT'}: {len(our_trades)} trades, {digest(our_trades)[:16]} / "
         f"{digest(their_trades)[:16]}"),
        ("one strategy through run_backtest (equity curve kept): bars per second", f"{len(candles) / min(one):,.0f}"),
        ("5 strategies (SMA crossovers of different periods) vs 1, run_backtest: time ratio",
         ratio_text(one, five, "target under 1.5x")),
        # What bounds that ratio: candles no strategy acts on are passed in bulk and indicators are shared, so what
        # is left of each strategy's time is its own trading (orders, fills, positions, events, journal) and its
        # own passes over the run (measured alone by the strategies that never trade).
        ("5 strategies vs 1: closed trades (their ratio)",
         f"{five_trades:,} vs {one_trades:,} ({five_trades / one_trades:.2f}x)"),
        ("5 strategies vs 1, run_backtest: time per closed trade",
         f"{min(five) / five_trades * 1e6:.0f} µs vs {min(one) / one_trades * 1e6:.0f} µs"),
        ("5 strategies vs 1 that never trade (each slow SMA longer than the month), run_backtest: time ratio",
         ratio_text(idle_one, idle_five)),
        ("5 strategies vs 1, a backtest from the shipped file to its metrics (candles read and built once): time ratio",
         ratio_text(file_one, file_five)),
    ]
    rows += [
        ("per-candle latency, one strategy: p50", f"{statistics.median(samples) * 1000:.1f} µs"),
        ("per-candle latency, one strategy: p95", f"{statistics.quantiles(samples, n=20)[18] * 1000:.1f} µs"),
        ("memory per warmed-up orchestrator (as a worker caches it)", f"{cached / 1024:.1f} KiB"),
    ]
    for count, (held, peak) in memory.items():
        rows.append((f"memory, {count} strateg{'y' if count == 1 else 'ies'} over the month: held after / peak",
                     f"{held / mib:.1f} MiB / {peak / mib:.1f} MiB ({held / count / mib:.2f} MiB per strategy)"))
    rows += [
        (f"a year of 1m candles ({len(candles):,} repeated to {bars:,}): building the candles", f"{built:.1f} s"),
        (f"a year of 1m candles, {YEAR_STRATEGIES} strategies through run_backtest: wall time",
         f"{ran:.1f} s ({bars * YEAR_STRATEGIES / ran:,.0f} strategy-candles per second, {trades:,} trades; "
         f"target under 30 s)"),
    ]
    report.print_rows(rows)
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    report.write_section(
        report.CORE,
        "# Benchmarks\n\n"
        "Written by `make bench` (the core alone: `python -m benchmarks.core`): the in-memory engine (the code live\n"
        "workers run, with in-memory ports) on the shipped BTC/USD one-minute month. One strategy: SMA crossover\n"
        f"{FAST}/{SLOW}, all in, filled at the next open, commission {COMMISSION}, no stops, run by the engine\n"
        "(`StrategyOrchestrator.process`, candles built beforehand) and by backtesting.py (`Backtest.run`, its frame\n"
        f"built beforehand) side by side in this run, alternately, best of {REPEATS} each; their closed trades are\n"
        "hashed and compared. Several strategies: `run_backtest` (orchestrators of one market share their\n"
        "indicators; every strategy's equity curve is kept) with the variants in `benchmarks/core.py`: for 5 vs 1,\n"
        "SMA crossovers of different periods (the first the reference), timed alternately; then the same periods\n"
        "with every slow SMA longer than the month (no strategy trades: each one's own passes over the run), and\n"
        "the whole backtest from the shipped file (candles read and built once, the run, the metrics). For memory\n"
        "and the year, other settings and RSI mean reversions too. Memory: tracemalloc around\n"
        "`run_backtest` (the candles not counted). The year: the month repeated with its times moved on, 10 of the\n"
        "variants, with a progress bar.\n\n"
        f"Measured {stamp} on {platform.machine()}, Python {sys.version.split()[0]}, in "
        f"{time.perf_counter() - started:.0f} s.\n\n"
        "| figure | value |\n| --- | --- |\n" + table + "\n",
    )


if __name__ == "__main__":
    main()
