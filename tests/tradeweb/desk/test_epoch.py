"""Times read by the database as whole microseconds since 1970 are the stored times exactly, and turn back into them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tradeweb.desk import models
from tradeweb.desk.epoch import EpochMicroseconds, microseconds, moment

pytestmark = pytest.mark.django_db

TIMES = [
    datetime(2022, 1, 1, tzinfo=timezone.utc),
    datetime(2022, 1, 1, 0, 1, 0, 1, tzinfo=timezone.utc),
    datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=timezone.utc),
    datetime(1999, 12, 31, 12, 30, 15, 250_000, tzinfo=timezone(timedelta(hours=-5))),
]


def test_the_database_reads_each_time_as_its_microseconds_since_1970():
    for sequence, time in enumerate(TIMES):
        models.Event.objects.create(strategy_id="alpha", sequence=sequence, type="SIGNAL", time=time)

    read = list(models.Event.objects.order_by("sequence").values_list(EpochMicroseconds("time"), flat=True))

    assert read == [microseconds(time) for time in TIMES]
    assert read[1] - read[0] == 60_000_001
    assert [moment(value) for value in read] == TIMES
    assert all(type(value) is int for value in read)


def test_microseconds_count_from_1970_utc():
    assert microseconds(datetime(1970, 1, 1, tzinfo=timezone.utc)) == 0
    assert microseconds(datetime(1970, 1, 2, 0, 0, 0, 5, tzinfo=timezone.utc)) == 86_400_000_005
    assert moment(-1) == datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone.utc)
