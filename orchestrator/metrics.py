"""Performance metrics of a strategy or a portfolio, from its mark-to-market equity curve and its closed trades:
the one implementation backtests and live P&L pages both use.

Conventions (`Convention`, stated wherever the figures are shown):
- Return ratios (volatility, Sharpe, Sortino, CAGR, Calmar) are computed on daily UTC returns: the equity at the
  last mark of each UTC day that has a mark, against the one of the day before (the first day against the
  starting equity). Annualised with 365 periods a year for markets that trade every day (252 for those that
  close on weekends), with an annual risk-free rate of 0 unless configured, spread evenly over the periods.
- Volatility and Sharpe use the sample standard deviation (ddof 1). Sortino's downside deviation is the root of
  the mean squared shortfall below the risk-free rate over every period (a period above it counts as 0).
- CAGR: the growth of the whole run, per year of periods (N daily returns are N / 365 years).
- Maximum drawdown and its duration use every mark of the curve, not only daily closes; Calmar is CAGR over
  that drawdown.
- A trade is a closed position with its P&L after fees. Win rate counts P&L above zero as a win; profit
  factor is gross profit over gross loss; expectancy is the mean P&L per trade. Exposure is the share of the
  curve's time span during which at least one position was open.

A figure that cannot be computed (too few returns, no loss for a profit factor) is None.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import chain
from typing import Any, Iterable, Sequence

from orchestrator.equity_curve import EquityCurve

ZERO = Decimal(0)
ONE_DAY = timedelta(days=1)
MIDNIGHT = datetime.min.time()


@dataclass(frozen=True, slots=True)
class Convention:
    """How return ratios are annualised and against what."""

    periods_per_year: int = 365
    risk_free_rate: float = 0.0
    ddof: int = 1


@dataclass(frozen=True, slots=True)
class Trade:
    """One closed position: when it was open and what it made after fees."""

    opened_at: datetime
    closed_at: datetime
    pnl: Decimal
    fees: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class Metrics:
    """Every figure of one equity curve and its trades (see the module's conventions)."""

    total_return: float
    cagr: float | None
    volatility: float | None
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    max_drawdown: float
    max_drawdown_duration: timedelta
    trades: int
    win_rate: float | None
    profit_factor: float | None
    expectancy: Decimal | None
    average_win: Decimal | None
    average_loss: Decimal | None
    exposure: float
    fees: Decimal


def day_ends(times: Sequence[datetime]) -> list[int]:
    """The index of each UTC day's last time, of times in order: one search per day, not a look at every time."""
    ends: list[int] = []
    index, count = 0, len(times)
    while index < count:
        first = times[index]
        index = bisect_left(times, datetime.combine(first.date() + ONE_DAY, MIDNIGHT, first.tzinfo), index)
        ends.append(index - 1)
    return ends


def day_closes(curve: Iterable[tuple[datetime, Decimal]]) -> list[Decimal]:
    """The equity at the last mark of each UTC day that has a mark, of marks in time order (an `EquityCurve` is
    read as it is kept, any other marks are kept so first)."""
    kept = curve if isinstance(curve, EquityCurve) else EquityCurve(curve)
    values = kept.values
    return [values[index] for index in day_ends(kept.times)]


def period_returns(start: Decimal, closes: Iterable[Decimal]) -> list[float]:
    """One return per close against the one before (the first against `start`)."""
    returns, previous = [], start
    for equity in closes:
        returns.append(float(equity / previous) - 1.0 if previous else 0.0)
        previous = equity
    return returns


def daily_returns(start: Decimal, curve: Sequence[tuple[datetime, Decimal]]) -> list[float]:
    """One return per UTC day that has a mark: its last equity against the day before's (the first day's
    against `start`, the equity before the first mark)."""
    return period_returns(start, day_closes(curve))


class RunningDrawdown:
    """The drawdown of a curve taken in time order, any number of marks at a time, and read at any point: extended
    mark by mark it gives what the whole curve gives, so a curve that grows is never gone over again.

    The deepest fall is a fraction of the peak (0 or negative); the longest time below a peak (until the equity is
    back at it, or the last mark) is kept as its two ends. Times may be datetimes or plain numbers (such as
    microseconds since 1970): only their order and differences are used."""

    __slots__ = ("peak", "peak_time", "trough", "deepest", "below_until", "longest")

    def __init__(self, start: Decimal) -> None:
        self.peak = self.trough = start
        self.peak_time: Any = None  # the first mark's time until a mark reaches the start
        self.deepest = 0.0
        self.below_until: Any = None  # the last mark of the current stretch below the peak, if in one
        self.longest: tuple[Any, Any] | None = None  # the longest stretch ended so far

    def extend(self, marks: Iterable[tuple[Any, Decimal]]) -> None:
        """Take the marks (time, equity) that follow those taken before."""
        marks = iter(marks)
        first = next(marks, None)
        if first is None:
            return
        if self.peak_time is None:
            self.peak_time = first[0]
        peak, peak_time, trough, deepest = self.peak, self.peak_time, self.trough, self.deepest
        below_until, longest = self.below_until, self.longest
        previous = None
        for time, equity in chain((first,), marks):
            if equity is previous:
                # The mark before's very equity (a curve keeps an unchanged one as that object): only time moves on.
                if below_until is None:
                    peak_time = time
                else:
                    below_until = time
                continue
            previous = equity
            if equity >= peak:
                if below_until is not None:
                    if longest is None or below_until - peak_time > longest[1] - longest[0]:
                        longest = (peak_time, below_until)
                    below_until = None
                peak = trough = equity
                peak_time = time
                continue
            below_until = time
            # Under one peak the fall is deepest at the lowest equity: divide only at a new low.
            if equity < trough:
                trough = equity
                depth = float(equity / peak) - 1.0
                if depth < deepest:
                    deepest = depth
        self.peak, self.peak_time, self.trough, self.deepest = peak, peak_time, trough, deepest
        self.below_until, self.longest = below_until, longest

    def longest_stretch(self) -> tuple[Any, Any] | None:
        """The two ends of the longest time below a peak (the current stretch counted up to its last mark); None
        if the curve never fell."""
        if self.below_until is None:
            return self.longest
        current = (self.peak_time, self.below_until)
        if self.longest is not None and self.longest[1] - self.longest[0] >= current[1] - current[0]:
            return self.longest
        return current


def drawdown(start: Decimal, curve: Iterable[tuple[datetime, Decimal]]) -> tuple[float, timedelta]:
    """The deepest fall from a peak (a fraction, 0 or negative) and the longest time spent below a peak
    (until the equity is back at it, or the curve's end)."""
    running = RunningDrawdown(start)
    running.extend(curve)
    stretch = running.longest_stretch()
    return running.deepest, stretch[1] - stretch[0] if stretch is not None else timedelta(0)


@dataclass(frozen=True, slots=True)
class CurveSummary:
    """All the metrics read of an equity curve: its start, the equity at each UTC day's last mark (the return ratios
    need no more), its drawdown over every mark and the times of its first and last marks. `summarize` works it out
    in one pass; a caller that keeps a growing curve can keep these instead of going over every mark again."""

    start: Decimal
    closes: Sequence[Decimal]
    max_drawdown: float
    max_drawdown_duration: timedelta
    span: tuple[datetime, datetime] | None

    @property
    def final(self) -> Decimal:
        """The equity at the last mark (the start without marks)."""
        return self.closes[-1] if self.closes else self.start


def summarize(start: Decimal, curve: Sequence[tuple[datetime, Decimal]]) -> CurveSummary:
    """The summary of an equity curve (marks in time order, from `start`)."""
    deepest, longest = drawdown(start, curve)
    return CurveSummary(start, day_closes(curve), deepest, longest, (curve[0][0], curve[-1][0]) if curve else None)


def exposure(trades: Iterable[Trade], span: tuple[datetime, datetime]) -> float:
    """The share of `span` during which at least one of the trades was open."""
    begin, end = span
    if end <= begin:
        return 0.0
    held, covered_until = timedelta(0), begin
    for trade in sorted(trades, key=lambda t: t.opened_at):
        opened, closed = max(trade.opened_at, covered_until), min(trade.closed_at, end)
        if closed > opened:
            held += closed - opened
            covered_until = closed
    return held / (end - begin)


def compute(
    start: Decimal, curve: Sequence[tuple[datetime, Decimal]], trades: Sequence[Trade],
    convention: Convention = Convention(), fees: Decimal | None = None,
) -> Metrics:
    """The metrics of an equity curve (marks in time order, from `start`) and its closed trades; `fees` is what
    was paid in all (open positions' entry fees too), the closed trades' fees if not given."""
    return metrics_of(summarize(start, curve), trades, convention, fees)


def metrics_of(
    curve: CurveSummary, trades: Sequence[Trade], convention: Convention = Convention(), fees: Decimal | None = None,
) -> Metrics:
    """The metrics of a summarized equity curve and its closed trades (see `compute`)."""
    start, final = curve.start, curve.final
    returns = period_returns(start, curve.closes)
    total = float(final / start) - 1.0 if start else 0.0
    years = len(returns) / convention.periods_per_year
    cagr = float(final / start) ** (1 / years) - 1 if returns and start and final > 0 else None
    deepest = curve.max_drawdown
    volatility, sharpe, sortino = ratios(returns, convention)
    wins = [t.pnl for t in trades if t.pnl > 0]
    losses = [t.pnl for t in trades if t.pnl <= 0]
    gross_loss = -sum(losses, ZERO)
    return Metrics(
        total_return=total,
        cagr=cagr,
        volatility=volatility,
        sharpe=sharpe,
        sortino=sortino,
        calmar=cagr / -deepest if cagr is not None and deepest < 0 else None,
        max_drawdown=deepest,
        max_drawdown_duration=curve.max_drawdown_duration,
        trades=len(trades),
        win_rate=len(wins) / len(trades) if trades else None,
        profit_factor=float(sum(wins, ZERO) / gross_loss) if gross_loss > 0 else None,
        expectancy=sum((t.pnl for t in trades), ZERO) / len(trades) if trades else None,
        average_win=sum(wins, ZERO) / len(wins) if wins else None,
        average_loss=sum(losses, ZERO) / len(losses) if losses else None,
        exposure=exposure(trades, curve.span) if curve.span is not None else 0.0,
        fees=fees if fees is not None else sum((t.fees for t in trades), ZERO),
    )


def ratios(returns: Sequence[float], convention: Convention) -> tuple[float | None, float | None, float | None]:
    """Annualised volatility, Sharpe and Sortino of periodic returns."""
    count = len(returns)
    if count <= convention.ddof:
        return None, None, None
    per_period = convention.risk_free_rate / convention.periods_per_year
    excess = [r - per_period for r in returns]
    mean = sum(excess) / count
    spread = math.sqrt(sum((r - mean) ** 2 for r in excess) / (count - convention.ddof))
    annual = math.sqrt(convention.periods_per_year)
    volatility = spread * annual
    sharpe = mean / spread * annual if spread > 0 else None
    downside = math.sqrt(sum(min(r, 0.0) ** 2 for r in excess) / count)
    sortino = mean * convention.periods_per_year / (downside * annual) if downside > 0 else None
    return volatility, sharpe, sortino
