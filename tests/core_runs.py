"""The reference a live-path test compares with: the same strategy run by the bare core engine."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from orchestrator.engine import StrategyOrchestrator
from orchestrator.ports import MemoryPublisher, MemoryStore
from strategies import build_strategy

TEN_PLACES = Decimal("1e-10")


def core_run(strategy, candles) -> tuple[MemoryStore, MemoryPublisher]:
    """Run a strategy row's config through the core, uninterrupted, with in-memory ports."""
    store, publisher = MemoryStore(), MemoryPublisher()
    orchestrator = StrategyOrchestrator(
        strategy.strategy_id, build_strategy(strategy.strategy_class, strategy.config), strategy.symbol,
        strategy.timeframe, strategy.capital, store, publisher,
    )
    for candle in candles:
        orchestrator.process(candle)
    return store, publisher


def money(value: Decimal | None) -> Decimal | None:
    """A core amount as the database keeps it: ten decimal places."""
    return None if value is None else value.quantize(TEN_PLACES, rounding=ROUND_HALF_UP)


def assert_exactly_the_core_run(strategy, candles: list) -> int:
    """The strategy's stored rows are the core engine's over `candles`, uninterrupted: no row twice, none
    missing, none out of order. Returns how many fills that is."""
    from tradeweb.desk import models

    store, publisher = core_run(strategy, candles)
    sid = strategy.strategy_id
    events = list(models.Event.objects.filter(strategy_id=sid).order_by("sequence").values_list("sequence", "type", "time", "payload"))
    assert [e[0] for e in events] == list(range(1, len(events) + 1)), f"{sid}: event numbers are not contiguous"
    assert events == [(e.sequence, str(e.type), e.time, e.payload) for e in publisher.events], sid
    orders = sorted(models.Order.objects.filter(strategy_id=sid).values_list(
        "order_id", "intent", "position_side", "position_id", "quantity", "reason", "created_at", "status"))
    filled = {f.order_id for r in store.results for f in r.fills}
    assert orders == sorted(
        (o.order_id, str(o.intent), str(o.position_side), o.position_id, money(o.quantity), o.reason, o.created_at,
         "filled" if o.order_id in filled else "pending")
        for r in store.results for o in r.orders
    ), sid
    assert list(models.Fill.objects.filter(strategy_id=sid).order_by("time", "id").values_list(
        "order_id", "side", "intent", "position_id", "price", "quantity", "fee", "trigger", "time")) == [
        (f.order_id, "buy" if f.is_buy else "sell", str(f.intent), f.position_id, money(f.price), money(f.quantity),
         money(f.fee), str(f.trigger), f.time)
        for r in store.results for f in r.fills
    ], sid
    assert list(models.JournalEntry.objects.filter(strategy_id=sid).order_by("id").values_list("time", "kind", "message", "data")) == [
        (j.time, j.kind, j.message, j.data) for r in store.results for j in r.journal
    ], sid
    final = {p.position_id: p for r in store.results for p in r.positions}
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
    strategy.refresh_from_db()
    assert strategy.last_sequence == len(events)
    assert strategy.last_candle_time == (candles[-1].time if candles else None)
    if store.results:
        assert strategy.equity == money(store.results[-1].equity)
    return len(filled)


def assert_desk_equals_the_core(strategies: list, candles: dict[tuple[str, str], list]) -> None:
    """Every market's candles stored once, and every strategy exactly its core run over its market's."""
    from tradeweb.desk import models

    for market, market_candles in candles.items():
        stored = list(models.Candle.objects.filter(symbol=market[0], timeframe=market[1]).order_by("time").values_list("time", flat=True))
        assert stored == [c.time for c in market_candles], f"{market}: every candle stored once"
    fills = {s.strategy_id: assert_exactly_the_core_run(s, candles[(s.symbol, s.timeframe)]) for s in strategies}
    assert min(fills.values()) >= 4, f"every strategy must trade for the comparison to mean anything: {fills}"
