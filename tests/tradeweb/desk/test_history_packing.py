"""A derived history packed as bytes reads back as the same history, Decimal for Decimal, and goes on from there as
the original does; bytes of another format version, damaged or inconsistent, are refused as unreadable."""

from __future__ import annotations

import struct
from decimal import Decimal

import pytest

from orchestrator.metrics import Trade
from tests.history_state import history_state
from tests.ingest import feed
from tradeweb.desk import equity_curve
from tradeweb.desk.decimal_list import DecimalList
from tradeweb.desk.equity_curve import FillReplay
from tradeweb.desk.history_packing import (
    FORMAT,
    MAGIC,
    PREFIX,
    CheckpointUnreadable,
    pack,
    unpack,
)
from tradeweb.desk.strategy_history import StrategyHistory, history_identity

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_worker")]


def empty(strategy) -> StrategyHistory:
    return StrategyHistory(history_identity(strategy), FillReplay(strategy.strategy_id, strategy.symbol,
                                                                  strategy.capital))


def read_back(data: bytes, strategy) -> StrategyHistory:
    history = empty(strategy)
    for name, value in unpack(data, history).items():
        setattr(history, name, value)
    return history


@pytest.fixture
def derived(mid_trade) -> StrategyHistory:
    strategy, _ = mid_trade
    history = empty(strategy)
    history.extend(strategy)
    return history


def test_a_packed_history_reads_back_as_the_same_and_goes_on_as_it_does(mid_trade, derived):
    strategy, to_come = mid_trade
    again = read_back(pack(derived), strategy)

    assert history_state(again) == history_state(derived)
    assert again.replay.book.held and len(again.trades) >= 10  # a position open, trades closed
    feed(to_come)
    strategy.refresh_from_db()
    derived.extend(strategy)
    again.extend(strategy)
    assert history_state(again) == history_state(derived)
    assert again.curve() == equity_curve.derive(strategy)


def test_decimals_read_back_with_their_own_text(mid_trade, derived):
    strategy, _ = mid_trade
    derived.equities = DecimalList([*derived.equities[:-1], Decimal("-0E-10")])
    derived.fees_paid = DecimalList([Decimal("1E+3"), *derived.fees_paid[1:]])
    first = derived.trades[0]
    derived.trades[0] = Trade(first.opened_at, first.closed_at, Decimal("-0.50"), Decimal(0))

    again = read_back(pack(derived), strategy)

    assert (str(again.equities[-1]), str(again.fees_paid[0])) == ("-0E-10", "1E+3")
    assert (str(again.trades[0].pnl), str(again.trades[0].fees)) == ("-0.50", "0")


def test_bytes_of_another_format_version_are_unreadable(mid_trade, derived):
    strategy, _ = mid_trade
    data = pack(derived)
    _, _, crc = PREFIX.unpack_from(data)
    older = PREFIX.pack(MAGIC, FORMAT - 1, crc) + data[PREFIX.size:]

    with pytest.raises(CheckpointUnreadable, match="format"):
        unpack(older, empty(strategy))


@pytest.mark.parametrize("where", [0, PREFIX.size - 1, PREFIX.size + 3, 0.5, -1])
def test_damaged_bytes_are_unreadable(mid_trade, derived, where):
    strategy, _ = mid_trade
    data = bytearray(pack(derived))
    at = int(len(data) * where) if isinstance(where, float) else where
    data[at] ^= 0x10

    with pytest.raises(CheckpointUnreadable):
        unpack(bytes(data), empty(strategy))


@pytest.mark.parametrize("data", [b"", b"not a checkpoint", struct.pack("<4sHI", MAGIC, FORMAT, 0)])
def test_bytes_that_are_no_history_are_unreadable(mid_trade, data):
    strategy, _ = mid_trade

    with pytest.raises(CheckpointUnreadable):
        unpack(data, empty(strategy))


def test_arrays_that_disagree_are_unreadable(mid_trade, derived):
    strategy, _ = mid_trade
    derived.levels.pop()  # one mark's level missing, though the bytes are whole

    with pytest.raises(CheckpointUnreadable, match="disagree"):
        unpack(pack(derived), empty(strategy))
