"""The histories a web process keeps ask a worker for a newer checkpoint once they hold enough marks beyond the one
the process knows of, once each time; a broker that does not answer leaves the page served and is logged."""

from __future__ import annotations

import logging

import pytest
from kombu.exceptions import OperationalError

from tests.ingest import feed
from tradeweb.desk import equity_curve
from tradeweb.desk.history_cache import StrategyHistories

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_worker")]

EVERY = 100


def test_it_asks_for_a_checkpoint_each_time_the_history_holds_enough_marks_beyond_the_one_it_knows(
        make_strategy, month):
    strategy = make_strategy("alpha", timeframe="1h", fast_period=3, slow_period=8)
    asked = []
    process = StrategyHistories(checkpoint_every=EVERY, ask=asked.append)

    def asks_after(candles: list) -> list[str]:
        feed(candles)
        strategy.refresh_from_db()
        process.of(strategy)
        process.of(strategy)
        return list(asked)

    assert asks_after(month[:EVERY - 1]) == []
    assert asks_after(month[EVERY - 1:EVERY]) == ["alpha"]
    assert asks_after(month[EVERY:2 * EVERY - 1]) == ["alpha"]
    assert asks_after(month[2 * EVERY - 1:2 * EVERY]) == ["alpha", "alpha"]


def test_a_broker_that_does_not_answer_leaves_the_history_served_and_is_logged(make_strategy, month, caplog):
    strategy = make_strategy("alpha", timeframe="1h", fast_period=3, slow_period=8)
    feed(month[:EVERY])
    strategy.refresh_from_db()

    def broker_down(strategy_id: str) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    with caplog.at_level(logging.WARNING, logger="tradeweb.desk.history_cache"):
        history = StrategyHistories(checkpoint_every=EVERY, ask=broker_down).of(strategy)

    assert history.curve() == equity_curve.derive(strategy)
    assert "history checkpoint of alpha not asked for" in caplog.text


def test_it_keeps_the_least_recently_used_histories_only(make_strategy, btc_candles):
    strategies = [make_strategy(name, fast_period=3, slow_period=8) for name in ("alpha", "beta", "gamma")]
    feed(btc_candles[:40])
    process = StrategyHistories(size=2)
    kept = {}
    for strategy in strategies:
        strategy.refresh_from_db()
        kept[strategy.strategy_id] = process.of(strategy)

    assert process.of(strategies[2]) is kept["gamma"]
    assert process.of(strategies[0]) is not kept["alpha"]
