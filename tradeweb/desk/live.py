"""Live trading in a worker process: candles in, routed to the active strategies of their market.

Each worker process keeps its orchestrators in an LRU cache. A cached orchestrator is
used only while it matches the strategy's row (config version, last candle, last event
number); otherwise it is rebuilt from the database. The strategy row is locked while a
candle is processed, so two workers never run one strategy at the same time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, transaction

from orchestrator.cache import OrchestratorCache
from orchestrator.candles import TIMEFRAMES, Candle, CandleRejected, check_symbol, to_utc
from orchestrator.engine import StrategyOrchestrator
from orchestrator.events import Event as CoreEvent
from orchestrator.events import EventType
from orchestrator.market_rules import Arrival, MarketRules
from strategies import build_strategy
from tradeweb.desk import models
from tradeweb.desk.storage import (
    ChannelsEventPublisher, DjangoStrategyStore, event_row, load_state, usable_candle, warm_up_candles,
)

log = logging.getLogger(__name__)

_cache: OrchestratorCache[str, tuple[int, StrategyOrchestrator]] | None = None


def orchestrator_cache() -> OrchestratorCache[str, tuple[int, StrategyOrchestrator]]:
    """This process's cache of (config version, orchestrator), made on first use."""
    global _cache
    if _cache is None:
        _cache = OrchestratorCache(settings.ORCHESTRATOR_CACHE_SIZE)
    return _cache


def build_orchestrator(strategy: models.Strategy, before: datetime) -> StrategyOrchestrator:
    """A fresh orchestrator from the database: config, positions, orders, and the snapshot stored
    with its last candle; without a usable snapshot (a new strategy, a changed config) its
    indicators warm up on stored candles older than `before`, the time of the candle it is built for."""
    orchestrator = StrategyOrchestrator(
        strategy_id=strategy.strategy_id,
        strategy=build_strategy(strategy.strategy_class, strategy.config),
        symbol=strategy.symbol,
        timeframe=strategy.timeframe,
        capital=strategy.capital,
        store=DjangoStrategyStore(),
        publisher=ChannelsEventPublisher(),
        state=load_state(strategy),
        keep_snapshots=True,
    )
    if not orchestrator.restore(strategy.snapshot):
        orchestrator.warm_up(warm_up_candles(strategy, settings.WARM_UP_CANDLES, before))
    return orchestrator


def is_current(config_version: int, orchestrator: StrategyOrchestrator, strategy: models.Strategy) -> bool:
    """True when a cached orchestrator saw exactly what the database holds: same config, candle and event."""
    return (
        config_version == strategy.config_version
        and orchestrator.last_candle_time == strategy.last_candle_time
        and orchestrator.sequence.last == strategy.last_sequence
    )


def orchestrator_for(strategy: models.Strategy, before: datetime) -> StrategyOrchestrator:
    """The cached orchestrator if it is current, else one rebuilt from the database (a miss)."""
    cache = orchestrator_cache()
    entry = cache.get(strategy.strategy_id, lambda e: is_current(e[0], e[1], strategy))
    if entry is not None:
        return entry[1]
    orchestrator = build_orchestrator(strategy, before)
    cache.put(strategy.strategy_id, (strategy.config_version, orchestrator))
    return orchestrator


@dataclass
class IngestOutcome:
    """What became of one candle from the feed."""

    status: str
    reason: str = ""
    processed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def ingest_candle(data: Any) -> IngestOutcome:
    """Validate, store and route one closed candle to the active strategies of its market.

    A candle that breaks a rule (see `orchestrator.candles` and `orchestrator.market_rules`)
    is stored nowhere and reaches no strategy: each active strategy on that market, or the
    system feed, gets a DATA_REJECTED event instead. A duplicate is routed again, which the
    strategies ignore, so a task that ran twice changes nothing.
    """
    try:
        candle = Candle.from_mapping(data)
        status = store_candle(candle, datetime.now(timezone.utc))
    except CandleRejected as rejected:
        reject_market_data(data, str(rejected))
        return IngestOutcome("rejected", str(rejected))
    outcome = IngestOutcome(status)
    for strategy_id in active_strategy_ids(candle.symbol, candle.timeframe):
        if process_for_strategy(strategy_id, candle):
            outcome.processed.append(strategy_id)
        else:
            outcome.failed.append(strategy_id)
    return outcome


def market_rules(symbol: str, timeframe: str) -> MarketRules:
    """The rules of a known market; raises CandleRejected for a market the desk does not know."""
    market = models.Market.objects.filter(symbol=symbol, timeframe=timeframe).first()
    if market is None:
        raise CandleRejected(
            f"no market {symbol} {timeframe} on this desk: add it under Markets in the admin, "
            "or configure a strategy on it"
        )
    return MarketRules(symbol, timeframe, market.max_move, settings.CANDLE_CLOCK_TOLERANCE)


def store_candle(candle: Candle, now: datetime) -> str:
    """Store a candle once, if its market's rules allow: "new", or "duplicate" when exactly this
    candle is already stored (by us or a concurrent worker); raises CandleRejected otherwise."""
    rules = market_rules(candle.symbol, candle.timeframe)
    row = models.Candle.objects.filter(symbol=candle.symbol, timeframe=candle.timeframe).order_by("-time").first()
    if rules.check(candle, stored_candle(row, candle), now) is Arrival.DUPLICATE:
        return "duplicate"
    try:
        with transaction.atomic():
            models.Candle.objects.create(
                symbol=candle.symbol, timeframe=candle.timeframe, time=candle.time, open=candle.open,
                high=candle.high, low=candle.low, close=candle.close, volume=candle.volume,
            )
    except IntegrityError:
        # A concurrent worker stored a candle at this time first: the same one, or a conflicting one.
        row = models.Candle.objects.get(symbol=candle.symbol, timeframe=candle.timeframe, time=candle.time)
        rules.check(candle, stored_candle(row, candle), None)
        return "duplicate"
    return "new"


def stored_candle(row: models.Candle | None, incoming: Candle) -> Candle | None:
    """The last stored candle for the rules to compare with; of an unusable row (see
    `usable_candle`) only the time is checked, and no price is compared with it."""
    if row is None:
        return None
    stored = usable_candle(row)
    if stored is None and incoming.time <= row.time:
        raise CandleRejected(
            f"out of order: {incoming.time.isoformat()} is not after the last stored candle at {row.time.isoformat()}"
        )
    return stored


def active_strategy_ids(symbol: str, timeframe: str) -> list[str]:
    """Ids of the active strategies trading a market: the only ones its candles go to."""
    return list(
        models.Strategy.objects.filter(symbol=symbol, timeframe=timeframe, status=models.Strategy.Status.ACTIVE)
        .order_by("strategy_id")
        .values_list("strategy_id", flat=True)
    )


def process_for_strategy(strategy_id: str, candle: Candle) -> bool:
    """Process a candle for one strategy; its failure is recorded on it and stops no other."""
    try:
        with transaction.atomic():
            strategy = models.Strategy.objects.select_for_update().get(strategy_id=strategy_id)
            if strategy.status != models.Strategy.Status.ACTIVE:
                return True
            orchestrator_for(strategy, candle.time).process(candle)
        return True
    except IntegrityError:
        # Another worker stored this candle for this strategy first: ours was a duplicate.
        orchestrator_cache().discard(strategy_id)
        log.warning("candle %s for %s was already stored; skipped", candle.time.isoformat(), strategy_id)
        return True
    except (OperationalError, InterfaceError):
        # The database is unreachable: not the strategy's fault. The task retries the whole candle.
        orchestrator_cache().discard(strategy_id)
        raise
    except Exception as error:
        orchestrator_cache().discard(strategy_id)
        log.exception("strategy %s failed on candle %s", strategy_id, candle.time.isoformat())
        mark_failed(strategy_id, candle.time, error)
        return False


def mark_failed(strategy_id: str, time: datetime, error: Exception) -> None:
    """Put a strategy in error with a STRATEGY_ERROR event, so the desk sees it and it takes no more candles."""
    message = f"{type(error).__name__}: {error}"
    with transaction.atomic():
        strategy = models.Strategy.objects.select_for_update().get(strategy_id=strategy_id)
        strategy.status = models.Strategy.Status.ERROR
        strategy.last_error = message
        event = append_event(strategy, EventType.STRATEGY_ERROR, time, error=message)
        strategy.save(update_fields=["status", "last_error", "last_sequence", "updated_at"])
    ChannelsEventPublisher().publish([event])


def append_event(strategy: models.Strategy, type: EventType, time: datetime, **payload: Any) -> CoreEvent:
    """Store the strategy's next event outside candle processing (control, errors); the row must be locked."""
    strategy.last_sequence += 1
    event = CoreEvent(type, strategy.strategy_id, strategy.symbol, time, strategy.last_sequence, payload)
    event_row(event).save()
    return event


def reject_market_data(data: Any, reason: str) -> None:
    """Tell every active strategy on the candle's market (or the system feed, if none) that it was rejected.

    `data` is whatever the feed sent; only the parts that are valid go into the event.
    """
    now = datetime.now(timezone.utc)
    fields = data if isinstance(data, Mapping) else {}
    symbol, timeframe = fields.get("symbol"), fields.get("timeframe")
    try:
        symbol = check_symbol(symbol)
    except CandleRejected:
        symbol = ""
    if not isinstance(timeframe, str) or timeframe not in TIMEFRAMES:
        timeframe = ""
    try:
        # A candle stamped in the future is reported at the time it was refused.
        time = min(to_utc(fields.get("time")), now)
    except CandleRejected:
        time = now
    strategy_ids = active_strategy_ids(symbol, timeframe) if symbol and timeframe else []
    for strategy_id in strategy_ids:
        try:
            with transaction.atomic():
                strategy = models.Strategy.objects.select_for_update().get(strategy_id=strategy_id)
                orchestrator_for(strategy, time).reject(time, reason)
        except (OperationalError, InterfaceError):
            orchestrator_cache().discard(strategy_id)
            raise
        except Exception as error:
            orchestrator_cache().discard(strategy_id)
            log.exception("could not record rejected data for %s", strategy_id)
            mark_failed(strategy_id, time, error)
    if not strategy_ids:
        event = CoreEvent(EventType.DATA_REJECTED, "", symbol, time, 0, {"reason": reason, "timeframe": timeframe})
        with transaction.atomic():
            event_row(event).save()
            ChannelsEventPublisher().publish([event])
    log.warning("rejected candle %s %s: %s", symbol or "?", timeframe or "?", reason)
