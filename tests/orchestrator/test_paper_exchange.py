"""The paper exchange: market orders at the next open with slippage and fees, stops and targets intrabar."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from orchestrator.candles import Candle
from orchestrator.orders import FillTrigger, Order, OrderIntent
from orchestrator.paper_exchange import PaperExchange
from orchestrator.positions import Position, PositionBook, Side

D = Decimal
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
FEE_RATE = D("0.001")
SLIPPAGE = D("0.001")


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def make_candle(minute: int, open_: str, high: str, low: str, close: str, symbol: str = "BTC/USD") -> Candle:
    return Candle(symbol, "1m", at(minute), D(open_), D(high), D(low), D(close), D("1"))


def make_order(intent: OrderIntent, side: Side, quantity: str = "2", symbol: str = "BTC/USD", order_id: str = "o1") -> Order:
    return Order(order_id, "sma-1", symbol, intent, side, D(quantity), at(0), "p1", "test")


def open_position(side: Side, stop: str | None, target: str | None, symbol: str = "BTC/USD", position_id: str = "p1") -> Position:
    """A real position in a real book: 2 at 100, with the given protective levels."""
    book = PositionBook("sma-1")
    book.open(position_id, symbol, side, D("2"), D("100"), D("0.2"), at(0),
              None if stop is None else D(stop), None if target is None else D(target))
    return book.get(position_id)


@pytest.fixture
def exchange() -> PaperExchange:
    return PaperExchange(FEE_RATE, SLIPPAGE)


def test_a_market_buy_fills_at_the_next_candles_open_moved_up_by_slippage_and_pays_fee_on_its_notional(exchange):
    order = make_order(OrderIntent.OPEN, Side.LONG)
    exchange.submit(order)
    assert exchange.pending_orders == [order]

    [fill] = exchange.fill_market_orders(make_candle(1, "100", "101", "99", "100.5"))

    assert fill.price == D("100") * (1 + SLIPPAGE) == D("100.1")
    assert fill.fee == D("100.1") * D("2") * FEE_RATE == D("0.2002")
    assert fill.time == at(1)
    assert fill.trigger is FillTrigger.MARKET
    assert fill.is_buy
    assert (fill.order_id, fill.strategy_id, fill.symbol, fill.position_id) == ("o1", "sma-1", "BTC/USD", "p1")
    assert (fill.intent, fill.position_side, fill.quantity) == (OrderIntent.OPEN, Side.LONG, D("2"))
    assert exchange.pending_orders == []


@pytest.mark.parametrize(
    ("intent", "side", "is_buy"),
    [
        (OrderIntent.OPEN, Side.LONG, True),
        (OrderIntent.CLOSE, Side.SHORT, True),
        (OrderIntent.OPEN, Side.SHORT, False),
        (OrderIntent.CLOSE, Side.LONG, False),
    ],
)
def test_market_slippage_always_goes_against_the_trader(exchange, intent, side, is_buy):
    exchange.submit(make_order(intent, side))
    [fill] = exchange.fill_market_orders(make_candle(1, "100", "101", "99", "100"))
    assert fill.is_buy is is_buy
    assert fill.price == (D("100.1") if is_buy else D("99.9"))


def test_market_fill_price_is_kept_to_the_price_step_and_fee_to_the_money_step(exchange):
    exchange.submit(make_order(OrderIntent.OPEN, Side.LONG, quantity="0.03333333"))
    [fill] = exchange.fill_market_orders(make_candle(1, "123.456789", "124", "123", "123.5"))
    # 123.456789 * 1.001 = 123.580245789 -> eight decimals.
    assert fill.price == D("123.58024579")
    assert fill.fee == (D("123.58024579") * D("0.03333333") * FEE_RATE).quantize(D("1E-10"))


def test_an_order_for_another_symbol_stays_pending_until_its_own_candle(exchange):
    btc = make_order(OrderIntent.OPEN, Side.LONG, order_id="btc")
    eth = make_order(OrderIntent.OPEN, Side.LONG, symbol="ETH/USD", order_id="eth")
    exchange.submit(btc)
    exchange.submit(eth)

    fills = exchange.fill_market_orders(make_candle(1, "100", "101", "99", "100"))
    assert [fill.order_id for fill in fills] == ["btc"]
    assert exchange.pending_orders == [eth]

    [fill] = exchange.fill_market_orders(make_candle(2, "10", "11", "9", "10", symbol="ETH/USD"))
    assert (fill.order_id, fill.price) == ("eth", D("10.01"))
    assert exchange.pending_orders == []


def test_pending_orders_fill_in_the_order_they_were_submitted(exchange):
    exchange.submit(make_order(OrderIntent.CLOSE, Side.LONG, order_id="exit"))
    exchange.submit(make_order(OrderIntent.OPEN, Side.SHORT, order_id="entry"))
    fills = exchange.fill_market_orders(make_candle(1, "100", "101", "99", "100"))
    assert [fill.order_id for fill in fills] == ["exit", "entry"]


def test_pending_orders_is_a_copy_the_caller_cannot_change(exchange):
    exchange.submit(make_order(OrderIntent.OPEN, Side.LONG))
    exchange.pending_orders.clear()
    assert len(exchange.pending_orders) == 1


def test_an_exchange_built_with_pending_orders_fills_them_after_a_restart():
    order = make_order(OrderIntent.OPEN, Side.SHORT)
    restarted = PaperExchange(FEE_RATE, SLIPPAGE, [order])
    [fill] = restarted.fill_market_orders(make_candle(1, "200", "201", "199", "200"))
    assert (fill.order_id, fill.price) == ("o1", D("199.8"))


def test_long_stop_loss_triggers_when_the_low_reaches_the_stop_and_fills_at_the_stop_less_slippage(exchange):
    position = open_position(Side.LONG, stop="98", target="104")
    [fill] = exchange.protective_fills(make_candle(1, "99", "99.5", "97.5", "98.5"), [position])
    assert fill.trigger is FillTrigger.STOP_LOSS
    assert fill.price == D("98") * (1 - SLIPPAGE) == D("97.902")
    assert fill.fee == D("97.902") * D("2") * FEE_RATE
    assert not fill.is_buy
    assert (fill.order_id, fill.intent, fill.position_side, fill.position_id) == (
        "p1-stop_loss", OrderIntent.CLOSE, Side.LONG, "p1",
    )
    assert (fill.quantity, fill.time) == (D("2"), at(1))


def test_long_take_profit_triggers_when_the_high_reaches_the_target_and_fills_at_the_target_without_slippage(exchange):
    position = open_position(Side.LONG, stop="98", target="104")
    [fill] = exchange.protective_fills(make_candle(1, "101", "104.5", "100.5", "103"), [position])
    assert fill.trigger is FillTrigger.TAKE_PROFIT
    assert fill.price == D("104")
    assert fill.fee == D("0.208")
    assert fill.order_id == "p1-take_profit"


@pytest.mark.parametrize(
    ("side", "candle", "trigger", "price"),
    [
        (Side.LONG, ("99", "99.5", "98", "98.5"), FillTrigger.STOP_LOSS, "97.902"),
        (Side.LONG, ("101", "104", "100.5", "103"), FillTrigger.TAKE_PROFIT, "104"),
        (Side.SHORT, ("101", "102", "100.5", "101.5"), FillTrigger.STOP_LOSS, "102.102"),
        (Side.SHORT, ("99", "99.5", "96", "97"), FillTrigger.TAKE_PROFIT, "96"),
    ],
    ids=["long_low_touches_stop", "long_high_touches_target", "short_high_touches_stop", "short_low_touches_target"],
)
def test_a_level_exactly_touched_counts_as_reached(exchange, side, candle, trigger, price):
    stop, target = ("98", "104") if side is Side.LONG else ("102", "96")
    position = open_position(side, stop=stop, target=target)
    [fill] = exchange.protective_fills(make_candle(1, *candle), [position])
    assert (fill.trigger, fill.price) == (trigger, D(price))


def test_a_candle_that_stays_between_stop_and_target_closes_nothing(exchange):
    long = open_position(Side.LONG, stop="98", target="104")
    short = open_position(Side.SHORT, stop="102", target="96", position_id="p2")
    assert exchange.protective_fills(make_candle(1, "100", "101.99", "98.01", "101"), [long, short]) == []


def test_short_stop_loss_triggers_when_the_high_reaches_the_stop_and_fills_at_the_stop_plus_slippage(exchange):
    position = open_position(Side.SHORT, stop="102", target="96")
    [fill] = exchange.protective_fills(make_candle(1, "101", "102.5", "100.5", "102"), [position])
    assert fill.trigger is FillTrigger.STOP_LOSS
    assert fill.price == D("102") * (1 + SLIPPAGE) == D("102.102")
    assert fill.is_buy


def test_short_take_profit_triggers_when_the_low_reaches_the_target_and_fills_at_the_target(exchange):
    position = open_position(Side.SHORT, stop="102", target="96")
    [fill] = exchange.protective_fills(make_candle(1, "99", "99.5", "95.5", "97"), [position])
    assert fill.trigger is FillTrigger.TAKE_PROFIT
    assert fill.price == D("96")
    assert fill.is_buy


@pytest.mark.parametrize(
    ("side", "stop", "candle", "price"),
    [
        # Long, stop 98: the candle opens at 97, already through it; the fill is the open less slippage.
        (Side.LONG, "98", ("97", "97.5", "96", "97"), "96.903"),
        # Short, stop 102: the candle opens at 103; the fill is the open plus slippage.
        (Side.SHORT, "102", ("103", "104", "102.5", "103"), "103.103"),
    ],
)
def test_a_gap_through_the_stop_fills_at_the_open_which_is_worse_than_the_stop(exchange, side, stop, candle, price):
    position = open_position(side, stop=stop, target=None)
    [fill] = exchange.protective_fills(make_candle(1, *candle), [position])
    assert (fill.trigger, fill.price) == (FillTrigger.STOP_LOSS, D(price))
    at_stop = D(stop) * (1 - side.sign * SLIPPAGE)
    assert (fill.price - at_stop) * side.sign < 0


@pytest.mark.parametrize(
    ("side", "target", "candle", "price"),
    [
        (Side.LONG, "104", ("105", "106", "104.5", "105.5"), "105"),
        (Side.SHORT, "96", ("95", "95.5", "94", "94.5"), "95"),
    ],
)
def test_a_gap_through_the_target_fills_at_the_open_which_is_better_than_the_target(exchange, side, target, candle, price):
    position = open_position(side, stop=None, target=target)
    [fill] = exchange.protective_fills(make_candle(1, *candle), [position])
    assert (fill.trigger, fill.price) == (FillTrigger.TAKE_PROFIT, D(price))
    assert (fill.price - D(target)) * side.sign > 0


@pytest.mark.parametrize(
    ("side", "stop", "target", "price"),
    [(Side.LONG, "98", "104", "97.902"), (Side.SHORT, "102", "96", "102.102")],
)
def test_stop_loss_wins_when_stop_and_target_hit_in_same_candle(exchange, side, stop, target, price):
    position = open_position(side, stop=stop, target=target)
    wide = make_candle(1, "100", "105", "95", "100")
    [fill] = exchange.protective_fills(wide, [position])
    assert (fill.trigger, fill.price) == (FillTrigger.STOP_LOSS, D(price))


def test_a_position_without_stop_or_target_is_never_closed_by_the_exchange(exchange):
    position = open_position(Side.LONG, stop=None, target=None)
    assert exchange.protective_fills(make_candle(1, "100", "1000", "1", "100"), [position]) == []


def test_protective_levels_are_checked_only_against_candles_of_the_positions_symbol(exchange):
    eth = open_position(Side.LONG, stop="98", target="104", symbol="ETH/USD")
    assert exchange.protective_fills(make_candle(1, "100", "200", "50", "100"), [eth]) == []


def test_each_position_is_checked_on_its_own_levels(exchange):
    tight = open_position(Side.LONG, stop="99.5", target="100.1", position_id="tight")
    wide = open_position(Side.LONG, stop="90", target="110", position_id="wide")
    short = open_position(Side.SHORT, stop="101", target="99.8", position_id="short")
    fills = exchange.protective_fills(make_candle(1, "100", "100.2", "99.6", "100"), [tight, wide, short])
    # Range 99.6 to 100.2: tight's target 100.1 and short's target 99.8 are reached, nothing of wide.
    assert [(fill.position_id, fill.trigger, fill.price) for fill in fills] == [
        ("tight", FillTrigger.TAKE_PROFIT, D("100.1")),
        ("short", FillTrigger.TAKE_PROFIT, D("99.8")),
    ]


@pytest.mark.parametrize(
    ("side", "stop", "target", "candle", "price"),
    [
        # Opened above the long's target, then fell through its stop: the target was hit first, at the open.
        (Side.LONG, "95", "110", ("112", "113", "90", "91"), D("112")),
        (Side.SHORT, "105", "90", ("88", "110", "87", "109"), D("88")),
    ],
)
def test_a_candle_opening_beyond_the_target_takes_profit_at_the_open_even_if_it_later_reaches_the_stop(
    exchange, side, stop, target, candle, price
):
    position = open_position(side, stop, target)
    [fill] = exchange.protective_fills(make_candle(2, *candle), [position])
    assert fill.trigger is FillTrigger.TAKE_PROFIT
    assert fill.price == price


def test_a_market_order_never_fills_on_the_candle_that_created_it(exchange):
    order = make_order(OrderIntent.OPEN, Side.LONG)  # created at minute 0
    exchange.submit(order)

    assert exchange.fill_market_orders(make_candle(0, "100", "101", "99", "100")) == []
    assert exchange.pending_orders == [order]
    assert len(exchange.fill_market_orders(make_candle(1, "100", "101", "99", "100"))) == 1
