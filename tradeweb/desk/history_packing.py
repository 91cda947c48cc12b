"""A strategy's derived history (`StrategyHistory`) as bytes and back, exactly: what its checkpoint stores
(`history_checkpoints`), read back by a web process that has not derived it yet.

The bytes: a prefix (a magic word, the format version, a CRC-32 of the rest), then compressed together a header
(JSON: the scalars, the replayed book's open positions, the running drawdown, the length of each array) and the
arrays one after the other. Integers (times, indices, row keys) go as 64-bit differences from the one before, which
compress to almost nothing; floats as their 64 bits; Decimals as their text, which reads back as the same Decimal;
the trades' datetimes in ISO 8601, exit reasons as lines. Reading back is what costs, so each is in the form read
fastest: arrays of machine values made lists at once, datetimes parsed from ISO text (four times faster than made
from numbers), and the marks' equities and the fees paid left as text until read (`DecimalList`): a page reads a
few dozen of them. Another FORMAT, a wrong CRC or arrays that do not fit together make `CheckpointUnreadable`.
"""

from __future__ import annotations

import json
import struct
import sys
import zlib
from array import array
from datetime import datetime
from decimal import Decimal
from itertools import accumulate
from operator import sub
from typing import TYPE_CHECKING

from orchestrator.metrics import RunningDrawdown, Trade
from orchestrator.positions import Position, PositionBook, Side
from tradeweb.desk.decimal_list import DecimalList
from tradeweb.desk.epoch import microseconds, moment
from tradeweb.desk.equity_curve import FillReplay

if TYPE_CHECKING:
    from tradeweb.desk.strategy_history import StrategyHistory

FORMAT = 1  # bumped whenever the packed form changes: bytes of another version are not read
MAGIC = b"TWPH"  # tradeweb P&L history
PREFIX = struct.Struct("<4sHI")  # magic, format version, CRC-32 of the rest
LENGTH = struct.Struct("<I")  # the header's length in bytes
COMPRESSION = 1  # zlib's fastest level: the differences of regular times are long runs it finds anyway
LITTLE_ENDIAN = sys.byteorder == "little"

# The arrays, in the order they are packed: (name, kind), a kind being "integer", "float", "decimal" or "text".
ARRAYS = (
    ("times", "integer"),
    ("equities", "decimal"),
    ("levels", "float"),
    ("day_ends", "integer"),
    ("underwater", "float"),
    ("fill_times", "integer"),
    ("fees_paid", "decimal"),
    ("trade_opened", "text"),
    ("trade_closed", "text"),
    ("closed_times", "integer"),
    ("trade_pnl", "decimal"),
    ("trade_fees", "decimal"),
    ("exit_reasons", "text"),
    ("position_pks", "integer"),
)
# The arrays that go together: each mark with its equity, level and fall; each fill with its fees; each trade with
# its figures.
TOGETHER = (("times", "equities", "levels", "underwater"), ("fill_times", "fees_paid"),
            ("trade_opened", "trade_closed", "closed_times", "trade_pnl", "trade_fees", "exit_reasons", "position_pks"))


class CheckpointUnreadable(ValueError):
    """Bytes that cannot be read back as a history: of another format version, damaged, or inconsistent."""


def pack(history: StrategyHistory) -> bytes:
    """The history as bytes: what `unpack` reads back."""
    replay, drawdown = history.replay, history.drawdown
    arrays = {
        "times": history.times, "equities": history.equities, "levels": history.levels,
        "day_ends": history.day_ends, "underwater": history.underwater, "fill_times": history.fill_times,
        "fees_paid": history.fees_paid, "trade_opened": [trade.opened_at.isoformat() for trade in history.trades],
        "trade_closed": [trade.closed_at.isoformat() for trade in history.trades],
        "closed_times": history.closed_times, "trade_pnl": [trade.pnl for trade in history.trades],
        "trade_fees": [trade.fees for trade in history.trades], "exit_reasons": history.exit_reasons,
        "position_pks": history.position_pks,
    }
    packed = [packed_array(kind, arrays[name]) for name, kind in ARRAYS]
    header = {
        "begin": microseconds(history.begin),
        "through": microseconds(history.through),
        "book": {
            "realized_pnl": str(replay.book.realized_pnl),
            "positions": [packed_position(position) for position in replay.book.held],
        },
        "held": str(replay.held),
        "constant": str(replay.constant),
        "peak_level": history.peak_level,
        "drawdown": {
            "peak": str(drawdown.peak), "peak_time": drawdown.peak_time, "trough": str(drawdown.trough),
            "deepest": drawdown.deepest, "below_until": drawdown.below_until, "longest": drawdown.longest,
        },
        "arrays": [[len(arrays[name]), len(data)] for (name, _), data in zip(ARRAYS, packed)],
    }
    text = json.dumps(header, separators=(",", ":")).encode()
    rest = zlib.compress(b"".join([LENGTH.pack(len(text)), text, *packed]), COMPRESSION)
    return PREFIX.pack(MAGIC, FORMAT, zlib.crc32(rest)) + rest


def unpack(data: bytes, history: StrategyHistory) -> dict:
    """The fields of `history` (an empty one, of the strategy the bytes were packed for) that `data` packs, by name,
    all read and checked before the caller sets any; CheckpointUnreadable if they cannot be."""
    try:
        magic, version, crc = PREFIX.unpack_from(data)
        if magic != MAGIC or version != FORMAT:
            raise CheckpointUnreadable(f"format {version} of {magic!r}, not {FORMAT} of {MAGIC!r}")
        rest = memoryview(data)[PREFIX.size:]
        if zlib.crc32(rest) != crc:
            raise CheckpointUnreadable("damaged: its CRC-32 does not match")
        plain = zlib.decompress(rest)
        (length,) = LENGTH.unpack_from(plain)
        offset = LENGTH.size + length
        return unpacked_fields(json.loads(plain[LENGTH.size:offset]), memoryview(plain), offset, history.replay)
    except CheckpointUnreadable:
        raise
    except (ValueError, TypeError, KeyError, IndexError, ArithmeticError, struct.error, zlib.error) as error:
        # What struct, zlib, json and decimal raise on bytes they cannot read (a Decimal's is an ArithmeticError).
        raise CheckpointUnreadable(f"unreadable: {error!r}") from error


def unpacked_fields(header: dict, plain: memoryview, offset: int, empty: FillReplay) -> dict:
    """A history's fields from a header and the arrays packed from `offset` of `plain`, the replay continuing
    `empty`'s (its strategy, symbol and capital)."""
    if len(header["arrays"]) != len(ARRAYS):
        raise CheckpointUnreadable(f"{len(header['arrays'])} arrays, not {len(ARRAYS)}")
    arrays = {}
    for (name, kind), (count, size) in zip(ARRAYS, header["arrays"]):
        arrays[name] = unpacked_array(kind, plain[offset:offset + size], count)
        offset += size
    if offset != len(plain):
        raise CheckpointUnreadable("its arrays do not end where it does")
    for names in TOGETHER:
        if len({len(arrays[name]) for name in names}) != 1:
            raise CheckpointUnreadable(f"its arrays {', '.join(names)} disagree in length")
    marks = len(arrays["times"])
    if arrays["day_ends"][-1:] != ([marks - 1] if marks else []):
        raise CheckpointUnreadable("its last day does not end at its last mark")
    book = header["book"]
    replay = FillReplay(empty.book.strategy_id, empty.symbol, empty.capital)
    replay.book = PositionBook(replay.book.strategy_id, [unpacked_position(row, replay) for row in book["positions"]],
                               Decimal(book["realized_pnl"]))
    replay.held, replay.constant = Decimal(header["held"]), Decimal(header["constant"])
    state = header["drawdown"]
    drawdown = RunningDrawdown(empty.capital)
    drawdown.peak, drawdown.trough = Decimal(state["peak"]), Decimal(state["trough"])
    drawdown.peak_time, drawdown.below_until = state["peak_time"], state["below_until"]
    drawdown.deepest = float(state["deepest"])
    drawdown.longest = tuple(state["longest"]) if state["longest"] is not None else None
    trades = list(map(Trade, map(datetime.fromisoformat, arrays.pop("trade_opened")),
                      map(datetime.fromisoformat, arrays.pop("trade_closed")), map(Decimal, arrays.pop("trade_pnl")),
                      map(Decimal, arrays.pop("trade_fees"))))
    return arrays | {
        "equities": DecimalList(arrays["equities"]), "fees_paid": DecimalList(arrays["fees_paid"]), "trades": trades,
        "replay": replay, "begin": moment(header["begin"]), "through": moment(header["through"]),
        "drawdown": drawdown, "peak_level": float(header["peak_level"]),
    }


def packed_array(kind: str, values: list | DecimalList) -> bytes:
    """A list of its kind (see ARRAYS) as bytes."""
    if kind == "integer":
        return machine_values("q", values[:1] + list(map(sub, values[1:], values)))
    if kind == "float":
        return machine_values("d", values)
    if kind == "decimal":
        return ",".join(values.texts() if isinstance(values, DecimalList) else map(str, values)).encode("ascii")
    return "\n".join(values).encode()


def unpacked_array(kind: str, data: memoryview, count: int) -> list:
    """The list of `count` values that `packed_array` gave `data` for, Decimals as their text."""
    if kind == "integer":
        values = list(accumulate(values_of("q", data)))
    elif kind == "float":
        values = values_of("d", data)
    elif kind == "decimal":
        values = bytes(data).decode("ascii").split(",") if count else []
    else:
        values = bytes(data).decode().split("\n") if count else []
    if len(values) != count:
        raise CheckpointUnreadable(f"an array of {len(values)} values where its header says {count}")
    return values


def machine_values(code: str, values: list) -> bytes:
    """Numbers as an `array` of type `code`, little-endian."""
    packed = array(code, values)
    if not LITTLE_ENDIAN:
        packed.byteswap()
    return packed.tobytes()


def values_of(code: str, data: memoryview) -> list:
    """The numbers `machine_values` packed."""
    unpacked = array(code)
    unpacked.frombytes(data)
    if not LITTLE_ENDIAN:
        unpacked.byteswap()
    return unpacked.tolist()


def packed_position(position: Position) -> list:
    """An open position of the replayed book as JSON values (its times are the replay's: microseconds)."""
    def text(value: Decimal | None) -> str | None:
        return None if value is None else str(value)

    return [position.position_id, position.side.value, str(position.quantity), str(position.entry_price),
            position.opened_at, str(position.entry_fee), str(position.initial_quantity), text(position.stop_price),
            text(position.take_profit_price), str(position.realized_pnl), str(position.fees),
            str(position.exit_value)]


def unpacked_position(row: list, replay: FillReplay) -> Position:
    """The open position `packed_position` gave `row` for, in the book of `replay`'s strategy and symbol."""
    def number(value: str | None) -> Decimal | None:
        return None if value is None else Decimal(value)

    (position_id, side, quantity, entry_price, opened_at, entry_fee, initial_quantity, stop_price, take_profit_price,
     realized_pnl, fees, exit_value) = row
    if not isinstance(opened_at, int):
        raise CheckpointUnreadable(f"position {position_id!r} opened at {opened_at!r}")
    position = Position(str(position_id), replay.book.strategy_id, replay.symbol, Side(side), Decimal(quantity),
                        Decimal(entry_price), opened_at, Decimal(entry_fee), Decimal(initial_quantity),
                        number(stop_price), number(take_profit_price), Decimal(realized_pnl), Decimal(fees),
                        Decimal(exit_value))
    # As stored: the constructor takes a zero for "not given".
    position.initial_quantity, position.fees = Decimal(initial_quantity), Decimal(fees)
    return position
