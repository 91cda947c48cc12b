"""The orchestrator driven by real candles and real strategies: no look-ahead, exact books, idempotent, isolated, restartable."""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

import pytest

from orchestrator.candles import Candle
from orchestrator.config import StrategyConfig, parse_config
from orchestrator.datasets import load_candles
from orchestrator.engine import OrchestratorState, StrategyOrchestrator
from orchestrator.events import Event, EventType, decimal_text
from orchestrator.indicators import RSI
from orchestrator.orders import FillTrigger, OrderIntent
from orchestrator.ports import CandleResult, MemoryPublisher, MemoryStore
from orchestrator.positions import MONEY_STEP, PRICE_STEP, Side
from orchestrator.risk import QUANTITY_STEP
from orchestrator.strategy import Signal, SignalAction
from strategies import RsiMeanReversion, RsiMeanReversionConfig, SmaCrossover, SmaCrossoverConfig

D = Decimal
CAPITAL = D("10000")
SMA_SETTINGS = {
    "long_only": {"fast_period": 5, "slow_period": 20},
    "long_and_short": {"fast_period": 5, "slow_period": 20, "allow_short": True},
    # Stops and targets close enough to be hit on one-minute BTC candles.
    "tight_stops": {"fast_period": 5, "slow_period": 20, "allow_short": True, "stop_loss_pct": "0.002", "take_profit_pct": "0.003"},
}


def sma_orchestrator(
    strategy_id: str = "sma-btc",
    settings: str = "long_only",
    store: MemoryStore | None = None,
    publisher: MemoryPublisher | None = None,
    state: OrchestratorState | None = None,
) -> StrategyOrchestrator:
    strategy = SmaCrossover(parse_config(SmaCrossoverConfig, SMA_SETTINGS[settings]))
    return StrategyOrchestrator(
        strategy_id, strategy, "BTC/USD", "1m", CAPITAL, store or MemoryStore(), publisher or MemoryPublisher(), state
    )


@dataclass
class Run:
    """An orchestrator after it processed `candles`, with what it stored and published."""

    orchestrator: StrategyOrchestrator
    candles: list[Candle]
    returned: list[CandleResult | None]

    @property
    def results(self) -> list[CandleResult]:
        return self.orchestrator.store.results

    @property
    def events(self) -> list[Event]:
        return [event for result in self.results for event in result.events]


def run(orchestrator: StrategyOrchestrator, candles: list[Candle]) -> Run:
    return Run(orchestrator, candles, [orchestrator.process(candle) for candle in candles])


@pytest.fixture(scope="module")
def btc_candles() -> list[Candle]:
    return load_candles("BTC/USD", limit=3000)


@pytest.fixture(scope="module")
def gbp_candles() -> list[Candle]:
    return load_candles("GBP/USD", limit=3000)


@pytest.fixture(scope="module")
def btc_runs(btc_candles) -> dict[str, Run]:
    """One full run per SMA setting; tests only read these."""
    return {name: run(sma_orchestrator(settings=name), btc_candles) for name in SMA_SETTINGS}


def slipped(price: Decimal, is_buy: bool, slippage: Decimal) -> Decimal:
    return (price * (1 + slippage) if is_buy else price * (1 - slippage)).quantize(PRICE_STEP)


def assert_market_fills_use_only_the_next_candles_open(result_run: Run) -> int:
    """Every market fill is at the open of the candle after its order's, slipped against the trader; returns their count."""
    config = result_run.orchestrator.strategy.config
    index_of = {candle.time: index for index, candle in enumerate(result_run.candles)}
    orders = {order.order_id: order for result in result_run.results for order in result.orders}
    filled = set()
    for result in result_run.results:
        for fill in result.fills:
            if fill.trigger is not FillTrigger.MARKET:
                continue
            order = orders[fill.order_id]
            assert fill.time > order.created_at
            assert index_of[fill.time] == index_of[order.created_at] + 1
            candle = result_run.candles[index_of[fill.time]]
            assert fill.price == slipped(candle.open, fill.is_buy, config.slippage)
            assert fill.fee == (fill.price * fill.quantity * config.fee_rate).quantize(MONEY_STEP)
            assert (fill.quantity, fill.intent, fill.position_side, fill.position_id) == (
                order.quantity, order.intent, order.position_side, order.position_id,
            )
            assert fill.order_id not in filled
            filled.add(fill.order_id)
    still_pending = {order.order_id for order in result_run.orchestrator.exchange.pending_orders}
    assert filled | still_pending == set(orders)
    return len(filled)


@pytest.mark.parametrize("settings", SMA_SETTINGS)
def test_sma_crossover_trades_on_real_btc_candles_and_stores_a_result_only_for_a_candle_that_produced_something(
    btc_runs, settings
):
    result_run = btc_runs[settings]
    assert len(result_run.returned) == len(result_run.candles) == 3000
    assert [r for r in result_run.returned if r is not None] == result_run.results
    assert 50 < len(result_run.results) < 3000 / 2
    assert all(result.events for result in result_run.results)
    assert [result.candle for result in result_run.results] == [
        candle for candle, returned in zip(result_run.candles, result_run.returned) if returned is not None
    ]
    kinds = Counter(event.type for event in result_run.events)
    assert kinds[EventType.POSITION_OPENED] > 50
    assert kinds[EventType.POSITION_CLOSED] >= kinds[EventType.POSITION_OPENED] - 1
    assert kinds[EventType.DATA_REJECTED] == 0


@pytest.mark.parametrize("settings", SMA_SETTINGS)
def test_market_fills_happen_at_the_next_candles_open_with_slippage_against_the_trader(btc_runs, settings):
    assert assert_market_fills_use_only_the_next_candles_open(btc_runs[settings]) > 100


def test_shorts_are_opened_only_when_the_config_allows_them(btc_runs):
    def opened_sides(name: str) -> set[str]:
        return {e.payload["side"] for e in btc_runs[name].events if e.type is EventType.POSITION_OPENED}

    assert opened_sides("long_only") == {"long"}
    assert opened_sides("long_and_short") == {"long", "short"}


def test_stops_and_targets_fill_only_at_levels_the_candle_reached(btc_runs):
    result_run = btc_runs["tight_stops"]
    slippage = result_run.orchestrator.strategy.config.slippage
    opened = {
        e.payload["position_id"]: e for e in result_run.events if e.type is EventType.POSITION_OPENED
    }
    triggers = Counter()
    for result in result_run.results:
        candle = result.candle
        for fill in result.fills:
            if fill.trigger is FillTrigger.MARKET:
                continue
            triggers[fill.trigger] += 1
            position = opened[fill.position_id]
            assert position.time <= fill.time
            side = Side(position.payload["side"])
            if fill.trigger is FillTrigger.STOP_LOSS:
                stop = D(position.payload["stop_price"])
                assert (candle.low <= stop) if side is Side.LONG else (candle.high >= stop)
                worst_first = min(stop, candle.open) if side is Side.LONG else max(stop, candle.open)
                assert fill.price == slipped(worst_first, fill.is_buy, slippage)
            else:
                target = D(position.payload["take_profit_price"])
                assert (candle.high >= target) if side is Side.LONG else (candle.low <= target)
                # A limit fill is a price the candle traded.
                assert candle.low <= fill.price <= candle.high
    assert triggers[FillTrigger.STOP_LOSS] > 0 and triggers[FillTrigger.TAKE_PROFIT] > 0


def test_stop_and_target_are_set_from_the_entry_fill_price(btc_runs):
    result_run = btc_runs["tight_stops"]
    config = result_run.orchestrator.strategy.config
    opened = [e for e in result_run.events if e.type is EventType.POSITION_OPENED]
    assert opened
    for event in opened:
        price, sign = D(event.payload["price"]), Side(event.payload["side"]).sign
        assert D(event.payload["stop_price"]) == (price * (1 - sign * config.stop_loss_pct)).quantize(PRICE_STEP)
        assert D(event.payload["take_profit_price"]) == (price * (1 + sign * config.take_profit_pct)).quantize(PRICE_STEP)


@pytest.mark.parametrize("settings", SMA_SETTINGS)
def test_each_entry_is_sized_at_the_configured_share_of_equity_at_the_signal_candles_close(btc_runs, settings):
    result_run = btc_runs[settings]
    position_size = result_run.orchestrator.strategy.config.position_size
    sizes = set()
    for result in result_run.results:
        for order in result.orders:
            if order.intent is OrderIntent.OPEN:
                # Orders only wait for the next candle, so the equity after this candle is the equity at the signal.
                expected = (result.equity * position_size / result.candle.close).quantize(QUANTITY_STEP, rounding=ROUND_DOWN)
                assert order.quantity == expected
                sizes.add(order.quantity)
    assert len(sizes) > 10


@pytest.mark.parametrize("settings", SMA_SETTINGS)
def test_the_head_after_the_last_candle_is_capital_plus_realized_plus_unrealized_at_the_last_close(btc_runs, settings):
    result_run = btc_runs[settings]
    orchestrator = result_run.orchestrator
    book = orchestrator.book
    close = result_run.candles[-1].close
    unrealized = sum(
        ((close - p.entry_price) * p.quantity * p.side.sign - p.entry_fee for p in book.open_positions()), D(0)
    )
    head = orchestrator.head()
    assert (head["last_candle_time"], head["last_close"]) == (result_run.candles[-1].time, close)
    assert (head["realized_pnl"], head["unrealized_pnl"]) == (book.realized_pnl, unrealized)
    assert head["equity"] == orchestrator.equity == CAPITAL + book.realized_pnl + unrealized
    assert head["last_sequence"] == result_run.events[-1].sequence
    for result in result_run.results:
        assert result.equity == CAPITAL + result.realized_pnl + result.unrealized_pnl


def test_a_stored_result_is_marked_to_its_own_candles_close(btc_runs):
    result_run = btc_runs["tight_stops"]
    replay = sma_orchestrator(settings="tight_stops")
    stored = 0
    for candle, returned in zip(result_run.candles, result_run.returned):
        replay.process(candle)
        if returned is not None:
            assert (returned.equity, returned.unrealized_pnl) == (replay.equity, replay.head()["unrealized_pnl"])
            stored += 1
    assert stored == len(result_run.results)


def test_a_position_still_open_at_the_end_shows_in_unrealized_pnl(btc_runs):
    result_run = btc_runs["long_and_short"]
    assert len(result_run.orchestrator.book) == 1
    assert result_run.orchestrator.head()["unrealized_pnl"] != 0


@pytest.mark.parametrize("settings", SMA_SETTINGS)
def test_book_realized_pnl_is_the_sum_over_closed_positions_each_worked_out_from_its_fills(btc_runs, settings):
    result_run = btc_runs[settings]
    fills = {}
    for result in result_run.results:
        for fill in result.fills:
            fills.setdefault(fill.position_id, []).append(fill)
    closed = [p for result in result_run.results for p in result.positions if p.closed_at is not None]
    assert len(closed) == len({p.position_id for p in closed}) > 50
    for position in closed:
        entry, exit_ = fills[position.position_id]
        assert (entry.intent, exit_.intent) == (OrderIntent.OPEN, OrderIntent.CLOSE)
        gross = ((exit_.price - entry.price) * entry.quantity * position.side.sign).quantize(MONEY_STEP)
        assert position.realized_pnl == gross - entry.fee - exit_.fee
        assert position.fees == entry.fee + exit_.fee
    assert result_run.orchestrator.book.realized_pnl == sum((p.realized_pnl for p in closed), D(0))
    assert result_run.orchestrator.book.realized_pnl != 0


@pytest.mark.parametrize("settings", SMA_SETTINGS)
def test_every_event_carries_the_strategy_id_and_sequences_run_from_one_without_gaps(btc_runs, settings):
    result_run = btc_runs[settings]
    events = result_run.events
    assert {event.strategy_id for event in events} == {"sma-btc"}
    assert {event.symbol for event in events} == {"BTC/USD"}
    assert [event.sequence for event in events] == list(range(1, len(events) + 1))
    assert result_run.orchestrator.sequence.last == len(events)
    for result in result_run.results:
        assert result.strategy_id == "sma-btc"
        assert all(event.time == result.time for event in result.events)
        assert all(order.strategy_id == "sma-btc" for order in result.orders)
        assert all(fill.strategy_id == "sma-btc" for fill in result.fills)
        assert all(position.strategy_id == "sma-btc" for position in result.positions)
        assert all(entry.strategy_id == "sma-btc" for entry in result.journal)


@pytest.mark.parametrize("settings", SMA_SETTINGS)
def test_every_event_published_equals_the_events_stored_in_order(btc_runs, settings):
    result_run = btc_runs[settings]
    assert result_run.orchestrator.publisher.events == result_run.events


def first_index_with_an_order(result_run: Run, intent: OrderIntent, after: int) -> int:
    """Index of the first candle after `after` whose processing created an order with `intent`."""
    for index, result in enumerate(result_run.returned):
        if index > after and result is not None and any(order.intent is intent for order in result.orders):
            return index
    raise AssertionError(f"no {intent} order after candle {after}")


@dataclass(frozen=True)
class Snapshot:
    results: int
    published: int
    sequence: int
    last_candle_time: object
    realized_pnl: Decimal
    positions: tuple
    pending: tuple


def snapshot(orchestrator: StrategyOrchestrator) -> Snapshot:
    return Snapshot(
        len(orchestrator.store.results),
        len(orchestrator.publisher.events),
        orchestrator.sequence.last,
        orchestrator.last_candle_time,
        orchestrator.book.realized_pnl,
        tuple(p.snapshot() for p in orchestrator.book.open_positions()),
        tuple(orchestrator.exchange.pending_orders),
    )


@pytest.fixture
def mid_trade(btc_runs, btc_candles) -> tuple[StrategyOrchestrator, int]:
    """A fresh orchestrator stopped right after a candle that created an exit: a position open and an order pending."""
    index = first_index_with_an_order(btc_runs["long_only"], OrderIntent.CLOSE, after=200)
    orchestrator = sma_orchestrator()
    for candle in btc_candles[: index + 1]:
        orchestrator.process(candle)
    assert len(orchestrator.book) == 1 and len(orchestrator.exchange.pending_orders) == 1
    return orchestrator, index


@pytest.mark.parametrize("variant", ["identical", "corrected_prices"])
def test_processing_the_same_candle_twice_returns_none_and_changes_nothing(mid_trade, btc_candles, variant):
    orchestrator, index = mid_trade
    before = snapshot(orchestrator)
    again = btc_candles[index]
    if variant == "corrected_prices":
        again = dataclasses.replace(again, open=again.open * 2, high=again.high * 2, low=again.low * 2, close=again.close * 2)
    assert orchestrator.process(again) is None
    # The pending exit in particular must not fill on a replay of the candle that created it.
    assert snapshot(orchestrator) == before


def test_an_older_candle_is_rejected_with_exactly_one_data_rejected_event_and_no_trade(mid_trade, btc_candles):
    orchestrator, index = mid_trade
    before = snapshot(orchestrator)
    older, last = btc_candles[index - 50], btc_candles[index]

    result = orchestrator.process(older)

    assert result is orchestrator.store.results[-1]
    assert result.candle is None
    assert (result.orders, result.fills, result.positions) == ([], [], [])
    [event] = result.events
    assert event.type is EventType.DATA_REJECTED
    assert (event.strategy_id, event.sequence, event.time) == ("sma-btc", before.sequence + 1, older.time)
    assert older.time.isoformat() in event.payload["reason"]
    assert last.time.isoformat() in event.payload["reason"]
    assert orchestrator.publisher.events[-1] == event
    assert result.equity == orchestrator.equity_at(orchestrator.last_close)
    after = snapshot(orchestrator)
    assert (after.results, after.published, after.sequence) == (before.results + 1, before.published + 1, before.sequence + 1)
    assert (after.last_candle_time, after.realized_pnl, after.positions, after.pending) == (
        before.last_candle_time, before.realized_pnl, before.positions, before.pending,
    )


def test_after_a_rejection_the_next_candle_trades_as_if_nothing_happened(btc_runs, mid_trade, btc_candles):
    orchestrator, index = mid_trade
    orchestrator.process(btc_candles[index - 1])
    result = orchestrator.process(btc_candles[index + 1])
    reference = btc_runs["long_only"].returned[index + 1]
    assert result.fills == reference.fills
    assert result.positions == reference.positions
    # Same events, numbered one later because of the rejection.
    assert [dataclasses.replace(e, sequence=e.sequence - 1) for e in result.events] == reference.events


@pytest.mark.parametrize(
    ("symbol", "timeframe"), [("ETH/USD", "1m"), ("BTC/USD", "5m")], ids=["other_symbol", "other_timeframe"]
)
def test_a_candle_for_another_market_is_rejected_and_does_not_advance_time(mid_trade, btc_candles, symbol, timeframe):
    orchestrator, index = mid_trade
    before = snapshot(orchestrator)
    stranger = dataclasses.replace(btc_candles[index + 1], symbol=symbol, timeframe=timeframe)

    result = orchestrator.process(stranger)

    [event] = result.events
    assert event.type is EventType.DATA_REJECTED
    assert event.payload["reason"] == f"{symbol} {timeframe} candle sent to a strategy trading BTC/USD 1m"
    assert (result.orders, result.fills) == ([], [])
    after = snapshot(orchestrator)
    assert (after.last_candle_time, after.positions, after.pending) == (before.last_candle_time, before.positions, before.pending)
    # The real next candle is still new and fills the pending exit.
    assert [fill.intent for fill in orchestrator.process(btc_candles[index + 1]).fills] == [OrderIntent.CLOSE]


def test_a_rejection_before_any_candle_reports_the_untouched_capital():
    orchestrator = sma_orchestrator()
    candle = load_candles("GBP/USD", limit=1)[0]
    result = orchestrator.process(candle)
    assert (result.equity, result.realized_pnl, result.unrealized_pnl) == (CAPITAL, D(0), D(0))
    assert [event.sequence for event in result.events] == [1]


def test_two_strategies_sharing_a_store_and_publisher_keep_separate_books_and_events(btc_runs, btc_candles):
    store, publisher = MemoryStore(), MemoryPublisher()
    first = sma_orchestrator("sma-a", "long_only", store, publisher)
    second = sma_orchestrator("sma-b", "tight_stops", store, publisher)
    for candle in btc_candles:
        first.process(candle)
        second.process(candle)
    # A bad candle for one of them is that one's business only.
    first.process(btc_candles[0])

    assert first.book is not second.book
    assert all(p.position_id.startswith("sma-a-") for p in first.book.open_positions())
    assert all(p.position_id.startswith("sma-b-") for p in second.book.open_positions())
    for orchestrator, alone_settings in ((first, "long_only"), (second, "tight_stops")):
        strategy_id = orchestrator.strategy_id
        mine = [result for result in store.results if result.strategy_id == strategy_id]
        events = [event for event in publisher.events if event.strategy_id == strategy_id]
        assert [event.sequence for event in events] == list(range(1, len(events) + 1))
        assert events == [event for result in mine for event in result.events]
        # Exactly what the strategy does when it runs alone.
        alone = run(sma_orchestrator(strategy_id, alone_settings), btc_candles)
        expected = len(alone.results) + (1 if orchestrator is first else 0)
        assert len(mine) == expected
        assert mine[: len(alone.results)] == alone.results
        assert orchestrator.book.realized_pnl == alone.orchestrator.book.realized_pnl
        assert orchestrator.sequence.last == len(events)
    assert first.book.realized_pnl != second.book.realized_pnl


def restarted_from(original: StrategyOrchestrator, settings: str, seen: list[Candle]) -> StrategyOrchestrator:
    """A new orchestrator built only from what storage would hold for `original`, warmed up on the candles seen."""
    state = OrchestratorState(
        last_candle_time=original.last_candle_time,
        last_sequence=original.sequence.last,
        realized_pnl=original.book.realized_pnl,
        open_positions=[position.snapshot() for position in original.book.open_positions()],
        pending_orders=original.exchange.pending_orders,
    )
    restarted = sma_orchestrator(original.strategy_id, settings, state=state)
    restarted.warm_up(seen)
    return restarted


@pytest.mark.parametrize("settings", ["long_and_short", "tight_stops"])
@pytest.mark.parametrize("split", ["halfway", "with_an_exit_pending"])
def test_an_orchestrator_restarted_from_stored_state_carries_on_identically(btc_runs, btc_candles, settings, split):
    if split == "halfway":
        stop = len(btc_candles) // 2
    else:
        stop = first_index_with_an_order(btc_runs[settings], OrderIntent.CLOSE, after=len(btc_candles) // 2) + 1
    first_half, second_half = btc_candles[:stop], btc_candles[stop:]
    original = sma_orchestrator(settings=settings)
    for candle in first_half:
        original.process(candle)
    if split == "with_an_exit_pending":
        assert len(original.book) >= 1
        assert any(order.intent is OrderIntent.CLOSE for order in original.exchange.pending_orders)
    published_before = len(original.publisher.events)

    restarted = restarted_from(original, settings, first_half)
    continued = [original.process(candle) for candle in second_half]
    resumed = [restarted.process(candle) for candle in second_half]

    assert resumed == continued
    assert sum(len(result.fills) for result in resumed if result is not None) > 50
    assert restarted.publisher.events == original.publisher.events[published_before:]
    assert restarted.sequence.last == original.sequence.last
    assert restarted.book.realized_pnl == original.book.realized_pnl


def test_warm_up_stops_at_the_last_processed_candle(btc_candles):
    original = sma_orchestrator(settings="long_and_short")
    for candle in btc_candles[:1000]:
        original.process(candle)
    given_everything = restarted_from(original, "long_and_short", btc_candles)
    given_what_was_seen = restarted_from(original, "long_and_short", btc_candles[:1000])
    assert given_everything.last_close == btc_candles[999].close
    assert given_everything.indicators.values == given_what_was_seen.indicators.values
    rest = btc_candles[1000:]
    assert [given_everything.process(c) for c in rest] == [given_what_was_seen.process(c) for c in rest]


def test_warm_up_never_trades(btc_candles):
    original = sma_orchestrator()
    for candle in btc_candles[:1000]:
        original.process(candle)
    restarted = restarted_from(original, "long_only", btc_candles[:1000])
    assert restarted.store.results == []
    assert restarted.publisher.events == []
    assert restarted.exchange.pending_orders == original.exchange.pending_orders


def test_a_fresh_orchestrator_counts_its_warm_up_candles_as_seen(btc_candles):
    warmed = sma_orchestrator()
    warmed.warm_up(btc_candles[:100])

    assert warmed.last_candle_time == btc_candles[99].time
    assert warmed.process(btc_candles[99]) is None
    assert warmed.store.results == []
    fed = sma_orchestrator()
    for candle in btc_candles[:100]:
        fed.process(candle)
    assert warmed.indicators.values == fed.indicators.values


@pytest.fixture(scope="module")
def gbp_run(gbp_candles) -> Run:
    strategy = RsiMeanReversion(parse_config(RsiMeanReversionConfig, {}))
    orchestrator = StrategyOrchestrator(
        "rsi-gbp", strategy, "GBP/USD", "1m", CAPITAL, MemoryStore(), MemoryPublisher()
    )
    return run(orchestrator, gbp_candles)


def test_rsi_strategy_enters_below_oversold_and_exits_above_the_exit_level_on_real_gbp_candles(gbp_run, gbp_candles):
    rsi = RSI(14)
    held = 0
    entries = exits = 0
    for candle, result in zip(gbp_candles, gbp_run.returned):
        value = rsi.update(candle)
        events = result.events if result is not None else []
        # Fills at this candle's open (and stops within it) happen before the strategy looks at it.
        for event in events:
            if event.type is EventType.POSITION_OPENED:
                held += 1
            elif event.type is EventType.POSITION_CLOSED:
                held -= 1
        signals = [
            (event.payload["action"], event.payload["reason"])
            for event in events
            if event.type is EventType.SIGNAL_GENERATED
        ]
        if value is None:
            expected = []
        elif held and value > 50:
            expected = [("exit", f"RSI {value:.1f} recovered above 50")]
        elif not held and value < 30:
            expected = [("enter_long", f"RSI {value:.1f} is below 30 (oversold)")]
        else:
            expected = []
        assert signals == expected, candle.time
        entries += sum(1 for action, _ in signals if action == "enter_long")
        exits += sum(1 for action, _ in signals if action == "exit")
    assert entries > 10 and exits > 10


def test_rsi_strategy_on_real_gbp_candles_fills_without_look_ahead(gbp_run):
    assert assert_market_fills_use_only_the_next_candles_open(gbp_run) > 20
    assert [event.sequence for event in gbp_run.events] == list(range(1, len(gbp_run.events) + 1))
    assert gbp_run.orchestrator.publisher.events == gbp_run.events


class ScriptedStrategy:
    """A real strategy whose signals are written out per candle: it takes engine paths the shipped ones rarely do."""

    name = "scripted"
    config_class = StrategyConfig

    def __init__(self, config: StrategyConfig, script: dict[int, list[Signal]]) -> None:
        self.config = config
        self.script = script
        self.candles_seen = 0

    def indicators(self):
        return ()

    def on_candle(self, candle, indicators, positions):
        self.candles_seen += 1
        return self.script.get(self.candles_seen - 1, ())


def scripted_run(btc_candles, script: dict[int, list[Signal]], candles: int = 6, **settings) -> Run:
    strategy = ScriptedStrategy(parse_config(StrategyConfig, settings), script)
    orchestrator = StrategyOrchestrator("scripted", strategy, "BTC/USD", "1m", CAPITAL, MemoryStore(), MemoryPublisher())
    return run(orchestrator, btc_candles[:candles])


ENTER = Signal(SignalAction.ENTER_LONG, "scripted entry")
EXIT = Signal(SignalAction.EXIT, "scripted exit")


def test_an_entry_beyond_the_maximum_of_open_positions_is_refused_with_a_signal_rejected_event(btc_candles):
    result_run = scripted_run(btc_candles, {0: [ENTER, ENTER], 2: [ENTER]}, max_open_positions=1)
    first, _, third = result_run.returned[:3]
    assert [e.type for e in first.events] == [
        EventType.SIGNAL_GENERATED, EventType.ORDER_CREATED, EventType.SIGNAL_GENERATED, EventType.SIGNAL_REJECTED,
    ]
    assert first.events[-1].payload == {
        "action": "enter_long", "reason": "1 of at most 1 positions already open or pending",
    }
    assert len(first.orders) == 1
    # Once the first entry has filled, the open position counts against the limit too.
    assert third.events[-1].type is EventType.SIGNAL_REJECTED
    assert third.orders == []
    assert len(result_run.orchestrator.book) == 1
    assert [j.kind for j in first.journal] == ["signal", "order", "signal", "risk"]


def test_a_pending_exit_frees_its_slot_for_an_entry_on_the_same_candle(btc_candles):
    result_run = scripted_run(btc_candles, {0: [ENTER], 2: [EXIT, ENTER]}, max_open_positions=1)
    assert [order.intent for order in result_run.returned[2].orders] == [OrderIntent.CLOSE, OrderIntent.OPEN]
    fills = result_run.returned[3].fills
    assert [fill.intent for fill in fills] == [OrderIntent.CLOSE, OrderIntent.OPEN]
    assert len(result_run.orchestrator.book) == 1


def capital_hits(result_run: Run) -> list:
    return [e for result in result_run.results for e in result.events if e.type is EventType.CAPITAL_LIMIT_HIT]


def test_an_entry_needing_more_than_the_available_capital_is_blocked_with_capital_limit_hit(btc_candles):
    result_run = scripted_run(btc_candles, {0: [ENTER], 2: [ENTER]}, position_size="0.6", max_open_positions=2, stop_loss_pct=None, take_profit_pct=None)
    orchestrator, third = result_run.orchestrator, result_run.returned[2]
    [held] = orchestrator.book.open_positions()
    close = btc_candles[2].close
    equity = CAPITAL + orchestrator.book.realized_pnl + held.unrealized_pnl(close)
    needed = (equity * D("0.6") / close).quantize(QUANTITY_STEP, rounding=ROUND_DOWN) * close
    used = held.quantity * held.entry_price

    [hit] = capital_hits(result_run)
    assert [e.type for e in third.events] == [EventType.SIGNAL_GENERATED, EventType.CAPITAL_LIMIT_HIT]
    assert hit.payload == {
        "action": "enter_long", "needed": decimal_text(needed), "available": decimal_text(equity - used),
        "used": decimal_text(used), "allocated": decimal_text(CAPITAL),
    }
    assert needed > equity - used > 0
    assert third.orders == [] and len(orchestrator.book) == 1
    assert third.journal[-1].kind == "risk" and "blocked: needs" in third.journal[-1].message


def test_an_entry_waiting_for_the_open_holds_capital_for_the_next_one(btc_candles):
    result_run = scripted_run(btc_candles, {0: [ENTER, ENTER]}, position_size="0.6", max_open_positions=2)
    first = result_run.returned[0]
    assert [e.type for e in first.events] == [
        EventType.SIGNAL_GENERATED, EventType.ORDER_CREATED, EventType.SIGNAL_GENERATED, EventType.CAPITAL_LIMIT_HIT,
    ]
    [pending] = first.orders
    assert first.events[-1].payload["used"] == decimal_text(pending.quantity * btc_candles[0].close)


def test_capital_comes_back_with_the_pnl_when_a_position_closes(btc_candles):
    """All in, out, and all in again: the second entry has the whole equity (the capital and the first trade's
    P&L); an exit waiting for the open releases the position's capital to an entry on the same candle."""
    result_run = scripted_run(
        btc_candles, {0: [ENTER], 2: [EXIT], 4: [ENTER], 6: [EXIT, ENTER]}, candles=8, position_size="1",
        stop_loss_pct=None, take_profit_pct=None,
    )
    orchestrator = result_run.orchestrator
    assert capital_hits(result_run) == []
    second = result_run.returned[4].orders[-1]
    assert second.intent is OrderIntent.OPEN
    equity_at_second = CAPITAL + result_run.returned[4].realized_pnl
    assert second.quantity == (equity_at_second / btc_candles[4].close).quantize(QUANTITY_STEP, rounding=ROUND_DOWN)
    assert result_run.returned[4].realized_pnl != 0
    assert [o.intent for o in result_run.returned[6].orders] == [OrderIntent.CLOSE, OrderIntent.OPEN]
    assert len(orchestrator.book) == 1


def test_a_second_exit_on_the_same_candle_sends_no_second_close_order(btc_candles):
    result_run = scripted_run(btc_candles, {0: [ENTER], 2: [EXIT, EXIT]})
    assert [order.intent for order in result_run.returned[2].orders] == [OrderIntent.CLOSE]
    assert [fill.intent for fill in result_run.returned[3].fills] == [OrderIntent.CLOSE]
    assert len(result_run.orchestrator.book) == 0


def test_an_exit_with_nothing_open_sends_no_order(btc_candles):
    result_run = scripted_run(btc_candles, {1: [EXIT]})
    assert [e.type for e in result_run.returned[1].events] == [EventType.SIGNAL_GENERATED]
    assert all(result.orders == [] and result.fills == [] for result in result_run.results)


def test_an_order_created_on_the_last_candle_waits_for_the_next_one(btc_candles):
    result_run = scripted_run(btc_candles, {5: [ENTER]}, candles=6)
    assert len(result_run.returned[5].orders) == 1
    assert all(result.fills == [] for result in result_run.results)
    [pending] = result_run.orchestrator.exchange.pending_orders
    [fill] = result_run.orchestrator.process(btc_candles[6]).fills
    assert fill.order_id == pending.order_id
    assert fill.price == slipped(btc_candles[6].open, True, result_run.orchestrator.strategy.config.slippage)


def test_an_orchestrator_computes_only_the_indicators_its_strategy_declares():
    sma = sma_orchestrator()
    rsi = StrategyOrchestrator(
        "rsi-gbp", RsiMeanReversion(parse_config(RsiMeanReversionConfig, {"rsi_period": 9})), "GBP/USD", "1m",
        CAPITAL, MemoryStore(), MemoryPublisher(),
    )
    assert sma.indicators.keys == tuple(spec.key for spec in sma.strategy.indicators())
    assert set(sma.indicators.keys) == {"sma_5", "sma_20"}
    assert rsi.indicators.keys == ("rsi_9",)
