"""Every strategy takes the candle that follows its last one: a late candle is applied in order, a lasting
gap is reported once, a strategy switched on starts at the market's newest candle, and a batch of strategies
costs the database the same handful of statements however many strategies it holds."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orchestrator.market_rules import feed_messages
from tests.core_runs import core_run
from tradeweb.desk import live, models
from tradeweb.desk.market_lease import lease_key

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_worker")]


def stored_events(strategy_id: str) -> list[tuple]:
    return list(
        models.Event.objects.filter(strategy_id=strategy_id).order_by("sequence").values_list("sequence", "type", "time", "payload")
    )


def last_candle(strategy_id: str):
    return models.Strategy.objects.get(strategy_id=strategy_id).last_candle_time


def test_a_candle_lost_with_a_worker_and_sent_again_late_is_applied_in_order(make_strategy, btc_candles):
    strategy = make_strategy("alpha", fast_period=3, slow_period=8)
    candles = btc_candles[:120]
    messages = list(feed_messages(candles))
    for message in messages[:60] + messages[61:]:  # candle 60 is lost on its way
        outcome = live.ingest_candle(message)
        assert outcome.status == "new"
    assert last_candle("alpha") == candles[59].time, "the strategy waits for the missing candle"
    assert not models.Event.objects.filter(type="DATA_REJECTED").exists()

    late = live.ingest_candle(messages[60])

    assert late.status == "new"
    assert late.processed == ["alpha"]
    assert last_candle("alpha") == candles[-1].time
    _, publisher = core_run(strategy, candles)
    assert len([e for e in publisher.events if e.type == "ORDER_FILLED"]) >= 2, "the sample must trade"
    assert stored_events("alpha") == [(e.sequence, str(e.type), e.time, e.payload) for e in publisher.events]


def test_a_gap_that_lasts_is_reported_once_and_the_strategy_carries_on_when_the_candle_comes(
    make_strategy, btc_candles, settings
):
    settings.CANDLE_GAP_GRACE = timedelta(0)
    make_strategy("alpha", fast_period=3, slow_period=8)
    messages = list(feed_messages(btc_candles[:40]))
    for message in messages[:30] + messages[31:35]:
        live.ingest_candle(message)

    gaps = models.Event.objects.filter(strategy_id="alpha", type="DATA_GAP")
    assert gaps.count() == 1, "reported once, however many candles wait"
    gap = gaps.get()
    assert gap.payload["expected_after"] == btc_candles[29].time.isoformat()
    assert gap.payload["waiting_from"] == btc_candles[31].time.isoformat()
    assert gap.time == btc_candles[31].time
    assert models.JournalEntry.objects.filter(strategy_id="alpha", kind="data", message__startswith=(
        f"Waiting for the candle after {btc_candles[29].time.isoformat()}")).exists()

    for message in [messages[30]] + messages[35:]:
        live.ingest_candle(message)
    assert last_candle("alpha") == btc_candles[39].time
    assert gaps.count() == 1


def test_a_gap_shorter_than_the_grace_is_not_reported(make_strategy, btc_candles, settings):
    settings.CANDLE_GAP_GRACE = timedelta(minutes=5)
    make_strategy("alpha")
    messages = list(feed_messages(btc_candles[:10]))
    for message in messages[:5] + messages[6:] + [messages[5]]:
        live.ingest_candle(message)
    assert last_candle("alpha") == btc_candles[9].time
    assert not models.Event.objects.filter(type="DATA_GAP").exists()


def test_a_candle_that_would_fork_the_chain_is_rejected_and_changes_nothing(make_strategy, btc_candles):
    make_strategy("alpha")
    messages = list(feed_messages(btc_candles[:6]))
    for message in messages:
        live.ingest_candle(message)
    before = stored_events("alpha")
    # Claims to follow candle 3, which candle 4 already follows.
    fork = btc_candles[8].to_mapping() | {"previous": btc_candles[3].time.isoformat()}

    outcome = live.ingest_candle(fork)

    assert outcome.status == "rejected"
    assert outcome.reason.startswith(f"conflict: the stored candle at {btc_candles[4].time.isoformat()} already follows")
    assert models.Candle.objects.count() == 6
    assert [e[1] for e in stored_events("alpha")[len(before):]] == ["DATA_REJECTED"]


def test_a_strategy_switched_on_later_starts_at_the_newest_candle_not_the_history(make_strategy, btc_candles):
    make_strategy("alpha")
    messages = list(feed_messages(btc_candles[:60]))
    for message in messages[:40]:
        live.ingest_candle(message)

    late_starter = make_strategy("beta")
    assert late_starter.last_candle_time == btc_candles[39].time
    outcome = live.ingest_candle(messages[40])

    assert outcome.processed == ["alpha", "beta"]
    assert models.Strategy.objects.get(strategy_id="beta").last_candle_time == btc_candles[40].time


def test_candles_stored_while_another_worker_holds_the_lease_are_taken_when_it_lets_go(
    make_strategy, btc_candles, django_db_blocker
):
    if connection.vendor != "postgresql":
        pytest.skip("the lease is a PostgreSQL advisory lock; SQLite serialises writers itself")
    import psycopg

    make_strategy("alpha")
    messages = list(feed_messages(btc_candles[:5]))
    settings_dict = connection.settings_dict
    other = psycopg.connect(
        host=settings_dict["HOST"] or "127.0.0.1", port=settings_dict["PORT"] or 5432,
        user=settings_dict["USER"] or "postgres", dbname=settings_dict["NAME"], autocommit=True,
    )
    try:
        other.execute("SELECT pg_advisory_lock(%s)", [lease_key("BTC/USD", "1m")])
        busy = [live.ingest_candle(m) for m in messages]
        assert [o.status for o in busy] == ["new"] * 5
        assert all(o.processed == [] for o in busy), "another worker holds the market"
        assert last_candle("alpha") is None
    finally:
        other.close()  # the holder's connection ends: the lease goes with it
    deadline = time.monotonic() + 10
    while lease_held(lease_key("BTC/USD", "1m")):
        assert time.monotonic() < deadline, "the database kept the lease of a closed connection"
        time.sleep(0.05)  # the server ends the closed session's backend a moment later

    advance = live.advance_market("BTC/USD", "1m")
    assert sorted({t for _, t in advance.taken}) == [c.time for c in btc_candles[:5]]
    assert last_candle("alpha") == btc_candles[4].time


def lease_held(key: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND ((classid::bigint << 32) | objid::bigint) = %s::bigint)", [key]
        )
        return cursor.fetchone()[0]


def quiet_candle_statements(messages) -> set[int]:
    """Statements per candle for the candles that produced no event (no order, no fill): what every
    candle costs, however many strategies it reaches."""
    counts = set()
    for message in messages:
        events = models.Event.objects.count()
        with CaptureQueriesContext(connection) as queries:
            live.ingest_candle(message)
        if models.Event.objects.count() == events:
            counts.add(len(queries.captured_queries))
    return counts


def test_a_quiet_candle_costs_the_same_statements_for_thirty_strategies_as_for_three(make_strategy, btc_candles):
    messages = list(feed_messages(btc_candles[:80]))
    for number in range(3):
        make_strategy(f"s-{number:02d}", fast_period=3, slow_period=8)
    for message in messages[:10]:
        live.ingest_candle(message)  # every orchestrator built and cached
    few = quiet_candle_statements(messages[10:40])
    for number in range(3, 30):
        make_strategy(f"s-{number:02d}", fast_period=3, slow_period=8)
    live.ingest_candle(messages[40])
    many = quiet_candle_statements(messages[41:])

    assert len(few) == 1 and few == many, (few, many)
    assert models.Strategy.objects.filter(last_candle_time=btc_candles[79].time).count() == 30
