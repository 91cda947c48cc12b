"""Winding down on real BTC candles: a drained strategy opens nothing and manages its position exactly as it
would have; one told to close does so at the next open; a waiting entry is taken back."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orchestrator.datasets import load_candles
from orchestrator.engine import WindDown
from orchestrator.events import EventType
from orchestrator.orders import FillTrigger, OrderIntent
from orchestrator.positions import PRICE_STEP
from tests.orchestrator.test_engine import run, sma_orchestrator

CANDLES = 3000


@pytest.fixture(scope="module")
def candles():
    return load_candles("BTC/USD", limit=CANDLES)


@pytest.fixture(scope="module")
def straight(candles):
    """The uninterrupted run, stops and targets on, long and short."""
    return run(sma_orchestrator(settings="tight_stops"), candles)


def opened_at(straight, after: int) -> tuple[int, str]:
    """The first candle after `after` on which a position opened (it is open, nothing pending, once the
    candle is processed, unless a stop hit on the same candle), and the position's id."""
    for index, result in enumerate(straight.returned):
        if index <= after or result is None:
            continue
        opened = [e for e in result.events if e.type is EventType.POSITION_OPENED]
        closed = {e.payload["position_id"] for e in result.events if e.type is EventType.POSITION_CLOSED}
        if opened and opened[0].payload["position_id"] not in closed and not result.orders:
            return index, opened[0].payload["position_id"]
    raise AssertionError(f"no position opened after candle {after}")


def until(candles, index: int, wind_down: WindDown):
    """A fresh orchestrator that processed candles[: index + 1] and then began to wind down."""
    orchestrator = sma_orchestrator(settings="tight_stops")
    for candle in candles[: index + 1]:
        orchestrator.process(candle)
    orchestrator.wind_down = wind_down
    return orchestrator


def stored(returned) -> list:
    """The results among what `process` returned: those of the candles that produced something."""
    return [result for result in returned if result is not None]


def fills_of(results, position_id: str):
    return [(f.time, f.price, f.quantity, f.trigger) for r in results for f in r.fills if f.position_id == position_id]


@pytest.mark.parametrize("after", [300, 1200, 2100])
def test_a_draining_strategy_opens_nothing_and_exits_exactly_as_it_would_have(candles, straight, after):
    index, position_id = opened_at(straight, after)
    drained = until(candles, index, WindDown.DRAIN)
    assert len(drained.book) == 1 and not drained.is_flat

    later = stored(drained.process(candle) for candle in candles[index + 1:])

    assert fills_of(later, position_id) == fills_of(stored(straight.returned[index + 1:]), position_id)
    assert drained.is_flat
    assert not [e for r in later for e in r.events if e.type is EventType.POSITION_OPENED]
    refused = [e for r in later for e in r.events if e.type is EventType.SIGNAL_REJECTED]
    entries_later = [e for r in stored(straight.returned[index + 1:]) for e in r.events if e.type is EventType.POSITION_OPENED]
    assert entries_later and refused, "the straight run enters again: the drained one must refuse to"
    assert all(e.payload["reason"] == "winding down (drain): no new entries" for e in refused)
    assert all(e.payload["action"] in ("enter_long", "enter_short") for e in refused)


@pytest.mark.parametrize("after", [300, 1200, 2100])
def test_a_strategy_told_to_close_closes_at_the_next_open_and_then_opens_nothing(candles, straight, after):
    index, position_id = opened_at(straight, after)
    closing = until(candles, index, WindDown.CLOSE)
    position = closing.book.get(position_id)
    side, quantity = position.side, position.quantity
    following = candles[index + 1]

    result = closing.process(following)

    [fill] = result.fills
    slippage = closing.exchange.slippage
    expected = following.open * (1 - slippage if side.sign > 0 else 1 + slippage)
    assert (fill.position_id, fill.trigger, fill.time) == (position_id, FillTrigger.MARKET, following.time)
    assert fill.price == expected.quantize(PRICE_STEP)
    assert fill.quantity == quantity
    assert [o.intent for o in result.orders] == [OrderIntent.CLOSE]
    assert closing.is_flat
    rest = stored(closing.process(candle) for candle in candles[index + 2:])
    assert not [f for r in rest for f in r.fills]
    assert closing.equity_at(candles[-1].close) == closing.capital + closing.book.realized_pnl


def test_an_entry_waiting_for_the_open_is_taken_back_when_winding_down(candles, straight):
    index = next(i for i, r in enumerate(straight.returned)
                 if i > 500 and r and [o.intent for o in r.orders] == [OrderIntent.OPEN] and not r.positions)
    [entry] = straight.returned[index].orders
    drained = until(candles, index, WindDown.DRAIN)
    assert [o.order_id for o in drained.exchange.pending_orders] == [entry.order_id]

    result = drained.process(candles[index + 1])

    assert result.cancelled == [entry.order_id]
    assert not result.fills and not len(drained.book)
    cancelled = [e for e in result.events if e.type is EventType.ORDER_CANCELLED]
    assert [e.payload["order_id"] for e in cancelled] == [entry.order_id]
    assert drained.equity_at(candles[index + 1].close) == drained.capital + Decimal(drained.book.realized_pnl)
