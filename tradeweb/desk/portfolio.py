"""The portfolio table: every strategy side by side (status, equity, P&L today and in all, drawdown over its
market's last day, trades, win rate), sorted on the server by any column, with a totals row; and the combined
equity chart's series, the strategies' sampled equity summed (`equity_samples.combined`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Callable, Iterable, Mapping

from orchestrator.metrics import drawdown
from tradeweb.desk import equity_samples
from tradeweb.desk.strategy_figures import StrategyFigures

ZERO = Decimal(0)
# Column key: (heading, what a row sorts by, whether a first click sorts it high to low).
COLUMNS: dict[str, tuple[str, Callable[[StrategyFigures], object], bool]] = {
    "name": ("Strategy", lambda f: f.strategy.name.lower(), False),
    "status": ("Status", lambda f: f.status, False),
    "equity": ("Equity", lambda f: f.equity, True),
    "pnl_today": ("P&L today", lambda f: f.pnl_today, True),
    "pnl_total": ("P&L total", lambda f: f.pnl_total, True),
    "drawdown": ("Drawdown 24 h", lambda f: f.drawdown, False),
    "trades": ("Trades", lambda f: f.trades, True),
    "win_rate": ("Win rate", lambda f: f.win_rate, True),
}
DEFAULT_SORT = "name"


@dataclass(frozen=True, slots=True)
class TableChoice:
    """The column the table is sorted by and the direction, checked (anything unknown falls back to the default)."""

    sort: str = DEFAULT_SORT
    descending: bool = False

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> TableChoice:
        sort = query.get("sort")
        if sort not in COLUMNS:
            return cls()
        order = query.get("order")
        return cls(sort, COLUMNS[sort][2] if order not in ("asc", "desc") else order == "desc")

    @property
    def query(self) -> str:
        """The query string that asks for this choice."""
        return f"sort={self.sort}&order={'desc' if self.descending else 'asc'}"


@dataclass(frozen=True, slots=True)
class Totals:
    """The totals row: sums, the win rate of every trade, the combined curve's drawdown and the statuses counted."""

    equity: Decimal
    pnl_today: Decimal
    pnl_total: Decimal
    drawdown: float
    trades: int
    wins: int
    statuses: tuple[tuple[str, int], ...]

    @property
    def win_rate(self) -> float | None:
        return self.wins / self.trades if self.trades else None

    @property
    def percents(self) -> dict[str, float | None]:
        """Drawdown and win rate in percent, for reading."""
        return {"drawdown": self.drawdown * 100, "win_rate": self.win_rate * 100 if self.trades else None}


def sorted_rows(rows: Iterable[StrategyFigures], choice: TableChoice) -> list[StrategyFigures]:
    """The rows by the chosen column (ties by strategy id); rows without a value for it (a win rate without
    trades) come last either way."""
    key = COLUMNS[choice.sort][1]
    rows = sorted(rows, key=lambda f: f.strategy.strategy_id)
    valued = [f for f in rows if key(f) is not None]
    # Python's sort is stable in both directions, so equal values keep the strategy ids' order.
    valued.sort(key=key, reverse=choice.descending)
    return valued + [f for f in rows if key(f) is None]


def totals(rows: list[StrategyFigures], curve: list[tuple[datetime, Decimal]]) -> Totals:
    """The totals row of `rows`, its drawdown measured on the combined curve."""
    statuses: dict[str, int] = {}
    for f in rows:
        statuses[f.status] = statuses.get(f.status, 0) + 1
    return Totals(
        equity=sum((f.equity for f in rows), ZERO),
        pnl_today=sum((f.pnl_today for f in rows), ZERO),
        pnl_total=sum((f.pnl_total for f in rows), ZERO),
        drawdown=drawdown(curve[0][1], curve)[0] if curve else 0.0,
        trades=sum(f.trades for f in rows),
        wins=sum(f.wins for f in rows),
        statuses=tuple(sorted(statuses.items())),
    )


def combined_curve(rows: list[StrategyFigures]) -> list[tuple[datetime, Decimal]]:
    """Every strategy's equity summed at the end of each quarter-hour of the last day."""
    windows = {f.window.market: f.window for f in rows if f.window is not None}
    return equity_samples.combined(windows, [f.samples for f in rows])


def headings(choice: TableChoice) -> list[dict]:
    """Each column's heading with the query string its link asks for: the other direction for the column sorted
    by, the column's own first direction for the others."""
    columns = []
    for key, (label, _, high_first) in COLUMNS.items():
        active = key == choice.sort
        next_choice = TableChoice(key, not choice.descending if active else high_first)
        columns.append({
            "key": key, "label": label, "query": next_choice.query, "active": active,
            "sorted": ("descending" if choice.descending else "ascending") if active else "none",
        })
    return columns


def table(rows: list[StrategyFigures], choice: TableChoice) -> dict:
    """What the portfolio table partial shows, with the combined curve's series for the chart above it (also as
    JSON for an attribute: htmx drops the script elements of what it swaps in, scripts being off under the policy)."""
    curve = combined_curve(rows)
    series = chart_series(curve)
    return {
        "rows": sorted_rows(rows, choice),
        "totals": totals(rows, curve),
        "choice": choice,
        "headings": headings(choice),
        "chart": series,
        "chart_json": json.dumps(series, separators=(",", ":")),
    }


def chart_series(curve: list[tuple[datetime, Decimal]]) -> list[list]:
    """The combined curve for the chart, as [epoch seconds, value] pairs."""
    return [[int(time.timestamp()), float(value)] for time, value in curve]
