"""The orchestrator cache: least recently used goes first, and the counters say what happened."""

from __future__ import annotations

import pytest

from orchestrator.cache import OrchestratorCache


def filled(capacity: int, *keys: str) -> OrchestratorCache[str, object]:
    cache: OrchestratorCache[str, object] = OrchestratorCache(capacity)
    for key in keys:
        cache.put(key, object())
    return cache


def test_a_stored_entry_is_returned_as_the_same_object():
    cache: OrchestratorCache[str, object] = OrchestratorCache(2)
    orchestrator = object()
    cache.put("a", orchestrator)
    assert cache.get("a") is orchestrator
    assert "a" in cache
    assert len(cache) == 1


def test_adding_past_capacity_evicts_the_least_recently_added_entry():
    cache = filled(2, "a", "b", "c")
    assert "a" not in cache
    assert ("b" in cache, "c" in cache) == (True, True)
    assert len(cache) == 2


def test_a_get_marks_the_entry_as_recently_used_so_another_one_is_evicted():
    cache = filled(2, "a", "b")
    cache.get("a")
    cache.put("c", object())
    assert "a" in cache
    assert "b" not in cache


def test_putting_an_existing_key_replaces_it_marks_it_recent_and_evicts_nothing():
    cache = filled(2, "a", "b")
    replacement = object()
    cache.put("a", replacement)
    assert cache.stats.evictions == 0
    cache.put("c", object())
    assert cache.get("a") is replacement
    assert "b" not in cache


def test_evictions_are_counted_once_per_entry_pushed_out():
    cache = filled(3, *"abcdefg")
    assert cache.stats.evictions == 4
    assert len(cache) == 3
    assert [key for key in "abcdefg" if key in cache] == ["e", "f", "g"]


def test_hits_and_misses_are_counted_and_give_the_hit_rate():
    cache = filled(2, "a")
    cache.get("a")
    cache.get("a")
    cache.get("a")
    cache.get("nope")
    stats = cache.stats
    assert (stats.size, stats.capacity, stats.hits, stats.misses, stats.evictions) == (1, 2, 3, 1, 0)
    assert stats.hit_rate == 0.75


def test_hit_rate_is_zero_before_any_look_up():
    assert OrchestratorCache(1).stats.hit_rate == 0.0


def test_membership_test_counts_neither_hit_nor_miss():
    cache = filled(1, "a")
    assert "a" in cache and "b" not in cache
    assert (cache.stats.hits, cache.stats.misses) == (0, 0)


def test_discard_forgets_an_entry_without_counting_an_eviction():
    cache = filled(2, "a", "b")
    cache.discard("a")
    cache.discard("never-there")
    assert "a" not in cache
    assert len(cache) == 1
    assert cache.stats.evictions == 0
    assert cache.get("a") is None
    assert cache.stats.misses == 1


def test_a_discarded_slot_is_reused_without_evicting():
    cache = filled(2, "a", "b")
    cache.discard("a")
    cache.put("c", object())
    assert ("b" in cache, "c" in cache) == (True, True)
    assert cache.stats.evictions == 0


@pytest.mark.parametrize("capacity", [0, -1])
def test_a_capacity_below_one_is_refused(capacity):
    with pytest.raises(ValueError, match="capacity must be at least 1"):
        OrchestratorCache(capacity)


def test_a_cache_of_one_keeps_only_the_latest_entry():
    cache = filled(1, "a", "b")
    assert [key for key in "ab" if key in cache] == ["b"]
    stats = cache.stats
    assert (stats.size, stats.capacity, stats.hits, stats.misses, stats.evictions) == (1, 1, 0, 0, 1)


def test_an_entry_refused_as_no_longer_current_is_dropped_and_counted_as_stale_and_a_miss():
    cache: OrchestratorCache[str, dict] = OrchestratorCache(2)
    cache.put("a", {"version": 1})
    cache.put("b", {"version": 2})
    assert cache.get("a", is_current=lambda entry: entry["version"] == 2) is None
    assert cache.get("b", is_current=lambda entry: entry["version"] == 2) == {"version": 2}
    assert "a" not in cache
    stats = cache.stats
    assert (stats.stale, stats.misses, stats.hits, stats.evictions) == (1, 1, 1, 0)
