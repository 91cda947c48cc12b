"""An order's id carries the time of the candle it was made on, written as fourteen digits."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from orchestrator.orders import order_stamp


def test_a_candles_time_is_written_as_its_year_month_day_hour_minute_and_second():
    assert order_stamp(datetime(2022, 1, 3, 9, 5, 7, tzinfo=timezone.utc)) == "20220103090507"


@pytest.mark.parametrize("year", [1, 999, 1000, 1970, 2022, 9999])
def test_every_time_is_written_as_strftime_writes_it_with_its_zeros(year):
    start, end = datetime(year, 1, 1, tzinfo=timezone.utc), datetime(year, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
    step = timedelta(minutes=997, seconds=13)
    for n in range((end - start) // step + 1):
        time = start + n * step
        assert order_stamp(time) == f"{time.year:04d}{time:%m%d%H%M%S}"
