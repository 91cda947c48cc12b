"""Portfolio backtests on the live engine: candles merged in the order they close, no look-ahead, weights as
scaled capital, and invalid input refused before any candle."""

from __future__ import annotations

import gc
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from orchestrator import backtest
from orchestrator.backtest import Allocation, BacktestSpec, InvalidBacktest, merged, run_backtest
from orchestrator.candles import TIMEFRAMES
from orchestrator.datasets import load_candles
from strategies import build_strategy

CAPITAL = Decimal(10_000)
SMA = {"fast_period": 5, "slow_period": 20, "allow_short": True, "position_size": "1"}
RSI = {"rsi_period": 7}


@pytest.fixture(scope="module")
def streams():
    return {("BTC/USD", "1m"): load_candles("BTC/USD", "1m", limit=3000),
            ("BTC/USD", "5m"): load_candles("BTC/USD", "5m", limit=600)}


def allocations(weights=(Decimal("0.5"), Decimal("0.3"))) -> list[Allocation]:
    return [
        Allocation("sma-1m", build_strategy("sma_crossover", SMA), "BTC/USD", "1m", weights[0]),
        Allocation("rsi-5m", build_strategy("rsi_mean_reversion", RSI), "BTC/USD", "5m", weights[1]),
    ]


def decisions(result, until=None) -> dict[str, list]:
    return {
        sid: [(e.sequence, e.type, e.time, e.payload) for e in run.publisher.events if until is None or e.time <= until]
        for sid, run in result.runs.items()
    }


def test_candles_come_in_the_order_they_close(streams):
    order = list(merged(streams, None, None))[:300]

    closes = [c.time + TIMEFRAMES[c.timeframe] for c in order]
    assert closes == sorted(closes)
    fives = [index for index, candle in enumerate(order) if candle.timeframe == "5m"]
    assert len(fives) >= 50
    # A 5m candle is seen once closed: after the 1m candle that closes with it.
    assert all(order[i - 1].timeframe == "1m" and closes[i - 1] == closes[i] for i in fives)


def test_nothing_a_strategy_decides_up_to_a_moment_depends_on_a_candle_after_it(streams):
    spec = BacktestSpec(allocations(), CAPITAL)
    straight = run_backtest(spec, streams)
    cut = streams[("BTC/USD", "1m")][1500].time
    altered = {market: [c if c.time <= cut else replace(c, open=c.open * 2, high=c.high * 2, low=c.low * 2, close=c.close * 2)
                        for c in candles] for market, candles in streams.items()}

    other = run_backtest(BacktestSpec(allocations(), CAPITAL), altered)

    assert decisions(other, until=cut) == decisions(straight, until=cut)
    assert all(len(events) > 10 for events in decisions(straight, until=cut).values())
    assert decisions(other) != decisions(straight), "the candles after it were changed enough to matter"


def test_a_weighted_run_equals_separate_runs_with_scaled_capital(streams):
    together = run_backtest(BacktestSpec(allocations(), CAPITAL), streams)
    alone = {
        a.strategy_id: run_backtest(BacktestSpec([replace(a, weight=Decimal(1))], CAPITAL * a.weight), streams)
        for a in allocations()
    }

    for sid, result in alone.items():
        assert decisions(together)[sid] == decisions(result)[sid]
        assert together.runs[sid].equity == result.runs[sid].equity
        assert len(together.runs[sid].trades()) >= 3
    assert together.cash == Decimal(2000)
    last = {sid: result.runs[sid].equity[-1][1] for sid, result in alone.items()}
    assert together.equity[-1][1] == Decimal(2000) + sum(last.values())
    metrics = together.metrics()
    assert set(metrics) == {"sma-1m", "rsi-5m", "portfolio"}
    assert metrics["portfolio"].trades == sum(metrics[sid].trades for sid in alone)


@pytest.mark.parametrize("change, field", [
    (dict(capital=Decimal(0)), "capital"),
    (dict(allocations=allocations((Decimal("0.7"), Decimal("0.5")))), "weights"),
    (dict(allocations=allocations((Decimal(0), Decimal("0.5")))), "allocations[0].weight"),
    (dict(allocations=[]), "allocations"),
])
def test_invalid_input_fails_before_any_candle_naming_the_field(streams, change, field):
    seen = []
    spec = replace(BacktestSpec(allocations(), CAPITAL), **change)

    with pytest.raises(InvalidBacktest) as invalid:
        run_backtest(spec, streams, progress=seen.append)

    assert field in invalid.value.errors and not seen


def test_a_period_that_ends_before_it_starts_or_data_that_is_missing_is_refused(streams):
    one = streams[("BTC/USD", "1m")]
    with pytest.raises(InvalidBacktest) as invalid:
        run_backtest(BacktestSpec(allocations(), CAPITAL, start=one[10].time, end=one[5].time), streams)
    assert "period" in invalid.value.errors
    with pytest.raises(InvalidBacktest) as invalid:
        run_backtest(BacktestSpec(allocations(), CAPITAL), {("BTC/USD", "1m"): one})
    assert invalid.value.errors == {"data": "no candles for BTC/USD 5m"}


def test_strategies_holding_opposite_sides_of_one_symbol_are_reported_as_the_conflict_begins(streams):
    both_ways = [
        Allocation("fast", build_strategy("sma_crossover", SMA), "BTC/USD", "1m", Decimal("0.4")),
        Allocation("slow", build_strategy("sma_crossover", SMA | {"fast_period": 12, "slow_period": 40}), "BTC/USD", "1m",
                   Decimal("0.4")),
    ]

    result = run_backtest(BacktestSpec(both_ways, CAPITAL), {("BTC/USD", "1m"): streams[("BTC/USD", "1m")]})

    held = {sid: [p for r in run.store.results for p in r.positions] for sid, run in result.runs.items()}

    def side_at(sid, time):
        final = {p.position_id: p for p in held[sid]}
        return {str(p.side) for p in final.values() if p.opened_at <= time and (p.closed_at is None or p.closed_at > time)}

    assert len(result.conflicts) >= 5
    for event in result.conflicts:
        assert event.type == "CONFLICT_DETECTED" and event.strategy_id == ""
        [long], [short] = event.payload["long"], event.payload["short"]
        assert side_at(long, event.time) == {"long"} and side_at(short, event.time) == {"short"}
        # It began here: at the candle before, the two did not hold opposite sides.
        before = event.time - timedelta(minutes=1)
        assert {frozenset(side_at(long, before)), frozenset(side_at(short, before))} != {frozenset({"long"}), frozenset({"short"})}
    assert [e.sequence for e in result.conflicts] == list(range(1, len(result.conflicts) + 1))


SWEEP = [
    ("sma_crossover", SMA),
    ("sma_crossover", SMA | {"fast_period": 10}),
    ("sma_crossover", SMA | {"slow_period": 40, "stop_loss_pct": "0.003", "take_profit_pct": "0.004"}),
    ("rsi_mean_reversion", RSI),
    ("rsi_mean_reversion", RSI | {"rsi_period": 14, "allow_short": True}),
]


def test_strategies_sharing_a_market_make_exactly_the_trades_and_equity_of_separate_runs(streams):
    market = {("BTC/USD", "1m"): streams[("BTC/USD", "1m")]}
    together = run_backtest(BacktestSpec([
        Allocation(f"s{n}", build_strategy(*variant), "BTC/USD", "1m", Decimal("0.2")) for n, variant in enumerate(SWEEP)
    ], CAPITAL), market)

    for n, variant in enumerate(SWEEP):
        alone = run_backtest(BacktestSpec([Allocation(f"s{n}", build_strategy(*variant), "BTC/USD", "1m", Decimal(1))],
                                          CAPITAL * Decimal("0.2")), market)
        assert together.runs[f"s{n}"].store.results == alone.runs[f"s{n}"].store.results
        assert together.runs[f"s{n}"].publisher.events == alone.runs[f"s{n}"].publisher.events
        assert together.runs[f"s{n}"].equity == alone.runs[f"s{n}"].equity
        assert len(alone.runs[f"s{n}"].trades()) >= 3
    assert len(together.equity) == len(market[("BTC/USD", "1m")])
    assert together.equity[-1][1] == sum((run.equity[-1][1] for run in together.runs.values()), Decimal(0))


def test_the_equity_curves_mark_every_candle_at_the_strategys_equity_and_the_portfolios_sum(streams):
    result = run_backtest(BacktestSpec(allocations(), CAPITAL), streams)
    marks = {sid: iter(run.equity) for sid, run in result.runs.items()}
    latest = {sid: run.capital for sid, run in result.runs.items()}
    sid_of = {"1m": "sma-1m", "5m": "rsi-5m"}
    for candle, (time, equity) in zip(merged(streams, None, None), result.equity, strict=True):
        sid = sid_of[candle.timeframe]
        marked_at, latest[sid] = next(marks[sid])
        assert marked_at == time == candle.time
        assert equity == result.cash + sum(latest.values(), Decimal(0))
    for run, candles in ((result.runs["sma-1m"], streams[("BTC/USD", "1m")]), (result.runs["rsi-5m"], streams[("BTC/USD", "5m")])):
        assert run.equity.times == [c.time for c in candles]
        assert run.equity[-1][1] == run.orchestrator.equity_at(candles[-1].close)


def test_what_a_run_records_is_kept_off_the_collectors_full_passes_and_handed_back_after(streams, monkeypatch):
    monkeypatch.setattr(backtest, "FREEZE_EVERY", 500)
    assert gc.get_freeze_count() == 0
    frozen_as_it_ran = []
    result = run_backtest(BacktestSpec(allocations(), CAPITAL), streams, progress=lambda done: frozen_as_it_ran.append(
        gc.get_freeze_count()) if done % 500 == 0 else None)

    # Frozen from the start (what existed before), then more each time the records are frozen again.
    assert len(frozen_as_it_ran) == result.candles // 500 and frozen_as_it_ran[0] > 0
    assert frozen_as_it_ran[-1] > frozen_as_it_ran[0]
    assert gc.get_freeze_count() == 0


def test_a_heap_frozen_by_the_caller_is_left_as_it_is(streams, monkeypatch):
    monkeypatch.setattr(backtest, "FREEZE_EVERY", 500)
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        seen = set()
        # Read at each step of the freezing, not at every candle: the count is had by walking the whole frozen heap.
        result = run_backtest(BacktestSpec(allocations(), CAPITAL), streams, progress=lambda done: seen.add(
            gc.get_freeze_count()) if done % 500 == 0 else None)
        assert result.candles >= 1000 and seen == {before} and gc.get_freeze_count() == before
    finally:
        gc.unfreeze()


def test_progress_is_reported_in_order_at_least_every_progress_step_and_at_the_last_candle(streams):
    one_market = BacktestSpec(allocations()[:1], CAPITAL)
    for spec, given in ((one_market, {("BTC/USD", "1m"): streams[("BTC/USD", "1m")]}),
                        (BacktestSpec(allocations(), CAPITAL), streams)):
        seen: list[int] = []
        result = run_backtest(spec, given, progress=seen.append)

        assert seen == sorted(set(seen)) and seen[-1] == result.candles == sum(map(len, given.values()))
        assert max(b - a for a, b in zip([0, *seen], seen)) <= backtest.PROGRESS_EVERY
    # One market's run is reported from due candle to due candle and at each step, not at every candle.
    assert len(seen) == result.candles
    single: list[int] = []
    run_backtest(one_market, {("BTC/USD", "1m"): streams[("BTC/USD", "1m")]}, progress=single.append)
    assert len(single) < len(streams[("BTC/USD", "1m")]) / 2
