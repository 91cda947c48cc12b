"""A market's rules: no candle from the future, no silent conflicts, no absurd moves; each candle names the one before it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from orchestrator.candles import Candle, CandleRejected
from orchestrator.market_rules import Arrival, MarketRules, previous_time

UTC = timezone.utc
T0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
RULES = MarketRules("BTC/USD", "1m", max_move=Decimal("0.1"))


def make_candle(minute: int = 0, price: str = "100", **changes) -> Candle:
    price = Decimal(price)
    fields = dict(symbol="BTC/USD", timeframe="1m", time=T0 + timedelta(minutes=minute), open=price,
                  high=price, low=price, close=price, volume=Decimal("2"))
    fields.update(changes)
    return Candle(**fields)


def test_the_first_candle_of_a_market_is_new():
    assert RULES.check(make_candle(), None) is Arrival.NEW


def test_a_later_candle_within_the_move_limit_is_new():
    assert RULES.check(make_candle(1, "109.99"), make_candle(0, "100")) is Arrival.NEW
    assert RULES.check(make_candle(1, "90"), make_candle(0, "100")) is Arrival.NEW


def test_the_same_candle_again_is_a_duplicate():
    assert RULES.check(make_candle(0, "100"), make_candle(0, "100")) is Arrival.DUPLICATE


@pytest.mark.parametrize("field, value", [("close", "101"), ("open", "99"), ("volume", "3")])
def test_a_different_candle_at_a_stored_time_is_a_conflict_naming_what_differs(field, value):
    stored = make_candle(0, "100", high=Decimal("105"), low=Decimal("95"))
    incoming = make_candle(0, "100", high=Decimal("105"), low=Decimal("95"), **{field: Decimal(value)})

    with pytest.raises(CandleRejected, match=f"conflicts with the stored candle at 2024-01-01T12:00:00\\+00:00: {field} {value} vs stored"):
        RULES.check(incoming, stored)


def test_a_late_candle_is_judged_against_the_stored_candle_before_it_not_the_newest():
    # Candle 3 was lost when a worker died while 4 and 5 were stored: it fills the gap.
    assert RULES.check(make_candle(3, "101"), make_candle(2, "100")) is Arrival.NEW
    with pytest.raises(CandleRejected, match="away from the previous close 100"):
        RULES.check(make_candle(3, "150"), make_candle(2, "100"))


def test_comparing_with_a_later_stored_candle_is_a_programming_error():
    with pytest.raises(ValueError):
        RULES.check(make_candle(0), make_candle(5))


def test_a_candle_without_a_named_previous_follows_the_one_a_period_earlier():
    candle = make_candle(5)
    assert previous_time(candle.to_mapping(), candle) == T0 + timedelta(minutes=4)
    five = make_candle(10, timeframe="5m")
    assert previous_time(five.to_mapping() | {"previous": None}, five) == T0 + timedelta(minutes=5)


def test_a_named_previous_links_across_a_closed_market():
    monday = make_candle(60 * 48)
    named = (T0 + timedelta(minutes=30)).isoformat()
    assert previous_time(monday.to_mapping() | {"previous": named}, monday) == T0 + timedelta(minutes=30)


@pytest.mark.parametrize("previous, message", [
    ("2024-01-01T12:05:00+00:00", "previous 2024-01-01T12:05:00\\+00:00 is not before the candle at 2024-01-01T12:05:00\\+00:00"),
    ("2024-01-01T12:09:00+00:00", "is not before the candle"),
    ("yesterday", "previous: time is not an ISO 8601 timestamp: 'yesterday'"),
    ("2024-01-01T12:00:00", "previous: time has no timezone"),
    (17, "previous: time is not a timestamp: 17"),
])
def test_a_previous_that_cannot_be_right_is_refused(previous, message):
    candle = make_candle(5)
    with pytest.raises(CandleRejected, match=message):
        previous_time(candle.to_mapping() | {"previous": previous}, candle)


@pytest.mark.parametrize("changes, name", [
    ({"open": Decimal("0.0000000001"), "close": Decimal("0.0000000001"), "low": Decimal("0.0000000001")}, "open"),
    ({"high": Decimal("1e19")}, "high"),
    ({"low": Decimal("80")}, "low"),
])
def test_a_price_further_from_the_previous_close_than_the_market_allows_is_refused(changes, name):
    incoming = make_candle(1, "100", **changes)
    with pytest.raises(CandleRejected, match=f"^{name} .* away from the previous close 100; BTC/USD 1m allows at most 10.00% per candle"):
        RULES.check(incoming, make_candle(0, "100"))


def test_the_move_limit_is_the_markets_own():
    loose = MarketRules("BTC/USD", "1m", max_move=Decimal("0.5"))
    assert loose.check(make_candle(1, "140"), make_candle(0, "100")) is Arrival.NEW
    with pytest.raises(CandleRejected):
        RULES.check(make_candle(1, "140"), make_candle(0, "100"))


def test_a_live_candle_that_has_closed_is_accepted():
    now = T0 + timedelta(minutes=1)
    assert RULES.check(make_candle(0), None, now) is Arrival.NEW


def test_a_live_candle_stamped_in_the_future_is_refused():
    now = T0 + timedelta(minutes=1)
    with pytest.raises(CandleRejected, match="^from the future: the candle at 2030-01-01T00:00:00\\+00:00 closes at"):
        RULES.check(make_candle(time=datetime(2030, 1, 1, tzinfo=UTC)), None, now)


def test_a_candle_still_open_is_refused_beyond_the_clock_tolerance_only():
    rules = MarketRules("BTC/USD", "1m", clock_tolerance=timedelta(seconds=30))
    closes_at = T0 + timedelta(minutes=1)
    assert rules.check(make_candle(0), None, closes_at - timedelta(seconds=30)) is Arrival.NEW
    with pytest.raises(CandleRejected, match="from the future"):
        rules.check(make_candle(0), None, closes_at - timedelta(seconds=31))


def test_a_candle_of_year_9999_is_refused_without_overflowing():
    with pytest.raises(CandleRejected, match="from the future"):
        RULES.check(make_candle(time=datetime(9999, 12, 31, 23, 59, tzinfo=UTC)), None, T0)


def test_a_replay_without_a_clock_accepts_any_time():
    assert RULES.check(make_candle(time=datetime(2030, 1, 1, tzinfo=UTC)), None, None) is Arrival.NEW


def test_a_candle_of_another_market_is_refused():
    with pytest.raises(CandleRejected, match="ETH/USD 1m candle checked against the rules of BTC/USD 1m"):
        RULES.check(make_candle(symbol="ETH/USD"), None)
