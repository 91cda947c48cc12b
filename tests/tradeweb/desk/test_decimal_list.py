"""A list of Decimals some of which are still text reads, slices, grows and compares as a list of those Decimals;
each text is made a Decimal once, when first read, and gives back its exact text until then."""

from __future__ import annotations

from decimal import Decimal

from tradeweb.desk.decimal_list import DecimalList

TEXTS = ["10000.0000000000", "-0E-10", "1E+3", "9999.5000000001"]


def test_it_reads_as_the_decimals_of_its_texts():
    values = DecimalList(TEXTS)

    assert len(values) == 4 and values
    assert values[1] == Decimal(0) and str(values[1]) == "-0E-10"
    assert values[-1] == Decimal("9999.5000000001")
    assert values[1:3] == [Decimal("-0E-10"), Decimal("1E+3")]
    assert values[::2] == [Decimal(10000), Decimal("1E+3")]
    assert list(values) == [Decimal(text) for text in TEXTS]
    assert all(type(value) is Decimal for value in values)
    assert not DecimalList()


def test_each_text_is_made_a_decimal_once():
    values = DecimalList(TEXTS)

    first = values[0]
    sliced = values[0:2]

    assert values[0] is first and sliced[0] is first and values[1] is sliced[1]


def test_it_grows_as_a_list_does():
    values = DecimalList(TEXTS[:1])

    values.append(Decimal("1.5"))
    values += [Decimal("2.5"), Decimal("3.5")]

    assert values == [Decimal(10000), Decimal("1.5"), Decimal("2.5"), Decimal("3.5")]
    assert values[-1] == Decimal("3.5") and len(values) == 4


def test_its_texts_are_exact_whether_read_or_not():
    values = DecimalList(TEXTS)
    values[2]
    values.append(Decimal("0.10"))

    assert list(values.texts()) == [*TEXTS, "0.10"]
    assert [str(value) for value in values] == [*TEXTS, "0.10"]


def test_it_equals_the_list_of_its_decimals_and_nothing_else():
    values = DecimalList(TEXTS)

    assert values == [Decimal(text) for text in TEXTS] and values == DecimalList(TEXTS)
    assert values != [Decimal(text) for text in TEXTS[:3]] and values != TEXTS[:0]
    assert values != "10000"
