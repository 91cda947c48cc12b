"""Why each trade closed, on real BTC candles: its closing fill's trigger for a stop or a target, a switch for a
close under the close policy, the strategy's signal otherwise."""

from __future__ import annotations


from orchestrator.engine import WindDown
from orchestrator.exit_reasons import exit_reasons, reason_counts
from orchestrator.orders import OrderIntent
from tests.orchestrator.test_engine import run, sma_orchestrator
from tests.orchestrator.test_wind_down import candles, opened_at, stored, straight, until  # noqa: F401 (fixtures)

TRIGGERS = {"stop_loss": "stop-loss", "take_profit": "take-profit", "market": "signal"}


def reasons_of(results) -> dict[str, str]:
    return exit_reasons((f for r in results for f in r.fills), (o for r in results for o in r.orders))


def test_a_stop_or_a_target_is_the_reason_and_every_other_close_is_the_signals(straight):
    results = stored(straight.returned)
    closing = {f.position_id: f for r in results for f in r.fills if f.intent is OrderIntent.CLOSE}

    reasons = reasons_of(results)

    assert reasons == {pid: TRIGGERS[fill.trigger] for pid, fill in closing.items()}
    counts = reason_counts(reasons.values())
    assert counts["stop-loss"] and counts["take-profit"] and counts["signal"]
    assert counts["switch"] == counts["halt"] == 0 and sum(counts.values()) == len(closing)


def test_a_position_closed_by_the_close_policy_exits_for_a_switch(candles, straight):
    index, position_id = opened_at(straight, 1200)
    closing = until(candles, index, WindDown.CLOSE)
    before = stored(straight.returned[: index + 1])

    after = closing.process(candles[index + 1])

    reasons = reasons_of([*before, after])
    assert reasons[position_id] == "switch"
    assert {pid: r for pid, r in reasons.items() if pid != position_id} == reasons_of(before)


def test_a_run_without_stops_closes_only_on_its_signals(candles):
    plain = run(sma_orchestrator(), candles)

    reasons = reasons_of(stored(plain.returned))

    assert reasons and set(reasons.values()) == {"signal"}
