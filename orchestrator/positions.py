"""A strategy's positions and their profit and loss, net of fees, in Decimal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Iterable, Sequence

ZERO = Decimal(0)
# Money is kept to ten decimal places, the precision the database stores, so a book read
# back after a restart holds exactly the numbers it held before.
MONEY_STEP = Decimal("0.0000000001")
PRICE_STEP = Decimal("0.00000001")


class Side(StrEnum):
    """Direction of a position."""

    LONG = "long"
    SHORT = "short"

    @property
    def sign(self) -> int:
        """+1 for long, -1 for short: P&L is (exit - entry) * quantity * sign."""
        return 1 if self is LONG else -1


# The members as module names: Python 3.11 reads `Side.LONG` through EnumType.__getattr__, at ten times the cost
# of a module name, and the paths run for every candle and every fill compare sides (so do orders.OPEN and
# strategy.EXIT and their kin).
LONG, SHORT = Side.LONG, Side.SHORT


class PositionError(ValueError):
    """An operation the book refuses: unknown position, closing more than is open."""


@dataclass(slots=True)
class Position:
    """One position. `entry_fee` is the part of the opening fee not yet charged to realized P&L."""

    position_id: str
    strategy_id: str
    symbol: str
    side: Side
    quantity: Decimal
    entry_price: Decimal
    opened_at: datetime
    entry_fee: Decimal = ZERO
    initial_quantity: Decimal = ZERO
    stop_price: Decimal | None = None
    take_profit_price: Decimal | None = None
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    exit_value: Decimal = ZERO
    closed_at: datetime | None = None

    def __post_init__(self) -> None:
        if not self.initial_quantity:
            self.initial_quantity = self.quantity
        if not self.fees:
            self.fees = self.entry_fee

    @property
    def is_open(self) -> bool:
        """True while some quantity is still open."""
        return self.quantity > ZERO

    @property
    def exit_price(self) -> Decimal | None:
        """Average price of the quantity closed so far."""
        closed = self.initial_quantity - self.quantity
        return self.exit_value / closed if closed else None

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        """P&L of the open quantity at `mark`, less the opening fee still owed by it."""
        return (mark - self.entry_price) * self.quantity * self.side.sign - self.entry_fee

    def snapshot(self) -> "Position":
        """A copy that later changes to the book do not touch."""
        # Spelled out: made for every fill, and dataclasses.replace costs six times as much.
        return Position(
            self.position_id, self.strategy_id, self.symbol, self.side, self.quantity, self.entry_price, self.opened_at,
            self.entry_fee, self.initial_quantity, self.stop_price, self.take_profit_price, self.realized_pnl, self.fees,
            self.exit_value, self.closed_at,
        )


# Not frozen, but read-only by contract: made for every fill (see orchestrator.events.Event).
@dataclass(slots=True)
class PositionChange:
    """What one fill did to a position: opened, reduced or closed it, and the P&L it realized."""

    kind: str
    position: Position
    quantity: Decimal
    price: Decimal
    fee: Decimal
    realized_pnl: Decimal


class PositionBook:
    """The open positions of one strategy and the P&L realized so far.

    Closed positions leave the book (they live on in storage), so memory stays flat
    however long the strategy trades. `held` (the open positions, oldest first), `side` (the one side they
    are all on), `protected` (whether one has a stop or a target) and the band of prices that touches no stop
    and no target are read on every candle and change only with a fill, so they are kept ready.
    """

    def __init__(self, strategy_id: str, positions: Iterable[Position] = (), realized_pnl: Decimal = ZERO) -> None:
        self.strategy_id = strategy_id
        self._open: dict[str, Position] = {p.position_id: p for p in positions if p.is_open}
        self.realized_pnl = realized_pnl
        self._refresh()

    def _refresh(self) -> None:
        self.held: tuple[Position, ...] = tuple(self._open.values())
        # A long's stop is hit when the low reaches it and its target when the high does (a short's the other
        # way round, and a candle's open lies between its low and its high): a candle whose low is above
        # `floor` and whose high is below `ceiling` touches no level.
        floor = ceiling = None
        # The side every open position is on; None holding nothing, or both sides.
        side = self.held[0].side if self.held else None
        for p in self.held:
            if p.side is LONG:
                below, above = p.stop_price, p.take_profit_price
            else:
                below, above = p.take_profit_price, p.stop_price
            if p.side is not side:
                side = None
            if below is not None and (floor is None or below > floor):
                floor = below
            if above is not None and (ceiling is None or above < ceiling):
                ceiling = above
        self.floor: Decimal | None = floor
        self.ceiling: Decimal | None = ceiling
        self.protected = floor is not None or ceiling is not None
        self.side: Side | None = side

    def untouched_by(self, low: Decimal, high: Decimal) -> bool:
        """Whether a candle from `low` to `high` reaches no stop and no target of the open positions."""
        return (self.floor is None or low > self.floor) and (self.ceiling is None or high < self.ceiling)

    def open(
        self,
        position_id: str,
        symbol: str,
        side: Side,
        quantity: Decimal,
        price: Decimal,
        fee: Decimal,
        time: datetime,
        stop_price: Decimal | None = None,
        take_profit_price: Decimal | None = None,
    ) -> PositionChange:
        """Open a position; the fee is charged to realized P&L as the position closes."""
        if quantity <= ZERO:
            raise PositionError(f"cannot open {position_id} with quantity {quantity}")
        if position_id in self._open:
            raise PositionError(f"position {position_id} is already open")
        # In field order, not by name: made for every entry.
        position = Position(position_id, self.strategy_id, symbol, side, quantity, price, time, fee, quantity, stop_price,
                            take_profit_price)
        self._open[position_id] = position
        self._refresh()
        return PositionChange("opened", position.snapshot(), quantity, price, fee, ZERO)

    def reduce(self, position_id: str, quantity: Decimal, price: Decimal, fee: Decimal, time: datetime) -> PositionChange:
        """Close `quantity` of a position at `price`; closing all of it closes the position."""
        position = self._open.get(position_id)
        if position is None:
            raise PositionError(f"no open position {position_id} in strategy {self.strategy_id}")
        if not ZERO < quantity <= position.quantity:
            raise PositionError(f"cannot close {quantity} of {position_id}: {position.quantity} is open")
        entry_fee_share = (position.entry_fee * quantity / position.quantity).quantize(MONEY_STEP)
        gross = ((price - position.entry_price) * quantity * position.side.sign).quantize(MONEY_STEP)
        realized = gross - entry_fee_share - fee
        position.entry_fee -= entry_fee_share
        position.quantity -= quantity
        position.realized_pnl += realized
        position.fees += fee
        position.exit_value += (price * quantity).quantize(MONEY_STEP)
        self.realized_pnl += realized
        if position.quantity == ZERO:
            position.closed_at = time
            del self._open[position_id]
            self._refresh()
            kind = "closed"
        else:
            kind = "reduced"
        return PositionChange(kind, position.snapshot(), quantity, price, fee, realized)

    def close(self, position_id: str, price: Decimal, fee: Decimal, time: datetime) -> PositionChange:
        """Close what is left of a position."""
        position = self.get(position_id)
        return self.reduce(position_id, position.quantity, price, fee, time)

    def get(self, position_id: str) -> Position:
        """An open position by id."""
        try:
            return self._open[position_id]
        except KeyError:
            raise PositionError(f"no open position {position_id} in strategy {self.strategy_id}") from None

    def open_positions(self, symbol: str | None = None) -> list[Position]:
        """Open positions, oldest first, optionally for one symbol."""
        return [p for p in self._open.values() if symbol is None or p.symbol == symbol]

    def unrealized_pnl(self, marks: dict[str, Decimal]) -> Decimal:
        """Unrealized P&L of all open positions at the given mark prices per symbol."""
        return sum((p.unrealized_pnl(marks[p.symbol]) for p in self._open.values()), ZERO)

    def unrealized_at(self, mark: Decimal) -> Decimal:
        """Unrealized P&L of all open positions at one mark price (a book of one symbol, as a strategy's is)."""
        total = ZERO
        for p in self.held:
            if p.side is LONG:
                total += (mark - p.entry_price) * p.quantity - p.entry_fee
            else:
                total += (p.entry_price - mark) * p.quantity - p.entry_fee
        return total

    def equity_series(self, base: Decimal, marks: Sequence[Decimal]) -> list[Decimal]:
        """`base + unrealized_at(mark)` for each of `marks`, the same operations in the same order (less adding the
        first position's P&L to zero, which changes no amount): a run of closes priced at once."""
        if len(self.held) == 1:
            [p] = self.held
            entry, quantity, fee = p.entry_price, p.quantity, p.entry_fee
            if p.side is LONG:
                return [base + ((mark - entry) * quantity - fee) for mark in marks]
            return [base + ((entry - mark) * quantity - fee) for mark in marks]
        return [base + self.unrealized_at(mark) for mark in marks]

    def __len__(self) -> int:
        return len(self._open)
