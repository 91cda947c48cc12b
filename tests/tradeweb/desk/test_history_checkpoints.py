"""A strategy's derived history stored as its checkpoint: a process that starts from it ends with exactly what a
derivation from scratch gives (every mark, trade and fee, and the P&L page itself); a checkpoint of another capital,
strategy row or market, or one that cannot be read, is not used; a worker stores it again once the history holds
enough new marks, and never replaces it by one that holds less.

The web process hands the storing to a worker (`tasks.queue_history_checkpoint`); here its histories call the task's
work (`history_checkpoints.refresh`) at once instead, except in the test that runs a real worker."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from orchestrator.datasets import load_candles
from tests.history_state import history_state
from tests.ingest import feed
from tradeweb.desk import equity_curve, history_checkpoints, models, period_figures
from tradeweb.desk.equity_curve import FillReplay
from tradeweb.desk.history_cache import StrategyHistories, histories
from tradeweb.desk.history_packing import FORMAT, MAGIC, PREFIX
from tradeweb.desk.strategy_history import StrategyHistory, history_identity

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_worker")]

EVERY = 100  # marks between checkpoints, for the tests' short histories
NEVER = 10**9


def storing(every: int = EVERY):
    """What a worker does when a web process asks it to store a checkpoint, done at once."""
    return lambda strategy_id: history_checkpoints.refresh(strategy_id, every)


def kept(every: int = EVERY) -> StrategyHistories:
    """A fresh web process's histories, storing their checkpoints every `every` marks."""
    return StrategyHistories(checkpoint_every=every, ask=storing(every))


def from_scratch(strategy) -> StrategyHistory:
    """The strategy's history derived without a checkpoint."""
    history = StrategyHistory(history_identity(strategy), FillReplay(strategy.strategy_id, strategy.symbol,
                                                                     strategy.capital))
    history.extend(strategy)
    return history


def stored(strategy) -> models.HistoryCheckpoint:
    return models.HistoryCheckpoint.objects.get(strategy=strategy)


def shown(figures: dict) -> dict:
    """A period's figures as the page shows them (its curve by its marks and ends)."""
    curve = figures["curve"]
    return figures | {"curve": (curve.start, curve.end, curve.marks)}


def test_a_history_read_from_its_checkpoint_and_extended_equals_one_derived_from_scratch(mid_trade):
    strategy, to_come = mid_trade
    at_checkpoint = kept().of(strategy)
    marks, trades = len(at_checkpoint.times), len(at_checkpoint.trades)
    assert stored(strategy).through == strategy.last_candle_time and at_checkpoint.replay.book.held
    feed(to_come)
    strategy.refresh_from_db()

    history = kept(NEVER).of(strategy)

    assert history.checkpoint_marks == marks  # it started from the checkpoint
    assert len(history.times) > marks and len(history.trades) > trades
    assert history_state(history) == history_state(from_scratch(strategy))
    derived = equity_curve.derive(strategy)
    assert history.curve() == derived and len(derived.marks) == len(history.times)
    since = to_come[len(to_come) // 2].time
    assert history.curve(since) == equity_curve.derive(strategy, since=since)
    scratch = from_scratch(strategy)
    for moment in (None, since, to_come[0].time - timedelta(days=3)):
        for unit in ("day", "week", "month"):
            assert shown(period_figures.figures(history, moment, unit)) == shown(
                period_figures.figures(scratch, moment, unit))


def test_the_pnl_page_reads_the_same_from_a_checkpoint_as_derived_from_scratch(mid_trade, client, make_user,
                                                                                 monkeypatch):
    strategy, to_come = mid_trade
    client.force_login(make_user("viewer"))
    monkeypatch.setattr(histories, "checkpoint_every", EVERY)
    monkeypatch.setattr(histories, "ask", storing())
    histories.forget()
    client.get(reverse("strategy_pnl", args=["alpha"]))  # derives the history, and its checkpoint is stored
    assert stored(strategy).through == strategy.last_candle_time
    feed(to_come[:EVERY // 2])  # and the page goes on from it
    strategy.refresh_from_db()
    choices = [{}, {"period": "7d", "breakdown": "week"}, {"sort": "pnl", "order": "asc", "page": "2"},
               {"sort": "exit_reason", "period": "30d"}]

    def pages() -> tuple[int, list[str]]:
        """How many marks the process read from the checkpoint, and each page as it first serves it."""
        histories.forget()
        texts = [client.get(reverse("strategy_pnl", args=["alpha"]), choice).content.decode() for choice in choices]
        read = histories.of(strategy).checkpoint_marks
        texts.append(client.get(reverse("strategy_pnl_live", args=["alpha"])).content.decode())
        texts.append(client.get(reverse("strategy_pnl_export", args=["alpha", "equity", "csv"])).content.decode())
        # The CSRF token is masked afresh for every page.
        return read, [re.sub(r'(X-CSRFToken": "|name="csrfmiddlewaretoken" value=")[^"]+', r"\1", text)
                      for text in texts]

    read, from_checkpoint = pages()
    models.HistoryCheckpoint.objects.all().delete()
    _, derived = pages()

    assert read == len(histories.of(strategy).times) - EVERY // 2  # it read all but the new candles
    assert from_checkpoint == derived
    assert 'data-metric="sharpe"' in derived[0] and "time,equity" in derived[-1]


@pytest.mark.parametrize("change", [
    {"capital": Decimal(20000)},
    {"created_at": "2021-06-01T00:00:00Z"},  # another strategy row under the same id
    {"timeframe": "1m"},
])
def test_a_checkpoint_of_another_capital_strategy_row_or_market_is_not_used(mid_trade, change):
    strategy, _ = mid_trade
    kept().of(strategy)
    models.Strategy.objects.filter(pk=strategy.pk).update(**change)
    strategy.refresh_from_db()
    history = StrategyHistory(history_identity(strategy), FillReplay(strategy.strategy_id, strategy.symbol,
                                                                     strategy.capital))

    assert not history_checkpoints.restore(history, strategy)
    assert history.times == [] and history.through is None
    assert kept().of(strategy).curve() == equity_curve.derive(strategy)


def test_a_checkpoint_of_another_capital_is_replaced_by_the_history_derived_again(mid_trade):
    strategy, _ = mid_trade
    kept().of(strategy)
    models.Strategy.objects.filter(pk=strategy.pk).update(capital=Decimal(20000))
    strategy.refresh_from_db()

    history = kept().of(strategy)

    assert history.curve().start == Decimal(20000) and history.curve() == equity_curve.derive(strategy)
    assert stored(strategy).capital == Decimal(20000)
    again = kept(NEVER).of(strategy)
    assert again.checkpoint_marks == len(again.times)
    assert history_state(again) == history_state(history)


def damaged(data: bytes) -> bytes:
    middle = bytearray(data)
    middle[len(data) // 2] ^= 0x01
    return bytes(middle)


@pytest.mark.parametrize("spoil", [
    damaged,
    lambda data: data[: len(data) // 2],
    lambda data: PREFIX.pack(MAGIC, FORMAT + 1, 0) + data[PREFIX.size:],  # a format this code does not know
    lambda data: b"",
])
def test_a_checkpoint_that_cannot_be_read_is_ignored_and_the_history_derived_again(mid_trade, spoil, caplog):
    strategy, _ = mid_trade
    kept().of(strategy)
    models.HistoryCheckpoint.objects.filter(strategy=strategy).update(data=spoil(bytes(stored(strategy).data)))

    with caplog.at_level(logging.WARNING, logger="tradeweb.desk.history_checkpoints"):
        history = kept(NEVER).of(strategy)

    assert history.checkpoint_marks == 0
    assert history_state(history) == history_state(from_scratch(strategy))
    assert "history checkpoint of alpha not used" in caplog.text


def test_the_page_answers_with_a_checkpoint_that_cannot_be_read(mid_trade, client, make_user, monkeypatch):
    strategy, _ = mid_trade
    client.force_login(make_user("viewer"))
    monkeypatch.setattr(histories, "checkpoint_every", EVERY)
    monkeypatch.setattr(histories, "ask", storing())
    histories.forget()
    client.get(reverse("strategy_pnl", args=["alpha"]))
    models.HistoryCheckpoint.objects.filter(strategy=strategy).update(data=damaged(bytes(stored(strategy).data)))
    histories.forget()

    page = client.get(reverse("strategy_pnl", args=["alpha"]))

    assert page.status_code == 200
    assert page.context["curve"].marks == equity_curve.derive(strategy).marks


def test_it_is_stored_again_once_the_history_holds_enough_new_marks(make_strategy, month):
    strategy = make_strategy("alpha", timeframe="1h", fast_period=3, slow_period=8)
    process = kept()

    def through(candles: list):
        feed(candles)
        strategy.refresh_from_db()
        process.of(strategy)
        row = models.HistoryCheckpoint.objects.filter(strategy=strategy).first()
        return row.through if row else None

    assert through(month[:EVERY - 1]) is None
    assert through(month[EVERY - 1:EVERY]) == month[EVERY - 1].time
    assert through(month[EVERY:2 * EVERY - 1]) == month[EVERY - 1].time
    assert through(month[2 * EVERY - 1:2 * EVERY]) == month[2 * EVERY - 1].time


def test_a_checkpoint_is_never_replaced_by_one_through_an_earlier_candle(mid_trade):
    strategy, to_come = mid_trade
    earlier = kept().of(strategy)
    feed(to_come[:EVERY])
    strategy.refresh_from_db()
    kept().of(strategy)
    assert stored(strategy).through == to_come[EVERY - 1].time

    history_checkpoints.store(earlier, strategy)  # from a process that still holds the earlier history

    assert stored(strategy).through == to_come[EVERY - 1].time


def test_a_strategy_deleted_takes_its_checkpoint_with_it(make_strategy, month):
    strategy = make_strategy("quiet", timeframe="1h", fast_period=50, slow_period=200)  # takes candles, never trades
    feed(month[:EVERY])
    strategy.refresh_from_db()
    kept().of(strategy)
    assert stored(strategy).through == month[EVERY - 1].time

    strategy.delete()

    assert not models.HistoryCheckpoint.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_web_process_asks_a_real_worker_which_stores_the_checkpoint(make_strategy, wait_for_worker):
    strategy = make_strategy("alpha", fast_period=3, slow_period=8, stop_loss_pct="0.003", take_profit_pct="0.004")
    feed(load_candles("BTC/USD", "1m", limit=history_checkpoints.CHECKPOINT_EVERY + 20))
    strategy.refresh_from_db()
    process = StrategyHistories()  # asks through the tests' queue, as the web process does

    history = process.of(strategy)

    assert history.checkpoint_marks == len(history.times) >= history_checkpoints.CHECKPOINT_EVERY  # asked once
    wait_for_worker(lambda: models.HistoryCheckpoint.objects.filter(strategy=strategy).exists(),
                    "the worker to store the checkpoint")
    assert stored(strategy).through == strategy.last_candle_time
    again = kept(NEVER).of(strategy)
    assert again.checkpoint_marks == len(again.times)
    assert history_state(again) == history_state(history)
