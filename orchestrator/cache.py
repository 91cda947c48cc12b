"""A least-recently-used cache of orchestrators, with the statistics an operator asks for."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counters since the cache was made."""

    size: int
    capacity: int
    hits: int
    misses: int
    evictions: int
    stale: int

    @property
    def hit_rate(self) -> float:
        """Share of look-ups that found an entry."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class OrchestratorCache(Generic[K, V]):
    """Keeps at most `capacity` entries; adding one more evicts the least recently used."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._hits = self._misses = self._evictions = self._stale = 0

    def get(self, key: K, is_current: Callable[[V], bool] | None = None) -> V | None:
        """The entry for `key`, marked as recently used; None (a miss) if absent.

        An entry that `is_current` refuses is dropped and counted as stale and as a miss.
        """
        entry = self._entries.get(key)
        if entry is not None and is_current is not None and not is_current(entry):
            del self._entries[key]
            self._stale += 1
            entry = None
        if entry is None:
            self._misses += 1
            return None
        self._hits += 1
        self._entries.move_to_end(key)
        return entry

    def put(self, key: K, value: V) -> None:
        """Store an entry, evicting the least recently used one when full."""
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
            self._evictions += 1

    def discard(self, key: K) -> None:
        """Forget an entry (stale or broken); not counted as an eviction."""
        self._entries.pop(key, None)

    def keys(self) -> list[K]:
        """The cached keys, least recently used first."""
        return list(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def stats(self) -> CacheStats:
        """Current size and counters."""
        return CacheStats(len(self._entries), self.capacity, self._hits, self._misses, self._evictions, self._stale)
