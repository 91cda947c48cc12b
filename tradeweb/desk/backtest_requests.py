"""A backtest as the desk's users ask for it, turned into the core's `BacktestSpec` and the candles it runs on.

The one place a spec is built from input: `manage.py backtest` and the New backtest form both describe what they
want as a `BacktestRequest` (stored strategies by id and weight, or a class with its config; the capital, the
period, fee and slippage for every strategy) and call `build_spec`, which reports every problem by field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from django.db.models import Max, Min

from orchestrator.backtest import Allocation, BacktestSpec, InvalidBacktest, Market
from orchestrator.candles import TIMEFRAMES, Candle
from orchestrator.config import InvalidConfig
from orchestrator.datasets import (
    DATASETS, frame_to_candles, load_candles, read_candle_frame, resample_frame,
)
from orchestrator.events import decimal_text
from strategies import build_strategy
from tradeweb.desk import models
from tradeweb.desk.storage import usable_candle

# What `fee_rate` and `slippage` of the request override in every strategy's config.
COST_FIELDS = ("fee_rate", "slippage")


@dataclass(frozen=True)
class PortfolioPart:
    """One strategy of a requested portfolio: a stored strategy by id, or (with `strategy_class`) a class with
    its config on a market, named `strategy_id` in the result."""

    strategy_id: str
    weight: Decimal
    strategy_class: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)
    symbol: str = ""
    timeframe: str = "1m"

    @property
    def stored(self) -> bool:
        return not self.strategy_class

    def to_json(self) -> dict:
        data: dict[str, Any] = {"strategy_id": self.strategy_id, "weight": decimal_text(self.weight)}
        if not self.stored:
            data.update(strategy_class=self.strategy_class, config=dict(self.config), symbol=self.symbol,
                        timeframe=self.timeframe)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PortfolioPart:
        return cls(data["strategy_id"], Decimal(data["weight"]), data.get("strategy_class", ""),
                   data.get("config", {}), data.get("symbol", ""), data.get("timeframe", "1m"))


@dataclass(frozen=True)
class BacktestRequest:
    """What a user asks to backtest: the portfolio, its capital, the period (candles opened in [start, end);
    None: from the first or to the last) and, when given, the fee rate and slippage of every strategy."""

    parts: tuple[PortfolioPart, ...]
    capital: Decimal
    start: datetime | None = None
    end: datetime | None = None
    fee_rate: Decimal | None = None
    slippage: Decimal | None = None

    def overrides(self) -> dict[str, Decimal]:
        """The config fields every strategy runs with instead of its own."""
        return {name: getattr(self, name) for name in COST_FIELDS if getattr(self, name) is not None}

    def to_json(self) -> dict:
        """As stored with a queued run, for the worker that runs it."""
        def moment(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        def number(value: Decimal | None) -> str | None:
            return decimal_text(value) if value is not None else None

        return {
            "strategies": [part.to_json() for part in self.parts], "capital": decimal_text(self.capital),
            "from": moment(self.start), "to": moment(self.end),
            "fee_rate": number(self.fee_rate), "slippage": number(self.slippage),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BacktestRequest:
        def moment(value: str | None) -> datetime | None:
            return datetime.fromisoformat(value) if value is not None else None

        def number(value: str | None) -> Decimal | None:
            return Decimal(value) if value is not None else None

        return cls(
            tuple(PortfolioPart.from_json(part) for part in data["strategies"]), Decimal(data["capital"]),
            moment(data["from"]), moment(data["to"]), number(data["fee_rate"]), number(data["slippage"]),
        )


ALLOCATION_KEY = re.compile(r"^allocations\[(\d+)\]")


def build_spec(request: BacktestRequest) -> BacktestSpec:
    """The spec the request asks for, or InvalidBacktest naming every wrong field: `allocations[i].<field>` for the
    i-th part (an unknown strategy, a config its class refuses), `fee_rate` and `slippage` when the override is
    what a config refuses, and whatever `BacktestSpec.problems()` finds."""
    problems: dict[str, str] = {}
    overrides = request.overrides()
    allocations: list[Allocation] = []
    part_of: list[int] = []  # the part each allocation comes from, to name a spec problem by the part
    for index, part in enumerate(request.parts):
        if part.stored:
            row = models.Strategy.objects.filter(strategy_id=part.strategy_id).first()
            if row is None:
                problems[f"allocations[{index}].strategy_id"] = f"no strategy {part.strategy_id!r}"
                continue
            strategy_class, config, symbol, timeframe = row.strategy_class, row.config, row.symbol, row.timeframe
        else:
            strategy_class, config, symbol, timeframe = part.strategy_class, part.config, part.symbol, part.timeframe
        try:
            strategy = build_strategy(strategy_class, dict(config) | overrides)
        except InvalidConfig as invalid:
            for name, message in invalid.errors.items():
                problems[name if name in overrides else f"allocations[{index}].{name}"] = message
            continue
        allocations.append(Allocation(part.strategy_id, strategy, symbol, timeframe, part.weight))
        part_of.append(index)
    spec = BacktestSpec(allocations, request.capital, request.start, request.end)
    for name, message in spec.problems().items():
        if name == "allocations" and request.parts:
            continue  # every part was refused above, each under its own name
        found = ALLOCATION_KEY.match(name)
        problems.setdefault(
            ALLOCATION_KEY.sub(f"allocations[{part_of[int(found[1])]}]", name) if found else name, message
        )
    if problems:
        raise InvalidBacktest(problems)
    return spec


def candle_streams(spec: BacktestSpec, data: Path | None = None) -> dict[Market, list[Candle]]:
    """Each market's candles in the spec's period: from `data` (a user's CSV, resampled), else the desk's stored
    candles of the market in the period, else the shipped dataset of its symbol. A market with none is left out
    (`run_backtest` names it)."""
    markets = {a.market for a in spec.allocations}
    streams: dict[Market, list[Candle]] = {}
    if data is not None:
        frame = read_candle_frame(data)
        streams = {(s, tf): frame_to_candles(resample_frame(frame, tf), s, tf) for s, tf in markets}
    for symbol, timeframe in sorted(markets - set(streams)):
        rows = models.Candle.objects.filter(symbol=symbol, timeframe=timeframe).order_by("time")
        if spec.start is not None:
            rows = rows.filter(time__gte=spec.start)
        if spec.end is not None:
            rows = rows.filter(time__lt=spec.end)
        stored = [c for c in (usable_candle(row) for row in rows.iterator()) if c is not None]
        if stored:
            streams[(symbol, timeframe)] = stored
        elif symbol in DATASETS:
            streams[(symbol, timeframe)] = load_candles(symbol, timeframe)
    # Trimmed to the period, so that their count is the number of candles the run takes.
    return {
        market: [c for c in candles if (spec.start is None or c.time >= spec.start) and (spec.end is None or c.time < spec.end)]
        for market, candles in streams.items()
    }


@dataclass(frozen=True)
class CandleRange:
    """Where a market's candles come from and the period they cover: opened in [start, end)."""

    source: str  # "stored" or "shipped"
    start: datetime
    end: datetime


def candle_ranges(symbol: str, timeframe: str) -> list[CandleRange]:
    """The candles a backtest of this market can run on: the desk's stored ones, then the shipped dataset."""
    span = TIMEFRAMES.get(timeframe, timedelta(minutes=1))
    ranges = []
    stored = models.Candle.objects.filter(symbol=symbol, timeframe=timeframe).aggregate(first=Min("time"), last=Max("time"))
    if stored["first"] is not None:
        ranges.append(CandleRange("stored", stored["first"], stored["last"] + span))
    if symbol in DATASETS:
        first, last = shipped_minutes(symbol)
        ranges.append(CandleRange("shipped", first, last + timedelta(minutes=1)))
    return ranges


@lru_cache(maxsize=None)
def shipped_minutes(symbol: str) -> tuple[datetime, datetime]:
    """The first and last minute of a shipped dataset (read once per process)."""
    index = read_candle_frame(DATASETS[symbol].path).index
    return index[0].to_pydatetime(), index[-1].to_pydatetime()


def period_problems(spec: BacktestSpec) -> dict[str, str]:
    """Each strategy whose market has no candle in the spec's period, by `allocations[i].data`, saying which
    candles there are: a run would leave its allocation idle as cash."""
    problems = {}
    for index, allocation in enumerate(spec.allocations):
        ranges = candle_ranges(allocation.symbol, allocation.timeframe)
        if not any((spec.end is None or r.start < spec.end) and (spec.start is None or r.end > spec.start) for r in ranges):
            there = "; ".join(f"{r.source} from {r.start:%Y-%m-%d %H:%M} to {r.end:%Y-%m-%d %H:%M}" for r in ranges)
            problems[f"allocations[{index}].data"] = (
                f"no candles of {allocation.symbol} {allocation.timeframe} in this period ({there or 'none at all'})"
            )
    return problems
