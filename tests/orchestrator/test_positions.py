"""Position P&L net of fees, for longs and shorts, through partial and full closes, worked out by hand."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from orchestrator.positions import PositionBook, PositionError, Side

D = Decimal
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
T1, T2, T3 = (T0 + timedelta(minutes=n) for n in (1, 2, 3))


@pytest.fixture
def book() -> PositionBook:
    return PositionBook("sma-1")


def test_opening_a_position_realizes_nothing_and_keeps_the_fee_to_charge_later(book):
    change = book.open("p1", "BTC/USD", Side.LONG, D("2"), D("100"), D("0.2"), T0, D("98"), D("104"))
    assert (change.kind, change.quantity, change.price, change.fee, change.realized_pnl) == (
        "opened", D("2"), D("100"), D("0.2"), D(0),
    )
    position = book.get("p1")
    assert position.strategy_id == "sma-1"
    assert (position.entry_fee, position.fees, position.initial_quantity) == (D("0.2"), D("0.2"), D("2"))
    assert (position.stop_price, position.take_profit_price) == (D("98"), D("104"))
    assert position.is_open
    assert position.exit_price is None
    assert book.realized_pnl == 0


def test_long_partial_then_full_close_realizes_gross_less_a_proportional_share_of_the_entry_fee_less_the_exit_fee(book):
    book.open("p1", "BTC/USD", Side.LONG, D("2"), D("100"), D("0.2"), T0)

    first = book.reduce("p1", D("0.5"), D("110"), D("0.055"), T1)
    # (110 - 100) * 0.5 = 5 gross; a quarter of the quantity carries a quarter of the 0.2 entry fee.
    assert first.kind == "reduced"
    assert first.realized_pnl == D("5") - D("0.05") - D("0.055") == D("4.895")
    position = book.get("p1")
    assert position.quantity == D("1.5")
    assert position.entry_fee == D("0.15")
    assert position.fees == D("0.255")
    assert book.realized_pnl == D("4.895")

    last = book.close("p1", D("90"), D("0.135"), T2)
    # (90 - 100) * 1.5 = -15 gross, the remaining 0.15 of entry fee, and the 0.135 exit fee.
    assert last.kind == "closed"
    assert last.realized_pnl == D("-15") - D("0.15") - D("0.135") == D("-15.285")
    closed = last.position
    assert closed.quantity == 0
    assert closed.entry_fee == 0
    assert closed.closed_at == T2
    assert closed.realized_pnl == D("4.895") + D("-15.285") == D("-10.39")
    # Overall: gross -10, all three fees paid once each.
    assert closed.realized_pnl == D("-10") - (D("0.2") + D("0.055") + D("0.135"))
    assert closed.fees == D("0.39")
    assert closed.exit_price == (D("0.5") * D("110") + D("1.5") * D("90")) / D("2") == D("95")
    assert book.realized_pnl == D("-10.39")


def test_short_partial_then_full_close_gains_when_the_price_falls_and_loses_when_it_rises(book):
    book.open("s1", "BTC/USD", Side.SHORT, D("2"), D("100"), D("0.2"), T0)

    first = book.reduce("s1", D("0.5"), D("90"), D("0.045"), T1)
    # (90 - 100) * 0.5 * -1 = 5 gross for a short.
    assert first.realized_pnl == D("5") - D("0.05") - D("0.045") == D("4.905")
    assert book.get("s1").entry_fee == D("0.15")

    last = book.close("s1", D("110"), D("0.165"), T2)
    # (110 - 100) * 1.5 * -1 = -15 gross.
    assert last.realized_pnl == D("-15") - D("0.15") - D("0.165") == D("-15.315")
    assert last.position.realized_pnl == D("-10.41")
    assert last.position.exit_price == (D("0.5") * D("90") + D("1.5") * D("110")) / D("2")
    assert book.realized_pnl == D("-10.41")


@pytest.mark.parametrize(("side", "mark", "expected"), [(Side.LONG, "105", "9.8"), (Side.SHORT, "105", "-10.2"), (Side.SHORT, "95", "9.8")])
def test_unrealized_pnl_is_net_of_the_whole_entry_fee_while_nothing_is_closed(book, side, mark, expected):
    book.open("p1", "BTC/USD", side, D("2"), D("100"), D("0.2"), T0)
    assert book.get("p1").unrealized_pnl(D(mark)) == D(expected)


@pytest.mark.parametrize(("side", "mark", "expected"), [(Side.LONG, "105", "7.35"), (Side.SHORT, "105", "-7.65")])
def test_unrealized_pnl_after_a_partial_close_carries_only_the_remaining_entry_fee(book, side, mark, expected):
    book.open("p1", "BTC/USD", side, D("2"), D("100"), D("0.2"), T0)
    book.reduce("p1", D("0.5"), D("100"), D("0.05"), T1)
    # 1.5 left: (105 - 100) * 1.5 * sign, less the 0.15 of entry fee it still owes.
    assert book.get("p1").unrealized_pnl(D(mark)) == D(expected)


def test_the_entry_fee_is_charged_exactly_once_over_uneven_partial_closes(book):
    book.open("p1", "BTC/USD", Side.LONG, D("3"), D("100"), D("0.1"), T0)
    changes = [book.reduce("p1", D("1"), D("100"), D(0), T1 + timedelta(minutes=n)) for n in range(3)]
    shares = [-change.realized_pnl for change in changes]
    # A third of 0.1 does not divide evenly at ten decimals; the rounding must not lose or invent a fee.
    assert shares == [D("0.0333333333"), D("0.0333333334"), D("0.0333333333")]
    assert sum(shares) == D("0.1")
    assert book.realized_pnl == D("-0.1")
    assert changes[-1].kind == "closed"


def test_closing_more_than_is_open_raises_and_changes_nothing(book):
    book.open("p1", "BTC/USD", Side.LONG, D("2"), D("100"), D("0.2"), T0)
    with pytest.raises(PositionError, match="cannot close 2.5 of p1: 2 is open"):
        book.reduce("p1", D("2.5"), D("110"), D("0.1"), T1)
    position = book.get("p1")
    assert (position.quantity, position.entry_fee, position.realized_pnl) == (D("2"), D("0.2"), D(0))
    assert book.realized_pnl == 0


@pytest.mark.parametrize("quantity", ["0", "-1"])
def test_closing_a_zero_or_negative_quantity_raises(book, quantity):
    book.open("p1", "BTC/USD", Side.LONG, D("2"), D("100"), D("0.2"), T0)
    with pytest.raises(PositionError, match="cannot close"):
        book.reduce("p1", D(quantity), D("110"), D(0), T1)


def test_an_unknown_position_id_raises_naming_it_and_the_strategy(book):
    with pytest.raises(PositionError, match="no open position nope in strategy sma-1"):
        book.reduce("nope", D("1"), D("100"), D(0), T0)
    with pytest.raises(PositionError, match="no open position nope in strategy sma-1"):
        book.close("nope", D("100"), D(0), T0)
    with pytest.raises(PositionError, match="no open position nope in strategy sma-1"):
        book.get("nope")


@pytest.mark.parametrize("quantity", ["0", "-2"])
def test_opening_a_zero_or_negative_quantity_raises(book, quantity):
    with pytest.raises(PositionError, match="cannot open p1"):
        book.open("p1", "BTC/USD", Side.LONG, D(quantity), D("100"), D(0), T0)
    assert len(book) == 0


def test_opening_an_id_that_is_already_open_raises(book):
    book.open("p1", "BTC/USD", Side.LONG, D("1"), D("100"), D(0), T0)
    with pytest.raises(PositionError, match="position p1 is already open"):
        book.open("p1", "BTC/USD", Side.SHORT, D("1"), D("100"), D(0), T1)
    assert book.get("p1").side is Side.LONG


def test_a_closed_position_leaves_the_book(book):
    book.open("p1", "BTC/USD", Side.LONG, D("1"), D("100"), D(0), T0)
    book.open("p2", "BTC/USD", Side.LONG, D("1"), D("100"), D(0), T0)
    book.close("p1", D("101"), D(0), T1)
    assert len(book) == 1
    assert [p.position_id for p in book.open_positions()] == ["p2"]
    with pytest.raises(PositionError):
        book.get("p1")


def test_open_positions_are_listed_oldest_first_and_can_be_filtered_by_symbol(book):
    book.open("a", "BTC/USD", Side.LONG, D("1"), D("100"), D(0), T0)
    book.open("b", "ETH/USD", Side.SHORT, D("1"), D("10"), D(0), T1)
    book.open("c", "BTC/USD", Side.SHORT, D("1"), D("100"), D(0), T2)
    assert [p.position_id for p in book.open_positions()] == ["a", "b", "c"]
    assert [p.position_id for p in book.open_positions("BTC/USD")] == ["a", "c"]
    assert book.open_positions("SOL/USD") == []


def test_book_unrealized_pnl_marks_each_position_at_its_own_symbols_price(book):
    book.open("a", "BTC/USD", Side.LONG, D("1"), D("100"), D("0.1"), T0)
    book.open("b", "ETH/USD", Side.SHORT, D("2"), D("10"), D("0.02"), T0)
    marks = {"BTC/USD": D("103"), "ETH/USD": D("9")}
    assert book.unrealized_pnl(marks) == (D("3") - D("0.1")) + (D("2") - D("0.02"))


def test_book_total_realized_equals_the_sum_over_its_positions(book):
    book.open("a", "BTC/USD", Side.LONG, D("2"), D("100"), D("0.08"), T0)
    book.open("b", "BTC/USD", Side.SHORT, D("1.5"), D("101"), D("0.0606"), T0)
    book.open("c", "ETH/USD", Side.LONG, D("10"), D("3"), D("0.012"), T0)
    book.reduce("a", D("0.7"), D("104.5"), D("0.029260"), T1)
    closed_b = book.close("b", D("99.25"), D("0.059550"), T1).position
    book.reduce("c", D("3"), D("2.9"), D("0.00348"), T2)
    closed_a = book.close("a", D("97"), D("0.05044"), T3).position
    positions = [closed_a, closed_b, book.get("c")]
    assert book.realized_pnl == sum((p.realized_pnl for p in positions), D(0))
    assert book.realized_pnl != 0


def test_change_carries_a_snapshot_that_later_changes_do_not_touch(book):
    opened = book.open("p1", "BTC/USD", Side.LONG, D("2"), D("100"), D("0.2"), T0).position
    reduced = book.reduce("p1", D("1"), D("101"), D(0), T1).position
    book.reduce("p1", D("0.5"), D("102"), D(0), T2)
    assert opened.quantity == D("2")
    assert reduced.quantity == D("1")
    assert book.get("p1").quantity == D("0.5")
    snapshot = book.get("p1").snapshot()
    assert snapshot == book.get("p1")
    assert snapshot is not book.get("p1")


def test_a_book_restored_from_snapshots_carries_on_exactly_where_it_left_off(book):
    book.open("p1", "BTC/USD", Side.LONG, D("2"), D("100"), D("0.2"), T0)
    book.open("p2", "BTC/USD", Side.SHORT, D("1"), D("100"), D("0.1"), T0)
    book.reduce("p1", D("0.5"), D("110"), D("0.055"), T1)
    gone = book.close("p2", D("95"), D("0.095"), T1).position
    restored = PositionBook("sma-1", [p.snapshot() for p in book.open_positions()] + [gone], book.realized_pnl)
    assert [p.position_id for p in restored.open_positions()] == ["p1"]
    assert restored.get("p1").fees == book.get("p1").fees == D("0.255")
    assert restored.get("p1").initial_quantity == D("2")
    for either in (book, restored):
        either.close("p1", D("90"), D("0.135"), T2)
    # p1: 4.895 then -15.285 (as in the long example); p2: (95 - 100) * -1 - 0.1 - 0.095 = 4.805.
    assert restored.realized_pnl == book.realized_pnl == D("4.895") + D("4.805") + D("-15.285")


def test_side_sign_is_plus_one_for_long_and_minus_one_for_short():
    assert (Side.LONG.sign, Side.SHORT.sign) == (1, -1)



def touches(position, low: Decimal, high: Decimal) -> bool:
    """Whether a candle from `low` to `high` reaches the position's stop or target (the exchange's rules)."""
    stop, target = position.stop_price, position.take_profit_price
    if position.side is Side.LONG:
        return (stop is not None and low <= stop) or (target is not None and high >= target)
    return (stop is not None and high >= stop) or (target is not None and low <= target)


@pytest.mark.parametrize("low, high", [("94", "99"), ("95.01", "104.99"), ("95", "100"), ("96", "105"), ("101", "106"),
                                       ("97", "103.5"), ("103.4", "103.6"), ("96.6", "96.8"), ("96.8", "103.4")])
def test_a_candle_inside_the_books_band_touches_no_stop_and_no_target_and_one_outside_it_touches_one(low, high):
    book = PositionBook("s")
    assert not book.protected and book.untouched_by(Decimal(1), Decimal(10**6))
    book.open("long", "X", Side.LONG, Decimal(1), Decimal(100), Decimal(0), T0, Decimal(95), Decimal(105))
    book.open("short", "X", Side.SHORT, Decimal(1), Decimal(100), Decimal(0), T0, Decimal("103.5"), Decimal("96.7"))
    book.open("bare", "X", Side.LONG, Decimal(1), Decimal(100), Decimal(0), T0)
    low, high = Decimal(low), Decimal(high)

    assert book.protected and (book.floor, book.ceiling) == (Decimal("96.7"), Decimal("103.5"))
    assert book.untouched_by(low, high) == (not any(touches(p, low, high) for p in book.held))


@pytest.mark.parametrize("sides", [[Side.LONG], [Side.SHORT], [Side.LONG, Side.SHORT]])
def test_a_run_of_marks_is_priced_exactly_as_each_mark_alone(sides):
    book = PositionBook("s")
    for n, side in enumerate(sides):
        book.open(f"p{n}", "BTC/USD", side, Decimal("0.12345678"), Decimal("47000.5"), Decimal("11.6015"), T0)
    marks = [Decimal("46000.12"), Decimal("47000.5"), Decimal("48123.45678901")]

    base = Decimal("10012.3456789012")

    assert book.equity_series(base, marks) == [base + book.unrealized_at(mark) for mark in marks]
    assert book.equity_series(base, marks)[0] != base
