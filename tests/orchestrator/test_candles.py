"""Candles are validated at the door, hold only values the desk can store, and survive a JSON round trip exactly."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from orchestrator.candles import Candle, CandleRejected

UTC = timezone.utc
T0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


def make_candle(**changes) -> Candle:
    fields = {
        "symbol": "BTC/USD",
        "timeframe": "1m",
        "time": T0,
        "open": Decimal("100"),
        "high": Decimal("110"),
        "low": Decimal("95"),
        "close": Decimal("105"),
        "volume": Decimal("3.5"),
    }
    fields.update(changes)
    return Candle(**fields)


def candle_data(**changes) -> dict:
    data = {
        "symbol": "BTC/USD",
        "timeframe": "1m",
        "time": "2024-01-01T12:00:00Z",
        "open": "100",
        "high": "110",
        "low": "95",
        "close": "105",
        "volume": "3.5",
    }
    data.update(changes)
    return data


def test_a_valid_candle_keeps_exactly_the_values_it_was_built_with():
    candle = make_candle()
    assert (candle.symbol, candle.timeframe, candle.time) == ("BTC/USD", "1m", T0)
    assert (candle.open, candle.high, candle.low, candle.close, candle.volume) == (
        Decimal("100"), Decimal("110"), Decimal("95"), Decimal("105"), Decimal("3.5"),
    )


def test_a_candle_with_all_four_prices_equal_is_valid():
    price = Decimal("42")
    candle = make_candle(open=price, high=price, low=price, close=price, volume=Decimal(0))
    assert candle.low == candle.high == price


@pytest.mark.parametrize("field", ["open", "high", "low", "close", "volume"])
@pytest.mark.parametrize("value", ["NaN", "sNaN", "Infinity", "-Infinity"])
def test_candle_rejects_a_price_or_volume_that_is_not_finite(field, value):
    with pytest.raises(CandleRejected, match=f"{field} is not a finite Decimal"):
        make_candle(**{field: Decimal(value)})


@pytest.mark.parametrize("field", ["open", "high", "low", "close"])
def test_candle_rejects_a_price_given_as_float_instead_of_decimal(field):
    with pytest.raises(CandleRejected, match=f"{field} is not a finite Decimal"):
        make_candle(**{field: 100.0})


@pytest.mark.parametrize("field", ["open", "high", "low", "close"])
@pytest.mark.parametrize("value", ["0", "-1"])
def test_candle_rejects_zero_or_negative_prices(field, value):
    with pytest.raises(CandleRejected, match="prices must be positive"):
        make_candle(**{field: Decimal(value)})


def test_candle_rejects_negative_volume_but_accepts_zero():
    with pytest.raises(CandleRejected, match="volume must not be negative"):
        make_candle(volume=Decimal("-0.1"))
    assert make_candle(volume=Decimal(0)).volume == 0


@pytest.mark.parametrize(
    ("open_", "high", "close"),
    [("100", "104", "105"), ("108", "107", "100")],
    ids=["high_below_close", "high_below_open"],
)
def test_candle_rejects_a_high_below_open_or_close(open_, high, close):
    with pytest.raises(CandleRejected, match=f"high {high} is below open/close"):
        make_candle(open=Decimal(open_), high=Decimal(high), close=Decimal(close))


@pytest.mark.parametrize(
    ("open_", "low", "close"),
    [("100", "101", "105"), ("105", "101", "100")],
    ids=["low_above_open", "low_above_close"],
)
def test_candle_rejects_a_low_above_open_or_close(open_, low, close):
    with pytest.raises(CandleRejected, match=f"low {low} is above open/close"):
        make_candle(open=Decimal(open_), low=Decimal(low), close=Decimal(close))


def test_candle_rejects_a_naive_time():
    with pytest.raises(CandleRejected, match="timezone-aware UTC"):
        make_candle(time=datetime(2024, 1, 1, 12, 0))


def test_candle_rejects_an_aware_time_that_is_not_utc():
    with pytest.raises(CandleRejected, match="timezone-aware UTC"):
        make_candle(time=datetime(2024, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))))


@pytest.mark.parametrize("timeframe", ["2m", "1M", "", "1 m"])
def test_candle_rejects_an_unknown_timeframe_and_lists_the_known_ones(timeframe):
    with pytest.raises(CandleRejected, match=f"unknown timeframe {timeframe!r}; use one of 1m, 5m, 15m, 1h, 4h, 1d"):
        make_candle(timeframe=timeframe)


def test_candle_rejects_an_empty_symbol():
    with pytest.raises(CandleRejected, match="symbol is empty"):
        make_candle(symbol="")


def test_candle_is_frozen():
    candle = make_candle()
    with pytest.raises(AttributeError):
        candle.close = Decimal("1")


def test_from_mapping_reads_strings_and_numbers_into_decimals_and_utc():
    candle = Candle.from_mapping(candle_data(open=100, high="110.5", low=95.25, close="105", volume=0.1))
    assert candle == make_candle(
        high=Decimal("110.5"), low=Decimal("95.25"), volume=Decimal("0.1")
    )
    # A float goes through its shortest repr, so 0.1 arrives as exactly 0.1.
    assert str(candle.volume) == "0.1"


def test_from_mapping_converts_an_offset_time_to_utc():
    candle = Candle.from_mapping(candle_data(time="2024-01-01T14:00:00+02:00"))
    assert candle.time == T0
    assert candle.time.utcoffset() == timedelta(0)


def test_from_mapping_defaults_a_missing_volume_to_zero():
    data = candle_data()
    del data["volume"]
    assert Candle.from_mapping(data).volume == Decimal(0)


@pytest.mark.parametrize("field", ["open", "high", "low", "close", "volume"])
@pytest.mark.parametrize("junk", ["abc", "", "1,5", "12 34", None, True, [100], {"price": 100}])
def test_from_mapping_rejects_junk_in_a_price_or_volume_naming_the_field(field, junk):
    with pytest.raises(CandleRejected, match=f"^{field} is not a number"):
        Candle.from_mapping(candle_data(**{field: junk}))


@pytest.mark.parametrize("field", ["open", "high", "low", "close", "volume"])
@pytest.mark.parametrize("value", ["NaN", "nan", "inf", "-Infinity", float("nan"), float("inf")])
def test_from_mapping_rejects_a_price_or_volume_that_is_not_finite(field, value):
    with pytest.raises(CandleRejected, match=f"^{field} is not finite"):
        Candle.from_mapping(candle_data(**{field: value}))


def test_from_mapping_rejects_a_time_without_timezone():
    with pytest.raises(CandleRejected, match="time has no timezone: 2024-01-01T12:00:00"):
        Candle.from_mapping(candle_data(time="2024-01-01T12:00:00"))


@pytest.mark.parametrize("time", ["yesterday", "2024-13-01T00:00:00Z", ""])
def test_from_mapping_rejects_a_time_that_is_not_iso_8601(time):
    with pytest.raises(CandleRejected, match="time is not an ISO 8601 timestamp"):
        Candle.from_mapping(candle_data(time=time))


@pytest.mark.parametrize("time", [1704110400, None, 1704110400.0])
def test_from_mapping_rejects_a_time_that_is_not_a_timestamp(time):
    with pytest.raises(CandleRejected, match="time is not a timestamp"):
        Candle.from_mapping(candle_data(time=time))


@pytest.mark.parametrize("field", ["symbol", "timeframe", "time", "open", "high", "low", "close"])
def test_from_mapping_names_a_missing_field(field):
    data = candle_data()
    del data[field]
    with pytest.raises(CandleRejected, match=f"^candle is missing {field}$"):
        Candle.from_mapping(data)


def test_from_mapping_names_every_missing_field_at_once():
    with pytest.raises(CandleRejected, match="^candle is missing time, open, close$"):
        Candle.from_mapping({k: v for k, v in candle_data().items() if k not in ("time", "open", "close")})


@pytest.mark.parametrize("data", [None, [], "candle", 42])
def test_from_mapping_rejects_something_that_is_not_an_object(data):
    with pytest.raises(CandleRejected, match="candle must be an object"):
        Candle.from_mapping(data)


def test_from_mapping_still_checks_the_candle_invariants():
    with pytest.raises(CandleRejected, match="high 99 is below open/close"):
        Candle.from_mapping(candle_data(high="99"))


def test_to_mapping_gives_json_safe_strings():
    mapping = make_candle(time=T0 + timedelta(microseconds=123)).to_mapping()
    assert mapping == {
        "symbol": "BTC/USD",
        "timeframe": "1m",
        "time": "2024-01-01T12:00:00.000123+00:00",
        "open": "100",
        "high": "110",
        "low": "95",
        "close": "105",
        "volume": "3.5",
    }
    assert json.loads(json.dumps(mapping)) == mapping


def test_to_mapping_and_from_mapping_round_trip_exactly_digit_for_digit():
    candle = make_candle(
        timeframe="4h",
        time=datetime(2022, 1, 31, 23, 59, 59, 999999, tzinfo=UTC),
        open=Decimal("0.00012300"),
        high=Decimal("0.0001250001"),
        low=Decimal("1.2E-4"),
        close=Decimal("0.0001240"),
        volume=Decimal("123456789012345678.000"),
    )
    back = Candle.from_mapping(json.loads(json.dumps(candle.to_mapping())))
    assert back == candle
    # Decimal equality ignores trailing zeros; the strings show nothing was rounded or normalised.
    assert back.to_mapping() == candle.to_mapping()
    assert str(back.open) == "0.00012300"
    assert str(back.high) == "0.0001250001"


@pytest.mark.parametrize("value", ["1e-12", "0.00000000001", "1.23456e-9"])
def test_from_mapping_refuses_a_price_the_storage_would_round_away(value):
    data = candle_data(open=value, high=value, low=value, close=value)
    with pytest.raises(CandleRejected, match="^open .* cannot be stored without changing it: the desk keeps 10 decimal places"):
        Candle.from_mapping(data)


def test_from_mapping_accepts_a_tiny_price_the_storage_keeps_exactly():
    candle = Candle.from_mapping(candle_data(open="1.5e-9", high="2e-9", low="1e-10", close="1e-9"))
    assert candle.low == Decimal("0.0000000001")


@pytest.mark.parametrize("value", ["1e20", "1e25", "1e308", 1e308, 10**40])
def test_from_mapping_refuses_a_price_beyond_the_storage(value):
    with pytest.raises(CandleRejected, match=r"too large: the desk stores values below 1E\+20"):
        Candle.from_mapping(candle_data(high=value))


def test_a_candle_built_directly_refuses_a_value_beyond_the_storage():
    with pytest.raises(CandleRejected, match="volume .* is too large"):
        make_candle(volume=Decimal("1e20"))


def test_from_mapping_rounds_float_noise_to_ten_places_and_keeps_exact_values_as_sent():
    candle = Candle.from_mapping(
        candle_data(open=0.1 + 0.2, high="0.5", low="0.1234567890", close="0.3", volume="0.000000000001")
    )
    assert candle.open == Decimal("0.3")
    assert str(candle.low) == "0.1234567890"
    # Volumes are not prices: one too small to store rounds to 0 instead of refusing the candle.
    assert candle.volume == 0


@pytest.mark.parametrize("symbol, reason", [
    ("X" * 40, "symbol is 40 characters long; at most 32"),
    ("", "symbol is empty"),
    ("BTC USD", "symbol has spaces or unprintable characters"),
    ("BTC\x00USD", "symbol has spaces or unprintable characters"),
    (42, "symbol is not text: 42"),
    (["BTC/USD"], "symbol is not text"),
])
def test_from_mapping_refuses_a_symbol_the_desk_cannot_store(symbol, reason):
    with pytest.raises(CandleRejected, match=f"^{reason}"):
        Candle.from_mapping(candle_data(symbol=symbol))


def test_a_rejection_never_echoes_unbounded_input():
    with pytest.raises(CandleRejected) as rejected:
        Candle.from_mapping(candle_data(open="9" * 1_000_000 + "x"))
    assert len(str(rejected.value)) < 100


def test_from_mapping_refuses_a_time_that_cannot_be_expressed_in_utc():
    with pytest.raises(CandleRejected, match="time is out of range"):
        Candle.from_mapping(candle_data(time="0001-01-01T00:00:00+05:00"))
