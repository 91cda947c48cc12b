"""An equity curve reads as the list of (time, equity) marks it was given, and keeps repeated equities once."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from orchestrator.equity_curve import EquityCurve

T0 = datetime(2022, 1, 1, tzinfo=timezone.utc)
MARKS = [(T0 + timedelta(minutes=n), Decimal(value)) for n, value in enumerate(["100", "100.0", "101.5", "101.5", "99"])]


def test_it_reads_as_the_list_of_its_marks():
    curve = EquityCurve(MARKS)

    assert list(curve) == MARKS and curve == MARKS and curve == EquityCurve(MARKS)
    assert len(curve) == 5 and bool(curve) and not EquityCurve()
    assert curve[0] == MARKS[0] and curve[-1] == MARKS[-1] and curve[1:3] == MARKS[1:3]
    assert dict(curve)[T0] == Decimal(100)
    assert curve != MARKS[:4]


def test_an_equity_equal_to_the_mark_before_is_kept_as_that_same_object():
    curve = EquityCurve()
    first = curve.mark(T0, Decimal("100"))
    again = curve.mark(T0 + timedelta(minutes=1), Decimal("100.00"))
    moved = curve.mark(T0 + timedelta(minutes=2), Decimal("100.5"))

    assert again is first and moved is not first
    assert curve.values == [Decimal(100), Decimal(100), Decimal("100.5")]
