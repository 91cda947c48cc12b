"""A strategy's equity marks are exactly those of marking every close, though a quiet close is priced only when
something reads the marks: on real BTC candles, long and short, and on books holding both sides."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from orchestrator.datasets import load_candles
from orchestrator.engine import StrategyOrchestrator
from orchestrator.loss_limits import EquityMarks
from orchestrator.ports import MemoryPublisher, MemoryStore
from orchestrator.positions import PositionBook, Side
from orchestrator.strategy_equity import StrategyEquity
from strategies import build_strategy

CAPITAL = Decimal(10_000)
T0 = datetime(2022, 1, 3, tzinfo=timezone.utc)
MINUTE = timedelta(minutes=1)
CONFIGS = [
    ("sma_crossover", {"fast_period": 5, "slow_period": 20, "stop_loss_pct": None, "take_profit_pct": None}),
    ("sma_crossover", {"fast_period": 5, "slow_period": 20, "allow_short": True, "position_size": "1",
                       "stop_loss_pct": "0.004", "take_profit_pct": "0.006"}),
    ("rsi_mean_reversion", {"rsi_period": 7, "allow_short": True, "max_open_positions": 3}),
]


@pytest.fixture(scope="module")
def candles():
    return load_candles("BTC/USD", limit=5000)


def runner(name: str, config: dict, capital: Decimal = CAPITAL) -> StrategyOrchestrator:
    return StrategyOrchestrator("s", build_strategy(name, config), "BTC/USD", "1m", capital, MemoryStore(), MemoryPublisher())


def exactly(marks: EquityMarks) -> tuple[str, ...]:
    """The marks as their exact Decimals (trailing zeros included) and day."""
    return repr(marks.peak), repr(marks.day), repr(marks.day_start), repr(marks.last)


@pytest.mark.parametrize("capital", [CAPITAL, CAPITAL / 3], ids=["round capital", "capital of 28 digits"])
@pytest.mark.parametrize(("name", "config"), CONFIGS, ids=["long", "long and short with stops", "rsi"])
def test_marks_read_at_the_end_are_those_of_marking_every_close_by_hand(candles, name, config, capital):
    lazy, eager = runner(name, config, capital), runner(name, config, capital)
    by_hand = EquityMarks()
    for index, candle in enumerate(candles):
        lazy.process(candle)
        eager.process(candle)
        by_hand.mark(candle.time, eager.equity_at(candle.close), capital)
        if index % 97 == 0:
            assert exactly(lazy.marks) == exactly(by_hand)
            # Peaks measured afresh now and then (as after a resumed halt), so that each holding's best close counts.
            for marks in (lazy.marks, eager.marks, by_hand):
                marks.restart_from(eager.equity)
    assert exactly(lazy.marks) == exactly(by_hand)
    assert lazy.snapshot() == eager.snapshot()


@pytest.mark.parametrize(("name", "config"), CONFIGS, ids=["long", "long and short with stops", "rsi"])
def test_marks_read_now_and_then_are_those_read_after_every_candle(candles, name, config):
    sometimes, always = runner(name, config), runner(name, config)
    for index, candle in enumerate(candles):
        sometimes.process(candle)
        always.process(candle)
        assert always.marks.last == always.equity
        if index % 331 == 0:
            assert exactly(sometimes.marks) == exactly(always.marks)
    assert exactly(sometimes.marks) == exactly(always.marks)
    assert sometimes.equity == always.equity


def book_holding(*sides: Side) -> PositionBook:
    book = PositionBook("s")
    for index, side in enumerate(sides):
        book.open(f"p{index}", "BTC/USD", side, Decimal("0.1"), Decimal(100), Decimal("0.01"), T0)
    return book


def test_a_quiet_close_of_a_one_sided_book_waits_and_is_priced_when_the_marks_are_read():
    equity = StrategyEquity(CAPITAL, book_holding(Side.LONG))
    equity.mark(T0, Decimal(100), fresh=True)
    assert equity.defer(T0 + MINUTE, Decimal(120))
    assert equity.defer(T0 + 2 * MINUTE, Decimal(110))
    assert equity.marks.peak == equity.at(Decimal(120))
    assert equity.marks.last == equity.at(Decimal(110))


def test_a_short_books_peak_is_its_equity_at_the_lowest_close():
    equity = StrategyEquity(CAPITAL, book_holding(Side.SHORT))
    equity.mark(T0, Decimal(100), fresh=True)
    for minutes, close in enumerate([Decimal(90), Decimal(95), Decimal(80), Decimal(99)], 1):
        assert equity.defer(T0 + minutes * MINUTE, close)
    assert equity.marks.peak == equity.at(Decimal(80)) == CAPITAL + 2 - Decimal("0.01")


def test_a_book_holding_both_sides_is_marked_at_every_close():
    equity = StrategyEquity(CAPITAL, book_holding(Side.LONG, Side.SHORT))
    equity.mark(T0, Decimal(100), fresh=True)
    assert not equity.defer(T0 + MINUTE, Decimal(120))


def test_the_first_close_of_a_utc_day_is_marked_at_once():
    equity = StrategyEquity(CAPITAL, book_holding(Side.LONG))
    equity.mark(T0 + timedelta(hours=23, minutes=59), Decimal(100), fresh=True)
    assert not equity.defer(T0 + timedelta(days=1), Decimal(120))

