"""What the dashboard shows of each strategy, on its card and in its row of the portfolio table: its status with
the reason, its equity over its market's last day (`equity_samples`), P&L today and in all, open exposure,
trades and win rate, and its last event as a sentence. Worked out for any number of strategies in a fixed number
of queries (seven at most, whether one card is refreshed or a hundred are shown).

"Today" is the UTC day of the newest candle of the strategy's market: market time, which is the wall clock's
day for a market that trades now, and the replayed day for a replay.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cached_property

from django.db.models import Case, Count, OuterRef, Q, Subquery, When

from orchestrator.events import EventType
from orchestrator.metrics import drawdown
from tradeweb.desk import equity_samples, models
from tradeweb.desk.equity_samples import ANCHOR, BUCKETS, EquitySamples, MarketWindow
from tradeweb.desk.event_sentences import sentence

ZERO = Decimal(0)
# The sparkline's drawing box (SVG user units): stretched to the card's width by the stylesheet.
SPARK_WIDTH, SPARK_HEIGHT = 100, 24


@dataclass(frozen=True, slots=True)
class LastEvent:
    """A strategy's newest event, told as the feed tells it, with its tone (gain, loss, warning or none)."""

    time: datetime
    type: str
    sentence: str
    tone: str


@dataclass(frozen=True)
class StrategyFigures:
    """One strategy's figures for its card and its row of the portfolio table (those read more than once on a page
    worked out once)."""

    strategy: models.Strategy
    status: str  # active, draining, dormant, halted or error
    status_reason: str
    open_positions: tuple[models.Position, ...]
    window: MarketWindow | None
    samples: EquitySamples
    trades: int
    wins: int
    last_event: LastEvent | None

    @property
    def status_label(self) -> str:
        return self.status.capitalize()

    @property
    def equity(self) -> Decimal:
        return self.strategy.current_equity

    @property
    def pnl_today(self) -> Decimal:
        """Since the UTC day of its market's newest candle began."""
        return self.samples.pnl_today

    @property
    def today(self) -> date | None:
        """The UTC day "today" is in its market's time; None for a market without candles."""
        return self.window.day_begins.date() if self.window else None

    @property
    def pnl_total(self) -> Decimal:
        """Realized plus unrealized, since it began."""
        return self.strategy.total_pnl

    @cached_property
    def drawdown(self) -> float:
        """The deepest fall from a peak over its market's last day (0 or negative, a fraction), read off the
        sampled closes as `orchestrator.metrics` measures drawdown."""
        return drawdown(self.samples.opening, [(time, equity) for _, time, equity in self.samples.points])[0]

    @property
    def win_rate(self) -> float | None:
        """Share of its closed trades with a P&L above zero, as `orchestrator.metrics` counts wins."""
        return self.wins / self.trades if self.trades else None

    @cached_property
    def exposure(self) -> Decimal:
        """What its open positions are worth at its last close (at their entry before its first candle)."""
        close = self.strategy.last_close
        return sum((p.quantity * (close if close is not None else p.entry_price) for p in self.open_positions), ZERO)

    @property
    def exposure_share(self) -> float | None:
        """Open exposure as a fraction of equity."""
        return float(self.exposure / self.equity) if self.equity > 0 else None

    @cached_property
    def percents(self) -> dict[str, float | None]:
        """Exposure (of equity), drawdown and win rate in percent, for reading."""
        def percent(share: float | None) -> float | None:
            return share * 100 if share is not None else None

        return {
            "exposure": percent(self.exposure_share),
            "drawdown": percent(self.drawdown),
            "win_rate": percent(self.win_rate),
        }

    @cached_property
    def sparkline(self) -> str:
        """The SVG polyline points of its equity over the last day: x by quarter-hour, y scaled to its range."""
        points = self.samples.points
        if len(points) < 2:
            return ""
        # Floats are plenty for a drawing a few dozen pixels high.
        values = [float(equity) for _, _, equity in points]
        low, spread = min(values), max(values) - min(values)
        scale = SPARK_HEIGHT / spread if spread else 0.0
        coordinates = []
        for (index, _, _), value in zip(points, values):
            # A flat curve is drawn across the middle; otherwise the lowest point touches the bottom.
            y = SPARK_HEIGHT - (value - low) * scale if spread else SPARK_HEIGHT / 2
            coordinates.append(f"{(index - ANCHOR) * SPARK_WIDTH / BUCKETS:.2f},{y:.2f}")
        return " ".join(coordinates)


def status_of(strategy: models.Strategy, deactivated: models.Event | None) -> tuple[str, str]:
    """Its status as the desk tells it (a risk halt shows over active and draining) and why, in a few words."""
    if strategy.status == models.Strategy.Status.ERROR:
        return "error", strategy.last_error
    if strategy.halted_reason and strategy.status in models.TAKING_CANDLES:
        return "halted", strategy.halted_reason
    if strategy.status == models.Strategy.Status.DRAINING:
        how = "closes at market on the next candle" if strategy.wind_down == "close" else "keeps managing its exits"
        return "draining", f"switched off holding a position: {how}, dormant once flat"
    if strategy.status == models.Strategy.Status.DORMANT:
        return "dormant", sentence(deactivated.to_mapping()).text if deactivated is not None else "Not activated yet"
    return strategy.status, ""


def last_events(strategy_ids: list[str]) -> tuple[dict[str, models.Event], dict[str, models.Event]]:
    """Each strategy's newest event, and each dormant one's last STRATEGY_DEACTIVATED event, in two queries: their
    ids (each the first entry of an index: the events' per strategy, and the switch-offs' own), then the events."""
    def newest(**only) -> Subquery:
        return Subquery(
            models.Event.objects.filter(strategy_id=OuterRef("strategy_id"), **only).order_by("-id").values("id")[:1]
        )

    ids = models.Strategy.objects.filter(strategy_id__in=strategy_ids).values_list(
        newest(), Case(When(status=models.Strategy.Status.DORMANT, then=newest(type=EventType.STRATEGY_DEACTIVATED))),
    )
    wanted = {event_id for pair in ids for event_id in pair if event_id is not None}
    latest: dict[str, models.Event] = {}
    deactivated: dict[str, models.Event] = {}
    for event in models.Event.objects.filter(id__in=wanted).order_by("id"):
        latest[event.strategy_id] = event
        if event.type == EventType.STRATEGY_DEACTIVATED:
            deactivated[event.strategy_id] = event
    return latest, deactivated


def figures(strategies: list[models.Strategy]) -> dict[str, StrategyFigures]:
    """Every strategy's figures, by strategy id."""
    ids = [s.strategy_id for s in strategies]
    windows = equity_samples.market_windows((s.symbol, s.timeframe) for s in strategies)
    sampled = equity_samples.samples(strategies, windows)
    latest, deactivated = last_events(ids) if ids else ({}, {})
    held: dict[str, list[models.Position]] = defaultdict(list)
    for position in models.Position.objects.filter(strategy_id__in=ids, closed_at=None):
        held[position.strategy_id].append(position)
    counts = {
        sid: (trades, wins)
        for sid, trades, wins in models.Position.objects.filter(strategy_id__in=ids, closed_at__isnull=False)
        .values("strategy_id").annotate(trades=Count("id"), wins=Count("id", filter=Q(realized_pnl__gt=0)))
        .order_by().values_list("strategy_id", "trades", "wins")
    }
    result = {}
    for strategy in strategies:
        sid = strategy.strategy_id
        status, reason = status_of(strategy, deactivated.get(sid))
        event = latest.get(sid)
        said = sentence(event.to_mapping()) if event is not None else None
        trades, wins = counts.get(sid, (0, 0))
        result[sid] = StrategyFigures(
            strategy=strategy,
            status=status,
            status_reason=reason,
            open_positions=tuple(held[sid]),
            window=windows.get((strategy.symbol, strategy.timeframe)),
            samples=sampled[sid],
            trades=trades,
            wins=wins,
            last_event=LastEvent(event.time, event.type, said.text, said.tone) if said is not None else None,
        )
    return result
