"""The reference a live-path test compares with: the same strategy run by the bare core engine."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from orchestrator.candles import Candle
from orchestrator.engine import OrchestratorState, StrategyOrchestrator, WindDown
from orchestrator.events import EventType
from orchestrator.orders import OrderIntent
from orchestrator.ports import MemoryPublisher, MemoryStore
from strategies import build_strategy

TEN_PLACES = Decimal("1e-10")


def core_run(strategy, candles) -> tuple[MemoryStore, MemoryPublisher]:
    """Run a strategy row's config through the core, uninterrupted, with in-memory ports."""
    reference = ReferenceRun(strategy).take(candles)
    return reference.store, reference.publisher


def money(value: Decimal | None) -> Decimal | None:
    """A core amount as the database keeps it: ten decimal places."""
    return None if value is None else value.quantize(TEN_PLACES, rounding=ROUND_HALF_UP)


class ReferenceRun:
    """One strategy as the desk must run it, replayed by the bare core engine with in-memory ports: the
    candles of its market in order, and what happened to it between them (a user switched it on or off or
    resumed it after a risk halt; its code failed). `assert_stored` compares the desk's rows with it."""

    def __init__(self, strategy, active: bool = True) -> None:
        self.strategy = strategy
        self.status = "active" if active else "dormant"
        self.config, self.version = dict(strategy.config), strategy.config_version
        self.store, self.publisher = MemoryStore(), MemoryPublisher()
        self.orchestrator = self._orchestrator(OrchestratorState())
        self.market: list[Candle] = []  # every candle of its market so far, taken or not
        # Events the desk stores outside candles, by sequence: (type, time, payload); a time of None is the
        # wall time of a user's action, which the comparison passes over.
        self.outside: dict[int, tuple[str, datetime | None, dict]] = {}

    def _orchestrator(self, state: OrchestratorState) -> StrategyOrchestrator:
        s = self.strategy
        return StrategyOrchestrator(
            s.strategy_id, build_strategy(s.strategy_class, self.config), s.symbol, s.timeframe, s.capital,
            self.store, self.publisher, state,
        )

    def take(self, candles) -> ReferenceRun:
        """The next candles of its market: an active or draining strategy processes them; one that drains
        goes dormant on the candle that leaves it flat."""
        for candle in candles:
            self.market.append(candle)
            if self.status not in ("active", "draining"):
                continue
            self.orchestrator.process(candle)
            if self.status == "draining" and self.orchestrator.is_flat:
                self.orchestrator.finish_wind_down()
                self.status = "dormant"
        return self

    def switched_off(self, user: str, wind_down: str = "drain", switched_for: str = "") -> ReferenceRun:
        """A user switched it off (or another in for it, in an exclusive slot): it drains what it holds, or is
        dormant at once."""
        entries = [o.order_id for o in self.orchestrator.exchange.pending_orders if o.intent is OrderIntent.OPEN]
        assert not entries, f"switched off with entries waiting ({entries}): choose another moment"
        previous = self.status
        self.status = "draining" if len(self.orchestrator.book) else "dormant"
        payload = {"user": user, "previous_status": previous, "status": self.status}
        if self.status == "draining":
            payload["wind_down"] = wind_down
            self.orchestrator.wind_down = WindDown(wind_down)
        if switched_for:
            payload["switched_for"] = switched_for
        self._outside(EventType.STRATEGY_DEACTIVATED, None, payload)
        return self

    def switched_on(self, user: str) -> ReferenceRun:
        """A user switched it on: a draining one trades again where it is; a dormant one starts at the
        market's newest candle, its indicators warmed up on the stored ones, and does not trade those; its
        risk marks and halt stay."""
        from django.conf import settings

        previous, self.status = self.status, "active"
        self._outside(EventType.STRATEGY_ACTIVATED, None, {"user": user, "previous_status": previous, "status": "active"})
        if previous in ("active", "draining"):
            self.orchestrator.wind_down = None
            return self
        old, newest = self.orchestrator, self.market[-1].time if self.market else None
        if newest is not None and (old.last_candle_time is None or newest > old.last_candle_time):
            self.orchestrator = self._orchestrator(OrchestratorState(
                last_candle_time=newest, last_sequence=old.sequence.last, realized_pnl=old.book.realized_pnl,
                open_positions=old.book.open_positions(), pending_orders=old.exchange.pending_orders,
            ))
            self.orchestrator.warm_up(self.market[-settings.WARM_UP_CANDLES:])
            # Its risk state goes on: a halted strategy switched off and on again is still halted.
            self.orchestrator.marks, self.orchestrator.halted = old.marks, old.halted
        return self

    def reconfigured(self, user: str, config: dict, changes: dict) -> ReferenceRun:
        """A user saved a new config (a CONFIG_CHANGED event): from its next candle it runs under it, rebuilt
        from its snapshot (unchanged indicators exactly, the others warmed up on the stored candles)."""
        from django.conf import settings

        old = self.orchestrator
        self.version += 1
        self._outside(EventType.CONFIG_CHANGED, None, {"user": user, "version": self.version, "changes": changes})
        self.config = config
        self.orchestrator = self._orchestrator(OrchestratorState(
            last_candle_time=old.last_candle_time, last_sequence=old.sequence.last, realized_pnl=old.book.realized_pnl,
            open_positions=old.book.open_positions(), pending_orders=old.exchange.pending_orders,
        ))
        assert self.orchestrator.restore(json.loads(json.dumps(old.snapshot())), lambda: self.market[-settings.WARM_UP_CANDLES:])
        self.orchestrator.wind_down = old.wind_down
        return self

    def resumed(self, time: datetime, user: str) -> ReferenceRun:
        """A user lifted its risk halt at `time`."""
        assert self.orchestrator.resume(time, user) is not None, f"{self.strategy.strategy_id} was not halted"
        return self

    def failed(self, time: datetime, error: str) -> ReferenceRun:
        """Its code raised `error` on the candle at `time`: it is in error and takes no more candles."""
        self.status = "error"
        self._outside(EventType.STRATEGY_ERROR, time, {"error": error})
        return self

    def _outside(self, type: EventType, time: datetime | None, payload: dict) -> None:
        self.orchestrator.sequence.last += 1
        self.outside[self.orchestrator.sequence.last] = (str(type), time, payload)

    def assert_stored(self) -> int:
        """The strategy's stored rows are exactly this run's: no row twice, none missing, none out of order,
        its events numbered from 1 without a gap. Returns how many fills that is."""
        from tradeweb.desk import models

        sid, results = self.strategy.strategy_id, self.store.results
        events = list(models.Event.objects.filter(strategy_id=sid).order_by("sequence").values_list("sequence", "type", "time", "payload"))
        assert [e[0] for e in events] == list(range(1, len(events) + 1)), f"{sid}: event numbers are not contiguous"
        expected = {e.sequence: (str(e.type), e.time, e.payload) for e in self.publisher.events} | self.outside
        wall_time = {sequence for sequence, (_, time, _) in self.outside.items() if time is None}
        assert [(number, type, None if number in wall_time else time, payload) for number, type, time, payload in events] == [
            (number, *expected[number]) for number in sorted(expected)
        ], sid
        filled = {f.order_id for r in results for f in r.fills}
        cancelled = {order_id for r in results for order_id in r.cancelled}
        orders = sorted(models.Order.objects.filter(strategy_id=sid).values_list(
            "order_id", "intent", "position_side", "position_id", "quantity", "reason", "created_at", "status"))
        assert orders == sorted(
            (o.order_id, str(o.intent), str(o.position_side), o.position_id, money(o.quantity), o.reason, o.created_at,
             "filled" if o.order_id in filled else "cancelled" if o.order_id in cancelled else "pending")
            for r in results for o in r.orders
        ), sid
        assert list(models.Fill.objects.filter(strategy_id=sid).order_by("time", "id").values_list(
            "order_id", "side", "intent", "position_id", "price", "quantity", "fee", "trigger", "time")) == [
            (f.order_id, "buy" if f.is_buy else "sell", str(f.intent), f.position_id, money(f.price), money(f.quantity),
             money(f.fee), str(f.trigger), f.time)
            for r in results for f in r.fills
        ], sid
        assert list(models.JournalEntry.objects.filter(strategy_id=sid).order_by("id").values_list("time", "kind", "message", "data")) == [
            (j.time, j.kind, j.message, j.data) for r in results for j in r.journal
        ], sid
        final = {p.position_id: p for r in results for p in r.positions}
        assert {
            p.position_id: (p.side, p.quantity, p.initial_quantity, p.entry_price, p.entry_fee, p.stop_price,
                            p.take_profit_price, p.realized_pnl, p.fees, p.exit_value, p.opened_at, p.closed_at)
            for p in models.Position.objects.filter(strategy_id=sid)
        } == {
            pid: (str(p.side), money(p.quantity), money(p.initial_quantity), money(p.entry_price), money(p.entry_fee),
                  money(p.stop_price), money(p.take_profit_price), money(p.realized_pnl), money(p.fees),
                  money(p.exit_value), p.opened_at, p.closed_at)
            for pid, p in final.items()
        }, sid
        row = models.Strategy.objects.get(strategy_id=sid)
        assert (row.status, row.last_sequence, row.last_candle_time) == (
            self.status, len(events), self.orchestrator.last_candle_time), sid
        if results or self.orchestrator.last_candle_time is not None:
            # A quiet candle stores no result: the row shows the orchestrator's head after its last candle.
            head = self.orchestrator.head()
            assert (row.equity, row.realized_pnl, row.unrealized_pnl) == (
                money(head["equity"]), money(head["realized_pnl"]), money(head["unrealized_pnl"])), sid
        return len(filled)


def assert_exactly_the_core_run(strategy, candles: list) -> int:
    """The strategy's stored rows are the core engine's over `candles`, uninterrupted: no row twice, none
    missing, none out of order. Returns how many fills that is."""
    return ReferenceRun(strategy).take(candles).assert_stored()


def assert_desk_equals_the_core(strategies: list, candles: dict[tuple[str, str], list]) -> None:
    """Every market's candles stored once, and every strategy exactly its core run over its market's."""
    from tradeweb.desk import models

    for market, market_candles in candles.items():
        stored = list(models.Candle.objects.filter(symbol=market[0], timeframe=market[1]).order_by("time").values_list("time", flat=True))
        assert stored == [c.time for c in market_candles], f"{market}: every candle stored once"
    fills = {s.strategy_id: assert_exactly_the_core_run(s, candles[(s.symbol, s.timeframe)]) for s in strategies}
    assert min(fills.values()) >= 4, f"every strategy must trade for the comparison to mean anything: {fills}"
