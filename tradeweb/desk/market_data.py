"""Candles at the door: validated, linked to the candle before them, stored once; bad ones reported.

A stored candle is the market's: the workers then advance every active strategy of the
market along the chain of stored candles (`tradeweb.desk.live`).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Mapping

from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, transaction

from orchestrator.candles import TIMEFRAMES, Candle, CandleRejected, check_symbol, to_utc
from orchestrator.events import Event as CoreEvent
from orchestrator.events import EventType
from orchestrator.market_rules import Arrival, MarketRules, previous_time
from tradeweb.desk import models
from tradeweb.desk.strategy_events import active_strategy_ids, mark_failed
from tradeweb.desk.orchestrators import orchestrator_cache, orchestrator_for
from tradeweb.desk.storage import ChannelsEventPublisher, event_row, usable_candle

log = logging.getLogger(__name__)


def receive_candle(data: Any) -> tuple[str, Candle | None, str]:
    """Validate and store one closed candle from a feed: ("new" | "duplicate", the candle, "") or,
    for a candle that breaks a rule (see `orchestrator.candles` and `orchestrator.market_rules`),
    ("rejected", None, why): it is stored nowhere, and each active strategy of its market (or the
    system feed, if none) gets a DATA_REJECTED event."""
    try:
        candle = Candle.from_mapping(data)
        status = store_candle(candle, previous_time(data, candle), datetime.now(timezone.utc))
    except CandleRejected as rejected:
        reject_market_data(data, str(rejected))
        return "rejected", None, str(rejected)
    return status, candle, ""


def market_rules(symbol: str, timeframe: str) -> MarketRules:
    """The rules of a known market; raises CandleRejected for a market the desk does not know."""
    market = models.Market.objects.filter(symbol=symbol, timeframe=timeframe).first()
    if market is None:
        raise CandleRejected(
            f"no market {symbol} {timeframe} on this desk: add it under Markets in the admin, "
            "or configure a strategy on it"
        )
    return MarketRules(symbol, timeframe, market.max_move, settings.CANDLE_CLOCK_TOLERANCE)


def store_candle(candle: Candle, previous: datetime, now: datetime) -> str:
    """Store a candle once, linked to the candle before it, if its market's rules allow: "new", or
    "duplicate" when exactly this candle is already stored (by us or a concurrent worker); raises
    CandleRejected otherwise. A candle that comes late (it fills a gap) is stored like any other."""
    rules = market_rules(candle.symbol, candle.timeframe)
    market = models.Candle.objects.filter(symbol=candle.symbol, timeframe=candle.timeframe)
    row = market.filter(time__lte=candle.time).order_by("-time").first()
    if rules.check(candle, stored_candle(row, candle), now) is Arrival.DUPLICATE:
        return "duplicate"
    try:
        with transaction.atomic():
            models.Candle.objects.create(
                symbol=candle.symbol, timeframe=candle.timeframe, time=candle.time, previous_time=previous,
                open=candle.open, high=candle.high, low=candle.low, close=candle.close, volume=candle.volume,
            )
    except IntegrityError:
        row = market.filter(time=candle.time).first()
        if row is not None:
            # A concurrent worker stored a candle at this time first: the same one, or a conflicting one.
            rules.check(candle, stored_candle(row, candle), None)
            return "duplicate"
        follower = market.filter(previous_time=previous).values_list("time", flat=True).first()
        raise CandleRejected(
            f"conflict: the stored candle at {follower.isoformat() if follower else '?'} already follows "
            f"{previous.isoformat()}, so a candle at {candle.time.isoformat()} cannot follow it too"
        ) from None
    return "new"


def stored_candle(row: models.Candle | None, incoming: Candle) -> Candle | None:
    """The stored candle for the rules to compare with; of an unusable row (see `usable_candle`)
    only the time is checked, and no price is compared with it."""
    if row is None:
        return None
    stored = usable_candle(row)
    if stored is None and incoming.time == row.time:
        raise CandleRejected(f"conflicts with the unusable stored candle at {row.time.isoformat()}; the stored one is kept")
    return stored


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
