"""Hypothesis strategies for what a feed might send as a candle: valid ones, near misses and junk."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import strategies as st

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)
offsets = st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23)).map(timezone)
times = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets | st.none())
prices = (
    st.decimals(allow_nan=True, allow_infinity=True).map(str)
    | st.decimals(min_value=1, max_value=100_000, places=4).map(str)
    | st.floats()
    | st.integers()
    | st.sampled_from(["1e-12", "1e19", "1e25", "1e308", "0", "-1", "NaN", "inf", "", "1,5"])
)
near_candles = st.fixed_dictionaries(
    {
        "symbol": st.sampled_from(["BTC/USD", "XYZ/USD", "X" * 40, ""]) | json_values,
        "timeframe": st.sampled_from(["1m", "5m", "2m"]) | json_values,
        "time": times.map(lambda t: t.isoformat()) | json_values,
        "open": prices,
        "high": prices,
        "low": prices,
        "close": prices,
    },
    optional={"volume": prices, "extra": json_values},
)
# A valid-looking BTC/USD candle around a fixed price, so that some payloads are accepted.
plausible_candles = st.builds(
    lambda minute, low, spread, close_at: {
        "symbol": "BTC/USD", "timeframe": "1m",
        "time": (datetime(2022, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=minute)).isoformat(),
        "open": str(low), "high": str(low + spread), "low": str(low), "close": str(low + spread * close_at),
        "volume": "1",
    },
    st.integers(min_value=0, max_value=2000),
    st.decimals(min_value=30_000, max_value=60_000, places=2),
    st.decimals(min_value=0, max_value=500, places=2),
    st.decimals(min_value=0, max_value=1, places=2),
)
candle_payloads = plausible_candles | near_candles | st.dictionaries(st.text(max_size=10), json_values, max_size=8) | json_values
