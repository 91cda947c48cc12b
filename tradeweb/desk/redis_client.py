"""This process's own Redis client, for what the desk keeps on Redis besides the broker and the
channel layer: worker status reports and queued advance requests."""

from __future__ import annotations

import os

import redis
from django.conf import settings

_client: tuple[int, redis.Redis] | None = None


def redis_client() -> redis.Redis:
    """The client of this process (a forked worker process makes its own on first use)."""
    global _client
    if _client is None or _client[0] != os.getpid():
        _client = (os.getpid(), redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2))
    return _client[1]
