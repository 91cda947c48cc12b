"""One strategy's orchestrator: candle -> indicators -> strategy -> risk -> exchange -> positions -> journal/events.

A live Celery worker and a backtest loop drive the same object; storage and publishing
sit behind the ports in `orchestrator.ports`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Callable, Iterable

from orchestrator.candles import Candle
from orchestrator.events import EventSequence, EventType, decimal_text
from orchestrator.indicators import IndicatorSet, MarketIndicators
from orchestrator.loss_limits import EquityMarks
from orchestrator.orders import CLOSE, MARKET, OPEN, Fill, FillTrigger, Order, order_stamp
from orchestrator.paper_exchange import PaperExchange
from orchestrator.ports import CandleResult, EventPublisher, JournalEntry, OrchestratorStore
from orchestrator.positions import LONG, SHORT, PositionBook
from orchestrator.risk import CapitalLimitHit, RiskRejected, RiskRules, check_capital
from orchestrator.strategy import ENTER_LONG, EXIT, Signal, Strategy
from orchestrator.strategy_equity import StrategyEquity

if TYPE_CHECKING:
    from orchestrator.candle_schedule import CandleColumns

ZERO = Decimal(0)
# Bumped whenever the snapshot's layout changes; an older snapshot is not restored (the orchestrator warms up instead).
SNAPSHOT_VERSION = 5


class WindDown(StrEnum):
    """How a strategy that is switched out (or off) leaves its open positions: it takes no new entry
    either way. DRAIN keeps managing them (stops, targets, exit signals) until they are closed;
    CLOSE closes them at market at the open of the next candle."""

    DRAIN = "drain"
    CLOSE = "close"


@dataclass(slots=True)
class OrchestratorState:
    """What an orchestrator needs to carry on after a restart, as read back from storage."""

    last_candle_time: datetime | None = None
    last_sequence: int = 0
    realized_pnl: Decimal = ZERO
    open_positions: list = field(default_factory=list)
    pending_orders: list = field(default_factory=list)

# The reason of the close orders a strategy switched off with the close policy sends: how its trades say "switch".
WIND_DOWN_CLOSE_REASON = "winding down: close at market"


def skipped_to(snapshot: dict | None, time: datetime) -> dict | None:
    """The snapshot of a strategy that skips, untraded, the candles up to `time` (switched on again at the
    market's newest candle): its risk state (marks and halt) stays; its indicators and its own memory warm
    up again on stored candles. None for none, or one of another version."""
    if not snapshot or snapshot.get("version") != SNAPSHOT_VERSION:
        return None
    return snapshot | {"last_candle_time": time.isoformat(), "indicators": {}, "strategy": None, "gap_reported_after": None}


class StrategyOrchestrator:
    """Runs one strategy on one market, isolated from every other strategy.

    Processing is idempotent per candle time: a candle at or before the last one changes
    nothing (an earlier one is reported as DATA_REJECTED, the same one is ignored).
    Orchestrators of one market fed the same candles from the same first one (a backtest's) may share
    `market_indicators`, so that an indicator they both declare is computed once per candle.
    """

    def __init__(
        self,
        strategy_id: str,
        strategy: Strategy,
        symbol: str,
        timeframe: str,
        capital: Decimal,
        store: OrchestratorStore,
        publisher: EventPublisher,
        state: OrchestratorState | None = None,
        market_indicators: MarketIndicators | None = None,
    ) -> None:
        state = state or OrchestratorState()
        config = strategy.config
        self.strategy_id = strategy_id
        self.strategy = strategy
        self.symbol = symbol
        self.timeframe = timeframe
        self.capital = capital
        self.store = store
        self.publisher = publisher
        self.risk = RiskRules.from_config(config)
        # Shared with the market's other strategies when they all see the same candles from the same one on.
        self.indicators = IndicatorSet(strategy.indicators(), market_indicators)
        self.exchange = PaperExchange(config.fee_rate, config.slippage, state.pending_orders)
        self.book = PositionBook(strategy_id, state.open_positions, state.realized_pnl)
        self.sequence = EventSequence(strategy_id, state.last_sequence)
        self.last_candle_time = state.last_candle_time
        self.last_close: Decimal | None = None
        # The equity marked at each close, for the loss limits (`marks`) and `equity`.
        self._equity = StrategyEquity(capital, self.book)
        # The last candle after which a missing candle was reported, so a lasting gap is reported once.
        self.gap_reported_after: datetime | None = None
        # Set while the strategy winds down: no new entries (see WindDown).
        self.wind_down: WindDown | None = None
        # Why the strategy is halted (no new entries, exits still managed) until it is resumed.
        self.halted: str | None = None

    @property
    def marks(self) -> EquityMarks:
        """The equity marks its loss limits read (peak, the UTC day's start, the last), up to the last candle."""
        return self._equity.marks

    @marks.setter
    def marks(self, marks: EquityMarks) -> None:
        self._equity.marks = marks

    def snapshot(self) -> dict:
        """What the orchestrator remembers beyond its stored rows (indicators, the strategy's own memory,
        the last close), as JSON. Positions, orders and the event number are rebuilt from their rows."""
        return {
            "version": SNAPSHOT_VERSION,
            "capital": decimal_text(self.capital),
            "last_candle_time": self.last_candle_time.isoformat() if self.last_candle_time else None,
            "last_close": decimal_text(self.last_close),
            "gap_reported_after": self.gap_reported_after.isoformat() if self.gap_reported_after else None,
            "risk": self.marks.to_json() | {"halted": self.halted},
            "indicators": self.indicators.state(),
            "strategy": self.strategy.state(),
        }

    def restore(self, snapshot: dict | None, history: Callable[[], Iterable[Candle]] | None = None) -> bool:
        """Continue from a snapshot taken after this orchestrator's last candle, possibly under another config
        of the same strategy class (a hot reload); False (and nothing changed) when there is none, or it is
        of another version or candle.

        An indicator the snapshot holds under the same key (kind and period) continues exactly where it was.
        When the config declares an indicator the snapshot lacks (or the snapshot has no strategy memory, see
        `skipped_to`), `history` (the stored candles up to the last one) re-warms it, and the strategy's own
        memory is rebuilt on them with the new indicators; without `history` nothing is restored. A new capital shifts the risk marks (peak, day start) by the
        difference, so a change of capital is not mistaken for a gain or a loss.
        """
        if not snapshot or snapshot.get("version") != SNAPSHOT_VERSION:
            return False
        last = self.last_candle_time.isoformat() if self.last_candle_time else None
        if snapshot["last_candle_time"] != last:
            return False
        kept = snapshot["indicators"]
        rewarm = snapshot["strategy"] is None or any(key not in kept for key in self.indicators.keys)
        if rewarm and (history is None or self.last_candle_time is None):
            return False
        self.last_close = Decimal(snapshot["last_close"]) if snapshot["last_close"] is not None else None
        if rewarm:
            # Everything warms up on the stored candles; then the unchanged indicators take their exact state back.
            self.warm_up(history())
            self.indicators.restore(self.indicators.state() | {key: kept[key] for key in self.indicators.keys if key in kept})
        else:
            self.indicators.restore(kept)
            self.strategy.restore(snapshot["strategy"])
        reported = snapshot["gap_reported_after"]
        self.gap_reported_after = datetime.fromisoformat(reported) if reported else None
        self.marks = EquityMarks.from_json(snapshot["risk"], shift=self.capital - Decimal(snapshot["capital"]))
        self.halted = snapshot["risk"]["halted"]
        return True

    def warm_up(self, candles: Iterable[Candle]) -> None:
        """Feed history to indicators and strategy without trading.

        A rebuilt orchestrator takes candles up to its last processed one; a fresh one takes
        them all and counts them as seen, so the same candles are not processed again.
        """
        resumed = self.last_candle_time is not None
        for candle in candles:
            if resumed and candle.time > self.last_candle_time:
                break
            if not resumed and self.last_candle_time is not None and candle.time <= self.last_candle_time:
                continue
            self.strategy.on_candle(candle, self.indicators.update(candle), self.book.held)
            self.last_close = candle.close
            if not resumed:
                self.last_candle_time = candle.time

    def process(self, candle: Candle) -> CandleResult | None:
        """Run one closed candle through the strategy; store and publish what it produced.

        Returns the stored result when the candle produced something (an event, an order, a fill); None when
        it did not, or for a duplicate. A quiet candle stores nothing: it only moves the orchestrator on (its
        last candle, close and equity, see `head`), which the live path writes with the candle's batch.
        """
        if candle.symbol != self.symbol or candle.timeframe != self.timeframe:
            return self.reject(
                candle.time,
                f"{candle.symbol} {candle.timeframe} candle sent to a strategy trading {self.symbol} {self.timeframe}",
            )
        time = candle.time
        last = self.last_candle_time
        if last is not None and time <= last:
            if time == last:
                return None
            return self.reject(
                time,
                f"out of order: candle at {time.isoformat()} is older than the last one at {last.isoformat()}",
            )

        # Made only when the candle produces something: most candles produce nothing.
        result: CandleResult | None = None
        book, exchange = self.book, self.exchange
        if self.wind_down is not None and (exchange.waiting or book.held):
            result = CandleResult(self.strategy_id, time, candle)
            self._cancel_entries(result, f"winding down ({self.wind_down})")
            if self.wind_down is WindDown.CLOSE:
                self._close_everything(result)
        if exchange.waiting:
            for fill in exchange.fill_market_orders(candle):
                result = result or CandleResult(self.strategy_id, time, candle)
                self._apply_fill(fill, result)
        if book.protected and not book.untouched_by(candle.low, candle.high):
            for fill in exchange.protective_fills(candle, book.held):
                result = result or CandleResult(self.strategy_id, time, candle)
                self._apply_fill(fill, result)

        signals = self.strategy.on_candle(candle, self.indicators.update(candle), book.held)
        if signals:
            result = result or CandleResult(self.strategy_id, time, candle)
            for number, signal in enumerate(signals):
                self._act(signal, candle, number, result)

        self.last_candle_time = time
        self.last_close = close = candle.close
        # The book marked to this close once, for the limits and the stored result alike; without limits to
        # check, a quiet candle's close is priced when something reads it.
        if self.risk.halts:
            equity, unrealized = self._equity.price(close, result is not None)
            result = self._watch_limits(candle, equity, result)
        elif result is None and self._equity.defer(time, close):
            return None
        else:
            unrealized = self._equity.mark(time, close, result is not None)[1]
        if result is not None:
            self._commit(result, unrealized)
        return result

    @property
    def takes_quiet_candles(self) -> bool:
        """Whether the next candles can be taken with `pass_quiet` (if they touch no stop and no target, and the
        strategy decides nothing on them): no order waits for an open, no loss limit needs every close, and the
        strategy is not winding down."""
        return not self.exchange.waiting and not self.risk.halts and self.wind_down is None

    def pass_quiet(self, columns: CandleColumns, start: int, stop: int) -> list[Decimal]:
        """Take the candles `start` to `stop` (excluded) of a run of its market, the next ones it has not taken, on
        which the caller knows its strategy decides nothing (`DecidesOnKnownCandles`), at once and as `process`
        would take them one by one: they fill nothing, so they only move on its last candle, its close and its
        equity marks. Returns its equity after each. ValueError if they could do more (see `takes_quiet_candles`;
        a stop or a target within their range)."""
        book, times, closes = self.book, columns.times, columns.closes
        if not self.takes_quiet_candles or (
            book.protected and not book.untouched_by(min(columns.lows[start:stop]), max(columns.highs[start:stop]))
        ):
            raise ValueError(f"{self.strategy_id}: candles from {times[start].isoformat()} are not quiet")
        if self.last_candle_time is not None and times[start] <= self.last_candle_time:
            raise ValueError(f"{self.strategy_id}: candle at {times[start].isoformat()} was taken already")
        equity = self._equity
        index = start
        while index < stop:
            index = equity.defer_run(times, closes, index, stop)
            if index < stop:
                equity.mark(times[index], closes[index], False)
                index += 1
        self.last_candle_time, self.last_close = times[stop - 1], closes[stop - 1]
        return equity.series(closes[start:stop])

    @property
    def equity(self) -> Decimal:
        """Capital plus realized P&L plus unrealized P&L at the last close."""
        return self._equity.current(self.last_close)

    def head(self) -> dict:
        """Where the orchestrator stands after its last candle: that candle and its close, its equity and P&L
        marked to the close, its last event number; what a strategy's row shows. A value it does not have yet
        is left out."""
        unrealized = self._unrealized_at(self.last_close)
        realized = self.book.realized_pnl
        head = {
            "last_candle_time": self.last_candle_time, "last_close": self.last_close,
            "equity": self.capital + realized + unrealized, "realized_pnl": realized, "unrealized_pnl": unrealized,
            "last_sequence": self.sequence.last or None,
        }
        return {name: value for name, value in head.items() if value is not None}

    def _watch_limits(self, candle: Candle, equity: Decimal, result: CandleResult | None) -> CandleResult | None:
        """Mark the risk limits to this close; the first breach halts the strategy with a RISK_HALTED event
        (in `result`, made if there is none yet, which is returned)."""
        marks = self.marks
        marks.mark(candle.time, equity, self.capital)
        if self.halted is None and self.risk.halts:
            exposure = self._exposure(candle.close) if self.risk.max_gross_exposure is not None else ZERO
            reason = self.risk.halt_reason(marks.last, marks.peak, marks.day_start, exposure)
            if reason is not None:
                result = result or CandleResult(self.strategy_id, candle.time, candle)
                self.halt(reason, candle.time, result)
        return result

    def halt(self, reason: str, time: datetime, result: CandleResult | None = None) -> CandleResult | None:
        """Stop entering (exits are still managed) until resumed, with one RISK_HALTED event, added to `result`
        or committed on its own; entries waiting for the next open are cancelled. None, and nothing changes,
        if the strategy is halted already."""
        if self.halted is not None:
            return None
        self.halted = reason
        own = result is None
        result = CandleResult(self.strategy_id, time) if own else result
        result.events.append(
            self.sequence.event(EventType.RISK_HALTED, self.symbol, time, reason=reason, equity=decimal_text(self.marks.last))
        )
        result.journal.append(JournalEntry(self.strategy_id, time, "risk", f"Halted: {reason}; exits still managed"))
        # An entry waiting for the next open would open a position after the halt.
        self._cancel_entries(result, f"halted: {reason}")
        if own:
            self._commit(result)
        return result

    def _exposure(self, price: Decimal) -> Decimal:
        """Open notional at `price`."""
        return sum((p.quantity * price for p in self.book.held), ZERO)

    def capital_used(self, price: Decimal) -> Decimal:
        """Capital the strategy's positions hold (what they cost to enter) and its entries waiting for the next
        open would take (at `price`). A position with a close waiting for the open holds none: the close
        releases it, with its P&L, before an entry made on the same candle fills."""
        pending, positions = self.exchange.waiting, self.book.held
        if not pending and not positions:
            return ZERO
        closing = {o.position_id for o in pending if o.intent is CLOSE}
        symbol = self.symbol
        held = sum((p.quantity * p.entry_price for p in positions if p.symbol == symbol and p.position_id not in closing), ZERO)
        return held + sum((o.quantity * price for o in pending if o.intent is OPEN), ZERO)

    def resume(self, time: datetime, user: str) -> CandleResult | None:
        """Lift a risk halt (a user's decision): entries are allowed again, and drawdown and the day's loss
        are measured from the equity now. None if the strategy was not halted."""
        if self.halted is None:
            return None
        reason, self.halted = self.halted, None
        self.marks.restart_from(self.equity_at(self.last_close))
        result = CandleResult(self.strategy_id, time)
        result.events.append(self.sequence.event(EventType.RISK_RESUMED, self.symbol, time, user=user, was=reason))
        result.journal.append(JournalEntry(self.strategy_id, time, "risk", f"Resumed by {user} after: {reason}"))
        self._commit(result)
        return result

    def reject(self, time: datetime, reason: str) -> CandleResult:
        """Record bad market data as a DATA_REJECTED event the user can see; nothing else changes."""
        result = CandleResult(self.strategy_id, time)
        result.events.append(self.sequence.event(EventType.DATA_REJECTED, self.symbol, time, reason=reason))
        result.journal.append(JournalEntry(self.strategy_id, time, "data", f"Candle rejected: {reason}"))
        self._commit(result)
        return result

    def report_gap(self, waiting_from: datetime, waiting: int) -> CandleResult | None:
        """Say, once per gap, that the candle after the last one is missing while `waiting` later candles
        (the first at `waiting_from`) wait for it; None if this gap was reported already."""
        if self.last_candle_time is None or self.gap_reported_after == self.last_candle_time:
            return None
        self.gap_reported_after = self.last_candle_time
        after = self.last_candle_time.isoformat()
        result = CandleResult(self.strategy_id, waiting_from)
        result.events.append(
            self.sequence.event(
                EventType.DATA_GAP, self.symbol, waiting_from,
                expected_after=after, waiting_from=waiting_from.isoformat(), waiting=waiting,
            )
        )
        result.journal.append(
            JournalEntry(
                self.strategy_id, waiting_from, "data",
                f"Waiting for the candle after {after}: it is missing, and {waiting} later "
                f"candle{'' if waiting == 1 else 's'} from {waiting_from.isoformat()} wait for it",
            )
        )
        self._commit(result)
        return result

    def finish_wind_down(self) -> CandleResult:
        """Say that the strategy, winding down, is flat: a STRATEGY_DEACTIVATED event after its last candle.
        The caller stops giving it candles."""
        time = self.last_candle_time
        result = CandleResult(self.strategy_id, time)
        result.events.append(
            self.sequence.event(EventType.STRATEGY_DEACTIVATED, self.symbol, time, reason="flat", wind_down=str(self.wind_down))
        )
        result.journal.append(JournalEntry(self.strategy_id, time, "control", f"Flat after winding down ({self.wind_down}): dormant"))
        self._commit(result)
        return result

    @property
    def is_flat(self) -> bool:
        """No open position and no order waiting: nothing left to manage."""
        return not len(self.book) and not self.exchange.pending_orders

    def _cancel_entries(self, result: CandleResult, reason: str) -> None:
        """Take back entry orders still waiting for an open: a strategy winding down or halted opens nothing."""
        for order in list(self.exchange.pending_orders):
            if order.intent is OPEN:
                self.exchange.cancel(order.order_id)
                result.cancelled.append(order.order_id)
                result.events.append(
                    self.sequence.event(EventType.ORDER_CANCELLED, self.symbol, result.time, order_id=order.order_id,
                                        reason=reason)
                )
                result.journal.append(JournalEntry(self.strategy_id, result.time, "order",
                                                   f"Cancelled pending order {order.order_id}: {reason}"))

    def _close_everything(self, result: CandleResult) -> None:
        """Market orders closing every open position not already being closed, placed as of the last
        candle so that they fill at the open of the one being processed."""
        if self.last_candle_time is None:
            return
        closing = {o.position_id for o in self.exchange.pending_orders if o.intent is CLOSE}
        for index, position in enumerate(self.book.open_positions(self.symbol)):
            if position.position_id not in closing:
                self._submit(
                    Order(f"{self.strategy_id}-{order_stamp(self.last_candle_time)}-close-{index}", self.strategy_id,
                          self.symbol, CLOSE, position.side, position.quantity, self.last_candle_time,
                          position.position_id, WIND_DOWN_CLOSE_REASON),
                    result,
                )

    def equity_at(self, mark: Decimal | None) -> Decimal:
        """Capital plus realized P&L plus unrealized P&L if the market were at `mark`."""
        return self._equity.at(mark)

    def _unrealized_at(self, mark: Decimal | None) -> Decimal:
        return self._equity.unrealized_at(mark)

    def _commit(self, result: CandleResult, unrealized: Decimal | None = None) -> None:
        """Mark the book to the last close (`unrealized`, when the caller has it), then store and publish the result."""
        result.realized_pnl = self.book.realized_pnl
        result.unrealized_pnl = self._unrealized_at(self.last_close) if unrealized is None else unrealized
        result.equity = self.capital + result.realized_pnl + result.unrealized_pnl
        self.store.record(result)
        if result.events:
            self.publisher.publish(result.events)

    def _act(self, signal: Signal, candle: Candle, number: int, result: CandleResult) -> None:
        time = candle.time
        # As the event and the journal write it, worked out once.
        action = str(signal.action)
        result.events.append(
            self.sequence.event(
                EventType.SIGNAL_GENERATED, self.symbol, time,
                action=action, reason=signal.reason, close=decimal_text(candle.close),
            )
        )
        result.journal.append(JournalEntry(self.strategy_id, time, "signal", f"{action}: {signal.reason}"))
        order_id = f"{self.strategy_id}-{order_stamp(time)}-{number}"
        if signal.action is EXIT:
            waiting = self.exchange.waiting
            closing = {o.position_id for o in waiting if o.intent is CLOSE} if waiting else ()
            for index, position in enumerate(self.book.held):
                if position.position_id in closing:
                    continue
                self._submit(
                    Order(f"{order_id}-{index}", self.strategy_id, self.symbol, CLOSE, position.side,
                          position.quantity, time, position.position_id, signal.reason),
                    result,
                )
            return
        if self.wind_down is not None or self.halted is not None:
            reason = (f"winding down ({self.wind_down}): no new entries" if self.wind_down is not None
                      else f"halted: {self.halted}")
            result.events.append(
                self.sequence.event(EventType.SIGNAL_REJECTED, self.symbol, time, action=str(signal.action), reason=reason)
            )
            result.journal.append(JournalEntry(self.strategy_id, time, "risk", f"{signal.action} refused: {reason}"))
            return
        side = LONG if signal.action is ENTER_LONG else SHORT
        # Open positions, and entries waiting to open, less those waiting to close.
        waiting = self.exchange.waiting
        open_count = len(self.book.held)
        if waiting:
            open_count += sum(1 if o.intent is OPEN else -1 for o in waiting)
        try:
            equity = self.equity_at(candle.close)
            quantity = self.risk.entry_quantity(equity, candle.close, open_count)
            if self.risk.max_gross_exposure is not None:
                self.risk.check_exposure(equity, self._exposure(candle.close), quantity * candle.close)
            used = self.capital_used(candle.close)
            check_capital(quantity * candle.close, equity - used)
        except CapitalLimitHit as hit:
            result.events.append(
                self.sequence.event(
                    EventType.CAPITAL_LIMIT_HIT, self.symbol, time, action=str(signal.action),
                    needed=decimal_text(hit.needed), available=decimal_text(hit.available), used=decimal_text(used),
                    allocated=decimal_text(self.capital),
                )
            )
            result.journal.append(JournalEntry(self.strategy_id, time, "risk", f"{signal.action} blocked: {hit}"))
            return
        except RiskRejected as rejected:
            result.events.append(
                self.sequence.event(EventType.SIGNAL_REJECTED, self.symbol, time, action=str(signal.action), reason=str(rejected))
            )
            result.journal.append(JournalEntry(self.strategy_id, time, "risk", f"{signal.action} refused: {rejected}"))
            return
        self._submit(
            Order(order_id, self.strategy_id, self.symbol, OPEN, side, quantity, time, order_id, signal.reason),
            result,
        )

    def _submit(self, order: Order, result: CandleResult) -> None:
        self.exchange.submit(order)
        result.orders.append(order)
        verb, quantity, intent = ("buy" if order.is_buy else "sell"), decimal_text(order.quantity), str(order.intent)
        result.events.append(
            self.sequence.event(
                EventType.ORDER_CREATED, self.symbol, order.created_at,
                order_id=order.order_id, intent=intent, side=verb, quantity=quantity,
                position_id=order.position_id,
            )
        )
        result.journal.append(
            JournalEntry(self.strategy_id, order.created_at, "order",
                         f"Market {verb} {quantity} {self.symbol} to {intent} {order.position_side} "
                         f"at next open ({order.reason})")
        )

    def _apply_fill(self, fill: Fill, result: CandleResult) -> None:
        # The closes taken before this fill are priced with the book they were taken with.
        self._equity.settle()
        time = fill.time
        # As the events and the journal write them, worked out once.
        quantity, price, trigger = decimal_text(fill.quantity), decimal_text(fill.price), str(fill.trigger)
        result.fills.append(fill)
        result.events.append(
            self.sequence.event(
                EventType.ORDER_FILLED, self.symbol, time,
                order_id=fill.order_id, side="buy" if fill.is_buy else "sell", quantity=quantity,
                price=price, fee=decimal_text(fill.fee), trigger=trigger,
            )
        )
        if fill.intent is OPEN:
            stop, target = self.risk.protective_prices(fill.position_side, fill.price)
            change = self.book.open(
                fill.position_id, fill.symbol, fill.position_side, fill.quantity, fill.price, fill.fee, time, stop, target
            )
            side = str(fill.position_side)
            result.events.append(
                self.sequence.event(
                    EventType.POSITION_OPENED, self.symbol, time,
                    position_id=fill.position_id, side=side, quantity=quantity,
                    price=price, stop_price=decimal_text(stop), take_profit_price=decimal_text(target),
                )
            )
            message = f"Opened {side} {quantity} {self.symbol} at {price} (fee {fill.fee:.4f})"
        else:
            if fill.trigger is not MARKET:
                hit = EventType.STOP_LOSS_HIT if fill.trigger is FillTrigger.STOP_LOSS else EventType.TAKE_PROFIT_HIT
                result.events.append(
                    self.sequence.event(hit, self.symbol, time, position_id=fill.position_id, price=price)
                )
            change = self.book.reduce(fill.position_id, fill.quantity, fill.price, fill.fee, time)
            kind = EventType.POSITION_CLOSED if change.kind == "closed" else EventType.POSITION_REDUCED
            result.events.append(
                self.sequence.event(
                    kind, self.symbol, time,
                    position_id=fill.position_id, quantity=quantity, price=price,
                    realized_pnl=decimal_text(change.realized_pnl), trigger=trigger,
                )
            )
            message = (f"Closed {quantity} of {fill.position_side} {fill.position_id} at {price} "
                       f"({trigger}): P&L {change.realized_pnl:.2f} after fees")
        result.positions.append(change.position)
        result.journal.append(JournalEntry(self.strategy_id, time, "fill", message))
