"""Portfolio backtests on the live engine: the same `StrategyOrchestrator`s, indicators, risk rules and paper
fills a worker runs, fed by an in-memory loop instead of Celery.

Each market's indicators are worked out once over its whole run (`IndicatorSeries`, a value from the candles up to
its own only), and each orchestrator takes through `process` only the candles on which something can happen to it,
the quiet ones between at once (`CandleSchedule`); its equity curve still has a mark at every candle.

Candles of every market the strategies trade are merged in the order they close (a 5m candle is seen once its
five minutes are over, after the 1m candles inside it), so nothing a strategy sees comes from the future. Each
strategy trades its allocation (weight x capital); what no weight claims stays as cash in the portfolio. Two
strategies holding opposite sides of one symbol at once are reported with a CONFLICT_DETECTED event.
"""

from __future__ import annotations

import gc
import heapq
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from itertools import repeat
from operator import add, lt
from typing import Callable, Iterable, Iterator, Mapping, Sequence

from orchestrator.candle_schedule import CandleColumns, CandleSchedule
from orchestrator.candles import TIMEFRAMES, Candle
from orchestrator.config import InvalidConfig
from orchestrator.engine import StrategyOrchestrator
from orchestrator.equity_curve import EquityCurve
from orchestrator.events import Event, EventSequence, EventType
from orchestrator.indicator_series import IndicatorSeries
from orchestrator.metrics import Convention, Metrics, Trade, compute
from orchestrator.ports import MemoryPublisher, MemoryStore
from orchestrator.positions import Side
from orchestrator.strategy import DecidesOnKnownCandles, Strategy

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
    candles = {market: in_period(run, start, end) for market, run in streams.items()}
    return (candles[market][index] for market, index in candle_order(candles))


def holding_sides(runs: Sequence[StrategyRun], symbol: str) -> dict[Side, list[str]]:
    """Which strategies hold a position in `symbol`, by side."""
    sides: dict[Side, list[str]] = {}
    for run in runs:
        held = run.orchestrator.book.held
        if held:
            for side in {p.side for p in held if p.symbol == symbol}:
                sides.setdefault(side, []).append(run.allocation.strategy_id)
    return sides


# Candles between two freezes of what a backtest has recorded so far (a multiple of PROGRESS_EVERY: a run of one
# market steps from report to report).
FREEZE_EVERY = 1000
# Candles between two progress reports at most.
PROGRESS_EVERY = 100


class RecordsFrozen:
    """Keeps the garbage collector's full passes off what a backtest keeps: what existed before it (the candles,
    the loaded modules) and, every `FREEZE_EVERY` candles (`keep`), what it has recorded since. A backtest keeps
    everything it records, and each full pass would walk all of it again. Nothing is left uncollected: the
    objects go back to the collector when the run ends. A heap someone else froze is left as it is."""

    def __init__(self) -> None:
        self._own = False

    def __enter__(self) -> RecordsFrozen:
        self._own = not gc.get_freeze_count()
        if self._own:
            gc.freeze()
        return self

    def keep(self) -> None:
        """Freeze what was recorded so far (called every FREEZE_EVERY candles)."""
        if self._own:
            gc.freeze()

    def __exit__(self, *exc) -> None:
        if self._own:
            gc.unfreeze()


def run_backtest(
    spec: BacktestSpec, streams: Mapping[Market, Sequence[Candle]],
    progress: Callable[[int], None] | None = None,
) -> BacktestResult:
    """Run the portfolio over the candles of its markets (InvalidBacktest, before any candle, if the spec or the
    data cannot run); `progress(candles so far)` is called as it goes, at least every PROGRESS_EVERY candles and after
    the last."""
    spec.check()
    missing = sorted({a.market for a in spec.allocations} - set(streams))
    if missing:
        raise InvalidBacktest({"data": f"no candles for {', '.join(f'{s} {tf}' for s, tf in missing)}"})
    markets = list(dict.fromkeys(a.market for a in spec.allocations))
    candles = {market: in_period(streams[market], spec.start, spec.end) for market in markets}
    columns = {market: CandleColumns(candles[market]) for market in markets}
    unordered = [market for market in markets if not all(map(lt, columns[market].times, columns[market].times[1:]))]
    if unordered:
        raise InvalidBacktest({"data": f"candles out of time order for {', '.join(f'{s} {tf}' for s, tf in unordered)}"})
    # Every strategy of a market reads its indicators from the market's series: one worked out once per key.
    indicators = {market: IndicatorSeries(candles[market], columns[market].times) for market in markets}
    runs: dict[str, StrategyRun] = {}
    schedules: dict[Market, list[CandleSchedule]] = {market: [] for market in markets}
    by_market: dict[Market, list[StrategyRun]] = {market: [] for market in markets}
    for allocation in spec.allocations:
        capital = spec.capital * allocation.weight
        market = allocation.market
        orchestrator = StrategyOrchestrator(
            allocation.strategy_id, allocation.strategy, allocation.symbol, allocation.timeframe, capital,
            MemoryStore(), MemoryPublisher(), market_indicators=indicators[market],
        )
        runs[allocation.strategy_id] = run = StrategyRun(allocation, capital, orchestrator)
        by_market[market].append(run)
        decisions = None
        if isinstance(allocation.strategy, DecidesOnKnownCandles):
            series = indicators[market].series
            decisions = allocation.strategy.decision_candles(
                {declared.key: series[declared.key] for declared in allocation.strategy.indicators()})
        schedules[market].append(CandleSchedule(orchestrator, columns[market], decisions, run.equity))
    cash = spec.capital - sum((run.capital for run in runs.values()), ZERO)
    result = BacktestResult(spec, runs, cash)
    loop = PortfolioLoop(result, candles, schedules)
    order = candle_order(candles)
    with RecordsFrozen() as frozen:
        if len(candles) == 1:
            loop.through_one_market(frozen, progress)
        else:
            loop.through_markets(order, frozen, progress)
        for members in schedules.values():
            for schedule in members:
                schedule.finish()
        result.equity = portfolio_curve(cash, by_market, columns, order)
    result.candles = sum(map(len, candles.values()))
    return result


class PortfolioLoop:
    """Gives each market's candles, in the order they close, to the strategies due to take them (`CandleSchedule`),
    and reports strategies of one symbol holding opposite sides as the conflict begins."""

    def __init__(self, result: BacktestResult, candles: Mapping[Market, Sequence[Candle]],
                 schedules: Mapping[Market, list[CandleSchedule]]) -> None:
        self.result = result
        self.candles = candles
        self.schedules = schedules
        # The next candle of each market on which one of its strategies can do something.
        self.due = {market: min(s.due for s in members) for market, members in schedules.items()}
        self.by_symbol: dict[str, list[StrategyRun]] = {}
        for run in result.runs.values():
            self.by_symbol.setdefault(run.allocation.symbol, []).append(run)
        self.conflicted: set[str] = set()
        self.portfolio_events = EventSequence("")

    def through_markets(self, order: Iterable[tuple[Market, int]], frozen: RecordsFrozen,
                        progress: Callable[[int], None] | None) -> None:
        """Every candle of every market in `order`; `progress` after each."""
        due, take = self.due, self.take
        for count, (market, index) in enumerate(order, 1):
            if index == due[market]:
                take(market, index)
            if not count % FREEZE_EVERY:
                frozen.keep()
            if progress is not None:
                progress(count)

    def through_one_market(self, frozen: RecordsFrozen, progress: Callable[[int], None] | None) -> None:
        """The one market's candles, from due one to due one: the quiet ones between are the schedules' to pass.
        `progress` after each due candle and at every PROGRESS_EVERY candles (the last one too)."""
        [(market, run)] = self.candles.items()
        total, due, take = len(run), self.due, self.take
        done = 0
        while done < total:
            boundary = min(done - done % PROGRESS_EVERY + PROGRESS_EVERY, total)
            index = due[market]
            if index < boundary:
                take(market, index)
                done = index + 1
            else:
                done = boundary
            if not done % FREEZE_EVERY:
                frozen.keep()
            if progress is not None:
                progress(done)

    def take(self, market: Market, index: int) -> None:
        """Candle `index` of `market` to the strategies due to take it."""
        candle = self.candles[market][index]
        moved = False
        members = self.schedules[market]
        for schedule in members:
            if schedule.due == index:
                moved |= schedule.take(index, candle)
        self.due[market] = min(s.due for s in members)
        # Who holds which side changes only with a candle that opened, reduced or closed a position.
        symbol = candle.symbol
        if moved and len(sharing := self.by_symbol[symbol]) > 1:
            sides = holding_sides(sharing, symbol)
            if Side.LONG in sides and Side.SHORT in sides:
                if symbol not in self.conflicted:
                    self.conflicted.add(symbol)
                    self.result.conflicts.append(self.portfolio_events.event(
                        EventType.CONFLICT_DETECTED, symbol, candle.time, long=sides[Side.LONG], short=sides[Side.SHORT],
                    ))
            else:
                self.conflicted.discard(symbol)


def in_period(candles: Sequence[Candle], start: datetime | None, end: datetime | None) -> Sequence[Candle]:
    """The candles opened in [start, end) (None: no bound)."""
    if start is None and end is None:
        return candles
    return [c for c in candles if (start is None or c.time >= start) and (end is None or c.time < end)]


def candle_order(candles: Mapping[Market, Sequence[Candle]]) -> Iterable[tuple[Market, int]]:
    """Each market's candles, by market and index, in the order `merged` gives them (one market's: once through)."""
    if len(candles) == 1:
        [(market, run)] = candles.items()
        return zip(repeat(market), range(len(run)))

    def keyed(market: Market, run: Sequence[Candle]):
        span = TIMEFRAMES[market[1]]
        for index, candle in enumerate(run):
            yield candle.time + span, span, candle.symbol, market, index

    return [(market, index) for *_, market, index in heapq.merge(*(keyed(m, run) for m, run in candles.items()))]


def portfolio_curve(cash: Decimal, runs: Mapping[Market, Sequence[StrategyRun]], columns: Mapping[Market, CandleColumns],
                    order: Iterable[tuple[Market, int]]) -> EquityCurve:
    """The unallocated cash plus every strategy's equity (its capital before its market's first candle), marked at
    every candle of every market in `order` (read only with several markets)."""
    # Each market's strategies summed, candle by candle.
    sums: dict[Market, list[Decimal]] = {}
    for market, members in runs.items():
        total = members[0].equity.values
        for run in members[1:]:
            total = list(map(add, total, run.equity.values))
        sums[market] = total
    portfolio = EquityCurve()
    times, values = portfolio.times, portfolio.values
    equity = None
    if len(sums) == 1:
        [(market, total)] = sums.items()
        times.extend(columns[market].times)
        if not cash and len(runs[market]) == 1:
            # All the capital is the one strategy's: the portfolio's equity is its equity, mark for mark.
            values.extend(total)
            return portfolio
        previous = None
        for value in total:
            if value is not previous:
                previous, kept = value, cash + value
                if kept != equity:
                    equity = kept
            values.append(equity)
        return portfolio
    latest = {market: sum((run.capital for run in members), ZERO) for market, members in runs.items()}
    equity = cash + sum(latest.values(), ZERO)
    for market, index in order:
        value = sums[market][index]
        before = latest[market]
        if value is not before:
            latest[market] = value
            kept = equity + (value - before)
            if kept != equity:
                equity = kept
        times.append(columns[market].times[index])
        values.append(equity)
    return portfolio
