"""At most one queued advance per market, however many of its candles arrive meanwhile.

A candle task stores its candle and asks for an advance of the market; the ask queues an
advance task only when none is queued yet (a flag on Redis, set with NX). The advance task
takes the flag down before it starts, so a candle stored while it runs asks for the next one.
Under a backlog the candles stored while an advance waited in the queue are then taken in one
batch, instead of one transaction per candle; a quiet market costs one extra task per candle.

The flag expires after ADVANCE_REQUEST_SECONDS: a worker killed between setting the flag and
queueing the task delays its market at most that long (the feed resends the unprocessed candle,
whose task asks again). An advance queued twice costs one query: the second finds nothing to take.
"""

from __future__ import annotations

from typing import Callable

from django.conf import settings

from tradeweb.desk.redis_client import redis_client


def request_key(symbol: str, timeframe: str) -> str:
    return f"{settings.ADVANCE_REQUEST_PREFIX}:{symbol}:{timeframe}"


def request_advance(symbol: str, timeframe: str, queue: Callable[[str, str], object]) -> bool:
    """Queue an advance of the market with `queue` unless one is queued already; returns whether it did."""
    key = request_key(symbol, timeframe)
    if not redis_client().set(key, "1", nx=True, px=round(settings.ADVANCE_REQUEST_SECONDS * 1000)):
        return False
    try:
        queue(symbol, timeframe)
    except BaseException:
        redis_client().delete(key)  # nothing is queued: the next ask must queue it
        raise
    return True


def take_request(symbol: str, timeframe: str) -> None:
    """An advance of the market starts: candles stored from now on ask for another."""
    redis_client().delete(request_key(symbol, timeframe))
