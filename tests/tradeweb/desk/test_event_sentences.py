"""The feed's sentences on the events the engine and the desk really emit: each type reads as a sentence with
its numbers formatted for people, belongs to its kind, and an event the feed cannot word still shows."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orchestrator.backtest import Allocation, BacktestSpec, run_backtest
from orchestrator.config import StrategyConfig, parse_config
from orchestrator.datasets import load_candles
from orchestrator.engine import StrategyOrchestrator, WindDown
from orchestrator.events import EventType
from orchestrator.ports import MemoryPublisher, MemoryStore
from orchestrator.strategy import Signal, SignalAction
from strategies import build_strategy
from tradeweb.desk import config_history, live, models
from tradeweb.desk.control import set_active
from tradeweb.desk.event_sentences import (
    KIND_OF_TYPE, KINDS, OTHER_KIND, fallback, kind_of, money, price, quantity, sentence, signed_money,
)
from tradeweb.desk.strategy_events import mark_failed

CAPITAL = Decimal(10_000)
# Tight stops and targets on the shipped BTC/USD minutes: both are hit, on both sides.
SMA = {"fast_period": 5, "slow_period": 20, "allow_short": True, "stop_loss_pct": "0.002", "take_profit_pct": "0.003"}
ENTER = Signal(SignalAction.ENTER_LONG, "scripted entry")
EXIT = Signal(SignalAction.EXIT, "scripted exit")
ACCOUNT_HALT = "account paper: loss 3.10% since the UTC day began is over the limit of 3.00%"


class ScriptedStrategy:
    """A real strategy whose signals are written out per candle, to take the engine down its rarer paths
    (capital blocked, an account halt with an entry waiting, a wind-down)."""

    name = "scripted"
    config_class = StrategyConfig

    def __init__(self, config: StrategyConfig, script: dict[int, list[Signal]]) -> None:
        self.config = config
        self.script = script
        self.seen = 0

    def indicators(self):
        return ()

    def on_candle(self, candle, indicators, positions):
        self.seen += 1
        return self.script.get(self.seen - 1, ())

    def state(self) -> dict:
        return {}

    def restore(self, state: dict) -> None:
        """Nothing to restore: the script is all it knows."""


def core(strategy, strategy_id: str = "btc") -> StrategyOrchestrator:
    return StrategyOrchestrator(strategy_id, strategy, "BTC/USD", "1m", CAPITAL, MemoryStore(), MemoryPublisher())


@pytest.fixture(scope="module")
def candles():
    return load_candles("BTC/USD", limit=1500)


@pytest.fixture(scope="module")
def engine_events(candles) -> list[dict]:
    """Wire mappings of the events two core runs emit: an SMA crossover trading 1,500 real minutes, and a
    scripted strategy blocked by its capital, halted by its account with an entry waiting, refused while
    halted, resumed, told of a gap, and wound down until flat."""
    traded = core(build_strategy("sma_crossover", SMA))
    for candle in candles:
        traded.process(candle)

    script = {0: [ENTER], 2: [ENTER], 3: [EXIT], 5: [ENTER], 6: [ENTER], 8: [ENTER], 10: [EXIT]}
    config = parse_config(StrategyConfig, {"position_size": "0.6", "max_open_positions": 2,
                                           "stop_loss_pct": None, "take_profit_pct": None})
    scripted = core(ScriptedStrategy(config, script), "scripted")
    for candle in candles[:6]:
        scripted.process(candle)
    assert scripted.halt(ACCOUNT_HALT, candles[5].time) is not None
    scripted.process(candles[6])
    assert scripted.resume(candles[6].time, "trader") is not None
    scripted.report_gap(candles[8].time, 3)
    for candle in candles[7:10]:
        scripted.process(candle)
    scripted.wind_down = WindDown.DRAIN
    for candle in candles[10:12]:
        scripted.process(candle)
    assert scripted.is_flat
    scripted.finish_wind_down()
    scripted.reject(candles[12].time, "high 1 is below open 47,000")
    return [e.to_mapping() for e in traded.publisher.events + scripted.publisher.events]


@pytest.fixture(scope="module")
def conflict_events() -> list[dict]:
    """CONFLICT_DETECTED events of a backtest in which two SMA crossovers hold opposite sides of BTC/USD."""
    both_ways = [
        Allocation("fast", build_strategy("sma_crossover", {"allow_short": True}), "BTC/USD", "1m", Decimal("0.4")),
        Allocation("slow", build_strategy("sma_crossover", {"fast_period": 12, "slow_period": 40, "allow_short": True}),
                   "BTC/USD", "1m", Decimal("0.4")),
    ]
    result = run_backtest(BacktestSpec(both_ways, CAPITAL), {("BTC/USD", "1m"): load_candles("BTC/USD", limit=3000)})
    return [e.to_mapping() for e in result.conflicts]


def of_type(events: list[dict], type: EventType) -> list[dict]:
    found = [e for e in events if e["type"] == type]
    assert found, f"the runs emitted no {type}"
    return found


def test_prices_quantities_and_money_are_formatted_for_people():
    assert price("47082.4099") == "47,082.41"
    assert price("1.572340") == "1.57234"
    assert price("0.00001234") == "0.00001234"
    assert price("100") == "100.00"
    assert quantity("0.02116074") == "0.0212"
    assert quantity("6361.5234") == "6,362"
    assert quantity("1.50") == "1.5"
    assert money("0.3984278185") == "0.40"
    assert money("1234567.891") == "1,234,567.89"
    assert signed_money("8.455") == "+8.46"
    assert signed_money("-5") == "-5.00"
    assert signed_money("0") == "0.00"


def test_the_readme_fill_reads_as_the_issue_asks():
    event = {"type": "ORDER_FILLED", "strategy_id": "btc-sma-cross", "symbol": "BTC/USD",
             "time": "2022-01-01T06:49:00+00:00", "sequence": 117,
             "payload": {"order_id": "btc-sma-cross-20220101064800-0-0", "side": "buy", "quantity": "0.02116074",
                         "price": "47082.4099", "fee": "0.3984278185", "trigger": "market"}}

    line = sentence(event)

    assert line.text == "Bought 0.0212 BTC/USD at 47,082.41, fee 0.40"
    assert (line.kind, line.when, line.tone) == ("order", "2022-01-01 06:49:00", "")


def test_every_event_type_belongs_to_exactly_one_kind():
    assert set(KIND_OF_TYPE) == {str(t) for t in EventType}
    assert sum(len(types) for _, types in KINDS.values()) == len(EventType)
    assert kind_of("SOMETHING_NEW") == OTHER_KIND


@pytest.mark.django_db
def test_every_type_the_engine_and_desk_emit_reads_as_its_own_sentence(engine_events, conflict_events, desk_events):
    events = engine_events + conflict_events + desk_events
    # Closes are for a position's whole quantity today, so no run reduces one.
    assert {e["type"] for e in events} == {str(t) for t in EventType} - {EventType.POSITION_REDUCED}
    for event in events:
        text = sentence(event).text
        assert text != fallback(event), event
        assert "None" not in text and "=" not in text, text


FORMATS = {
    EventType.SIGNAL_GENERATED: lambda p: f"Signal to {p['action'].replace('_', ' ')} at {price(p['close'])}: {p['reason']}",
    EventType.SIGNAL_REJECTED: lambda p: f"Refused to {p['action'].replace('_', ' ')}: {p['reason']}",
    EventType.CAPITAL_LIMIT_HIT: lambda p: (
        f"Not enough capital to enter long: needs {money(p['needed'])}, {money(p['available'])} available "
        f"({money(p['used'])} in use of {money(p['allocated'])})"
    ),
    EventType.ORDER_CREATED: lambda p: (
        f"Order to {p['side']} {quantity(p['quantity'])} BTC/USD at the next open, to {p['intent']} a position"
    ),
    EventType.ORDER_FILLED: lambda p: (
        f"{'Bought' if p['side'] == 'buy' else 'Sold'} {quantity(p['quantity'])} BTC/USD at {price(p['price'])}, "
        f"fee {money(p['fee'])}" + {"market": "", "stop_loss": " (stop-loss)", "take_profit": " (take-profit)"}[p["trigger"]]
    ),
    EventType.ORDER_CANCELLED: lambda p: f"Order cancelled: halted: {ACCOUNT_HALT}",
    EventType.POSITION_OPENED: lambda p: (
        f"Opened {p['side']} {quantity(p['quantity'])} BTC/USD at {price(p['price'])}"
        + (f", stop-loss {price(p['stop_price'])}, take-profit {price(p['take_profit_price'])}" if p["stop_price"] else "")
    ),
    EventType.POSITION_CLOSED: lambda p: (
        f"Closed {quantity(p['quantity'])} BTC/USD at {price(p['price'])}, P&L {signed_money(p['realized_pnl'])}"
        + {"market": "", "stop_loss": " (stop-loss)", "take_profit": " (take-profit)"}[p["trigger"]]
    ),
    EventType.STOP_LOSS_HIT: lambda p: f"Stop-loss hit at {price(p['price'])}",
    EventType.TAKE_PROFIT_HIT: lambda p: f"Take-profit hit at {price(p['price'])}",
    EventType.RISK_HALTED: lambda p: f"Halted, no new entries: {ACCOUNT_HALT}; equity {money(p['equity'])}",
    EventType.RISK_RESUMED: lambda p: f"Resumed by trader after: {ACCOUNT_HALT}",
    EventType.DATA_GAP: lambda p: (
        f"Missing the BTC/USD candle after {p['expected_after'][:10]} {p['expected_after'][11:19]}: "
        "3 later candles wait for it"
    ),
    EventType.DATA_REJECTED: lambda p: "Rejected a candle of BTC/USD: high 1 is below open 47,000",
    EventType.STRATEGY_DEACTIVATED: lambda p: "Flat after winding down (drain): now dormant",
    EventType.CONFLICT_DETECTED: lambda p: f"Both sides held on BTC/USD: long {p['long'][0]}; short {p['short'][0]}",
}


@pytest.mark.parametrize("type", list(FORMATS), ids=str)
def test_each_engine_event_reads_with_its_figures(engine_events, conflict_events, type):
    for event in of_type(engine_events + conflict_events, type):
        assert sentence(event).text == FORMATS[type](event["payload"]), event
        assert sentence(event).kind == kind_of(type)


def test_a_closed_position_is_toned_by_its_profit_or_loss(engine_events):
    closed = of_type(engine_events, EventType.POSITION_CLOSED)
    gains = [e for e in closed if Decimal(e["payload"]["realized_pnl"]) > 0]
    losses = [e for e in closed if Decimal(e["payload"]["realized_pnl"]) < 0]

    assert gains and losses
    assert {sentence(e).tone for e in gains} == {"gain"}
    assert {sentence(e).tone for e in losses} == {"loss"}
    assert "P&L +" in sentence(gains[0]).text and "P&L -" in sentence(losses[0]).text
    assert {sentence(e).tone for e in of_type(engine_events, EventType.STOP_LOSS_HIT)} == {"loss"}


@pytest.fixture
def desk_events(make_strategy, make_user, redis_url) -> list[dict]:
    """Stored events of the desk's own paths: switches (off, on, out of an exclusive slot, off while holding),
    a failure, a saved config and rejected candles (of a traded market and of one nobody trades)."""
    alpha, beta = make_strategy("alpha"), make_strategy("beta", status="dormant")
    holder = make_strategy("holder", symbol="GBP/USD", strategy_class="rsi_mean_reversion")
    trader = make_user("trader", can_control=True)
    set_active("alpha", trader, False)
    set_active("alpha", trader, True)
    models.Slot.objects.filter(symbol="BTC/USD").update(exclusive=True)
    set_active("beta", trader, True)
    candle = load_candles("GBP/USD", limit=1)[0]
    models.Position.objects.create(
        strategy=holder, position_id="holder-1", symbol="GBP/USD", side="long", quantity=Decimal(1000),
        initial_quantity=Decimal(1000), entry_price=candle.open, entry_fee=Decimal(0), opened_at=candle.time,
    )
    set_active("holder", trader, False)
    mark_failed("beta", candle.time, ZeroDivisionError("division by zero"))
    alpha.refresh_from_db()
    alpha.config = alpha.config | {"fast_period": 8}
    config_history.save_settings(alpha, trader, ["config"])
    for symbol in ("GBP/USD", "ETH/USD"):
        live.ingest_candle(candle.to_mapping() | {"symbol": symbol, "high": "0.5"})
    return [row.to_mapping() for row in models.Event.objects.order_by("id")]


@pytest.mark.django_db
def test_the_desk_events_read_as_who_did_what(desk_events):
    said = [(e["strategy_id"], sentence(e).text, sentence(e).kind) for e in desk_events]

    assert said[:4] == [
        ("alpha", "Deactivated by trader, now dormant", "control"),
        ("alpha", "Activated by trader (was dormant)", "control"),
        ("alpha", "Switched out for beta by trader, now dormant", "control"),
        ("beta", "Activated by trader (was dormant)", "control"),
    ]
    assert said[4] == ("holder", "Deactivated by trader, draining: exits still managed until flat", "control")
    assert said[5] == ("beta", "Stopped on an error: ZeroDivisionError: division by zero", "error")
    assert said[6] == ("alpha", "trader saved config version 2: fast_period 5 → 8", "control")
    assert said[7][0] == "holder" and said[7][1].startswith("Rejected a candle of GBP/USD: ") and said[7][2] == "data"
    assert said[8][0] == "" and said[8][1].startswith("Rejected a candle of ETH/USD 1m: ") and said[8][2] == "data"
    assert len(said) == 9
    assert sentence(desk_events[5]).tone == "loss"


def test_an_unknown_type_still_shows_its_type_and_payload():
    line = sentence({"type": "MARGIN_CALL", "strategy_id": "alpha", "symbol": "BTC/USD",
                     "time": "2022-01-01T00:00:00+00:00", "sequence": 3, "payload": {"level": "0.8", "note": None}})

    assert (line.kind, line.text, line.tone) == (OTHER_KIND, "Margin call: level=0.8", "")


def test_a_payload_missing_what_its_sentence_needs_falls_back_to_its_keys(engine_events):
    filled = dict(of_type(engine_events, EventType.ORDER_FILLED)[0])
    filled["payload"] = {k: v for k, v in filled["payload"].items() if k != "price"}

    line = sentence(filled)

    assert line.kind == "order"
    assert line.text.startswith("Order filled: order_id=") and "fee=" in line.text
    assert sentence(filled | {"payload": {"price": "NaN", "side": "buy", "quantity": "1", "fee": "0"}}).text.startswith("Order filled")
    assert sentence(filled | {"payload": "not a mapping"}).text == "Order filled"
    assert sentence({"type": "DATA_GAP", "time": "whenever", "payload": {}}).when == "whenever"


def test_a_gap_is_dated_by_the_first_candle_waiting_in_utc(engine_events, candles):
    [gap] = of_type(engine_events, EventType.DATA_GAP)

    assert gap["payload"]["expected_after"] == candles[6].time.isoformat()
    assert sentence(gap).when == candles[8].time.strftime("%Y-%m-%d %H:%M:%S")
    assert f"after {candles[6].time:%Y-%m-%d %H:%M:%S}:" in sentence(gap).text
