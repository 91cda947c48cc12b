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
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Iterable, Sequence

ZERO = Decimal(0)


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


def daily_returns(start: Decimal, curve: Sequence[tuple[datetime, Decimal]]) -> list[float]:
    """One return per UTC day that has a mark: its last equity against the day before's (the first day's
    against `start`, the equity before the first mark)."""
    closes: dict = {}
    for time, equity in curve:
        closes[time.date()] = equity
    returns, previous = [], start
    for equity in closes.values():
        returns.append(float(equity / previous) - 1.0 if previous else 0.0)
        previous = equity
    return returns


def drawdown(start: Decimal, curve: Sequence[tuple[datetime, Decimal]]) -> tuple[float, timedelta]:
    """The deepest fall from a peak (a fraction, 0 or negative) and the longest time spent below a peak
    (until the equity is back at it, or the curve's end)."""
    peak, peak_time = start, curve[0][0] if curve else None
    deepest, longest = 0.0, timedelta(0)
    for time, equity in curve:
        if equity >= peak:
            peak, peak_time = equity, time
            continue
        deepest = min(deepest, float(equity / peak) - 1.0)
        longest = max(longest, time - peak_time)
    return deepest, longest


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
    returns = daily_returns(start, curve)
    final = curve[-1][1] if curve else start
    total = float(final / start) - 1.0 if start else 0.0
    years = len(returns) / convention.periods_per_year
    cagr = float(final / start) ** (1 / years) - 1 if returns and start and final > 0 else None
    deepest, longest = drawdown(start, curve)
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
        max_drawdown_duration=longest,
        trades=len(trades),
        win_rate=len(wins) / len(trades) if trades else None,
        profit_factor=float(sum(wins, ZERO) / gross_loss) if gross_loss > 0 else None,
        expectancy=sum((t.pnl for t in trades), ZERO) / len(trades) if trades else None,
        average_win=sum(wins, ZERO) / len(wins) if wins else None,
        average_loss=sum(losses, ZERO) / len(losses) if losses else None,
        exposure=exposure(trades, (curve[0][0], curve[-1][0])) if curve else 0.0,
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
