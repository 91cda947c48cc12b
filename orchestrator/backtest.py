"""Portfolio backtests on the live engine: the same `StrategyOrchestrator`s, indicators, risk rules and paper
fills a worker runs, fed by an in-memory loop instead of Celery.

Candles of every market the strategies trade are merged in the order they close (a 5m candle is seen once its
five minutes are over, after the 1m candles inside it), so nothing a strategy sees comes from the future. Each
strategy trades its allocation (weight x capital); what no weight claims stays as cash in the portfolio. Two
strategies holding opposite sides of one symbol at once are reported with a CONFLICT_DETECTED event.
"""

from __future__ import annotations

import gc
import heapq
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Callable, Iterator, Mapping, Sequence

from orchestrator.candles import TIMEFRAMES, Candle
from orchestrator.config import InvalidConfig
from orchestrator.engine import StrategyOrchestrator
from orchestrator.equity_curve import EquityCurve
from orchestrator.events import Event, EventSequence, EventType
from orchestrator.indicators import MarketIndicators
from orchestrator.metrics import Convention, Metrics, Trade, compute
from orchestrator.ports import MemoryPublisher, MemoryStore
from orchestrator.positions import Side
from orchestrator.strategy import Strategy

ZERO = Decimal(0)
Market = tuple[str, str]  # symbol, timeframe


class InvalidBacktest(InvalidConfig):
    """A backtest that cannot run; `errors` maps each field to what is wrong with it. Raised before any candle."""


@dataclass(frozen=True)
class Allocation:
    """One strategy of the portfolio, on its market, with its share of the capital."""

    strategy_id: str
    strategy: Strategy
    symbol: str
    timeframe: str
    weight: Decimal

    @property
    def market(self) -> Market:
        return self.symbol, self.timeframe


@dataclass(frozen=True)
class BacktestSpec:
    """What to run: the allocations, the capital, and the period (candles opened in [start, end); None: all)."""

    allocations: Sequence[Allocation]
    capital: Decimal
    start: datetime | None = None
    end: datetime | None = None

    def problems(self) -> dict[str, str]:
        """Every field that is wrong, by name."""
        problems: dict[str, str] = {}
        if not self.allocations:
            problems["allocations"] = "at least one strategy is needed"
        ids = [a.strategy_id for a in self.allocations]
        for index, allocation in enumerate(self.allocations):
            if not allocation.weight > 0:
                problems[f"allocations[{index}].weight"] = f"must be above 0, got {allocation.weight}"
            if allocation.timeframe not in TIMEFRAMES:
                problems[f"allocations[{index}].timeframe"] = f"unknown timeframe {allocation.timeframe!r}"
            if ids.count(allocation.strategy_id) > 1:
                problems[f"allocations[{index}].strategy_id"] = f"{allocation.strategy_id!r} is given twice"
        total = sum((a.weight for a in self.allocations), ZERO)
        if total > 1:
            problems["weights"] = f"add up to {total}, more than 1"
        if not self.capital > 0:
            problems["capital"] = f"must be above 0, got {self.capital}"
        if self.start is not None and self.end is not None and self.start >= self.end:
            problems["period"] = f"starts at {self.start.isoformat()}, not before its end {self.end.isoformat()}"
        for name in ("start", "end"):
            moment = getattr(self, name)
            if moment is not None and moment.utcoffset() is None:
                problems[name] = "must be timezone-aware (UTC)"
        return problems

    def check(self) -> None:
        """Raise InvalidBacktest naming every wrong field."""
        problems = self.problems()
        if problems:
            raise InvalidBacktest(problems)


@dataclass
class StrategyRun:
    """One strategy's part of a backtest: its orchestrator (with what it stored and published) and its equity."""

    allocation: Allocation
    capital: Decimal
    orchestrator: StrategyOrchestrator
    equity: EquityCurve = field(default_factory=EquityCurve)

    @property
    def store(self) -> MemoryStore:
        return self.orchestrator.store

    @property
    def publisher(self) -> MemoryPublisher:
        return self.orchestrator.publisher

    def trades(self) -> list[Trade]:
        """Its closed positions, in the order they closed."""
        final = {p.position_id: p for result in self.store.results for p in result.positions}
        return sorted(
            (Trade(p.opened_at, p.closed_at, p.realized_pnl, p.fees) for p in final.values() if p.closed_at is not None),
            key=lambda trade: trade.closed_at,
        )

    def fees(self) -> Decimal:
        return sum((f.fee for result in self.store.results for f in result.fills), ZERO)


@dataclass
class BacktestResult:
    """Every strategy's run and the portfolio's equity: the strategies' equities plus the unallocated cash,
    marked at every candle's close."""

    spec: BacktestSpec
    runs: dict[str, StrategyRun]
    cash: Decimal
    equity: EquityCurve = field(default_factory=EquityCurve)
    candles: int = 0
    # Portfolio events (no strategy_id of their own): strategies holding opposite sides of one symbol.
    conflicts: list[Event] = field(default_factory=list)

    def metrics(self, convention: Convention = Convention()) -> dict[str, Metrics]:
        """Each strategy's metrics by id, and the portfolio's under "portfolio"."""
        trades = {sid: run.trades() for sid, run in self.runs.items()}
        fees = {sid: run.fees() for sid, run in self.runs.items()}
        figures = {
            sid: compute(run.capital, run.equity, trades[sid], convention, fees[sid]) for sid, run in self.runs.items()
        }
        every_trade = sorted((t for part in trades.values() for t in part), key=lambda trade: trade.closed_at)
        figures["portfolio"] = compute(self.spec.capital, self.equity, every_trade, convention, sum(fees.values(), ZERO))
        return figures


def merged(streams: Mapping[Market, Sequence[Candle]], start: datetime | None, end: datetime | None) -> Iterator[Candle]:
    """Every market's candles opened in [start, end), in the order they close; at one moment the shorter
    timeframe first (its candle closes inside the longer one), then by symbol."""
    def keyed(market: Market, candles: Sequence[Candle]):
        span = TIMEFRAMES[market[1]]
        for candle in candles:
            if (start is None or candle.time >= start) and (end is None or candle.time < end):
                yield candle.time + span, span, candle.symbol, candle

    if len(streams) == 1:
        [candles] = streams.values()
        if start is None and end is None:
            # The whole of one market: its own iterator, with nothing to check per candle.
            return iter(candles)
        return (c for c in candles if (start is None or c.time >= start) and (end is None or c.time < end))
    return (candle for *_, candle in heapq.merge(*(keyed(m, c) for m, c in streams.items())))


def holding_sides(runs: Sequence[StrategyRun], symbol: str) -> dict[Side, list[str]]:
    """Which strategies hold a position in `symbol`, by side."""
    sides: dict[Side, list[str]] = {}
    for run in runs:
        held = run.orchestrator.book.held
        if held:
            for side in {p.side for p in held if p.symbol == symbol}:
                sides.setdefault(side, []).append(run.allocation.strategy_id)
    return sides


@contextmanager
def earlier_objects_frozen() -> Iterator[None]:
    """Keep the garbage collector's full passes off what existed before (the candles, the loaded modules): a
    backtest keeps everything it records, and each full pass would walk all of that again. Nothing is left
    uncollected: the objects go back to the collector afterwards. A heap someone else froze is left as it is."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def run_backtest(
    spec: BacktestSpec, streams: Mapping[Market, Sequence[Candle]],
    progress: Callable[[int], None] | None = None,
) -> BacktestResult:
    """Run the portfolio over the candles of its markets (InvalidBacktest, before any candle, if the spec or the
    data cannot run); `progress(candles so far)` is called as it goes."""
    spec.check()
    missing = sorted({a.market for a in spec.allocations} - set(streams))
    if missing:
        raise InvalidBacktest({"data": f"no candles for {', '.join(f'{s} {tf}' for s, tf in missing)}"})
    runs: dict[str, StrategyRun] = {}
    by_market: dict[Market, list[StrategyRun]] = {}
    # Every strategy of a market sees its candles from the first one: an indicator several declare is computed once.
    indicators = {market: MarketIndicators() for market in {a.market for a in spec.allocations}}
    for allocation in spec.allocations:
        capital = spec.capital * allocation.weight
        orchestrator = StrategyOrchestrator(
            allocation.strategy_id, allocation.strategy, allocation.symbol, allocation.timeframe, capital,
            MemoryStore(), MemoryPublisher(), market_indicators=indicators[allocation.market],
        )
        runs[allocation.strategy_id] = run = StrategyRun(allocation, capital, orchestrator)
        by_market.setdefault(allocation.market, []).append(run)
    cash = spec.capital - sum((run.capital for run in runs.values()), ZERO)
    result = BacktestResult(spec, runs, cash)
    latest = {sid: run.capital for sid, run in runs.items()}
    by_symbol: dict[str, list[StrategyRun]] = {}
    for run in runs.values():
        by_symbol.setdefault(run.allocation.symbol, []).append(run)
    conflicted: set[str] = set()
    portfolio_events = EventSequence("")
    total = cash + sum(latest.values(), ZERO)
    # What each candle of a market reaches, looked up once rather than for every strategy at every candle.
    reached = {
        market: [(run.allocation.strategy_id, run.orchestrator, run.orchestrator.process, run.equity.mark) for run in members]
        for market, members in by_market.items()
    }
    count = 0
    with earlier_objects_frozen():
        for count, candle in enumerate(merged({m: streams[m] for m in by_market}, spec.start, spec.end), 1):
            time = candle.time
            traded = False
            for sid, orchestrator, process, mark in reached[candle.symbol, candle.timeframe]:
                traded |= process(candle) is not None
                if orchestrator.last_candle_time == time:
                    before = latest[sid]
                    latest[sid] = kept = mark(time, orchestrator.equity)
                    if kept is not before:
                        total += kept - before
            total = result.equity.mark(time, total)
            # Who holds which side changes only with a candle that did something (a fill comes with events).
            if traded and len(sharing := by_symbol[candle.symbol]) > 1:
                sides = holding_sides(sharing, candle.symbol)
                if Side.LONG in sides and Side.SHORT in sides:
                    if candle.symbol not in conflicted:
                        conflicted.add(candle.symbol)
                        result.conflicts.append(portfolio_events.event(
                            EventType.CONFLICT_DETECTED, candle.symbol, time,
                            long=sides[Side.LONG], short=sides[Side.SHORT],
                        ))
                else:
                    conflicted.discard(candle.symbol)
            if progress is not None:
                progress(count)
    result.candles = count
    return result
