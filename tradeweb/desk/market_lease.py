"""Which worker advances a market: whoever holds its lease, one at a time.

On PostgreSQL the lease is a session advisory lock: taken without waiting, and released
by the database itself the moment the holder's connection ends, so a worker killed with
`kill -9` never leaves a market locked. SQLite runs every transaction under the
database's write lock (IMMEDIATE), which already lets only one writer advance at a time,
so there the lease is always granted.
"""

from __future__ import annotations

import hashlib
import logging
from contextlib import contextmanager
from typing import Iterator

from django.db import DatabaseError, connection

log = logging.getLogger(__name__)


def lease_key(symbol: str, timeframe: str) -> int:
    """A stable signed 64-bit key for the market's advisory lock."""
    digest = hashlib.blake2b(f"tradeweb market {symbol} {timeframe}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def market_lease(symbol: str, timeframe: str) -> Iterator[bool]:
    """Try to take the market's lease without waiting; yields whether this process holds it."""
    if connection.vendor != "postgresql":
        yield True
        return
    key = lease_key(symbol, timeframe)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        held = cursor.fetchone()[0]
    try:
        yield held
    finally:
        if held:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
            except DatabaseError as error:
                # The connection broke: the database released the lock with the session.
                log.warning("could not release the lease of %s %s: %s", symbol, timeframe, error)
