"""Desk-wide limits on real candles: two strategies of one account on two markets (BTC/USD 1m and 5m) trade
until the account's summed equity breaches its limit, at exactly the candle an independent reckoning from
core runs finds; then each is halted with one RISK_HALTED event and enters nothing more, until a user with
the control permission resumes the account."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from orchestrator.datasets import load_candles
from orchestrator.engine import StrategyOrchestrator
from orchestrator.loss_limits import EquityMarks, LossLimits
from orchestrator.ports import MemoryPublisher, MemoryStore
from strategies import build_strategy
from tradeweb.desk import live, models

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_worker")]

CONFIG = {"fast_period": 5, "slow_period": 20, "allow_short": True, "position_size": "1",
          "stop_loss_pct": "0.004", "take_profit_pct": "0.006"}
MARKETS = {"one": "1m", "five": "5m"}
SPAN = {"1m": timedelta(minutes=1), "5m": timedelta(minutes=5)}
LIMITS = [{"max_drawdown_pct": Decimal("0.015")}, {"daily_loss_pct": Decimal("0.008")}]


@pytest.fixture(scope="module")
def feed() -> list[tuple[str, object]]:
    """(strategy id, candle) in the order a feed of both markets sends them: each candle once it has closed."""
    candles = [(sid, c) for sid, tf in MARKETS.items() for c in load_candles("BTC/USD", tf, limit=1500 if tf == "1m" else 300)]
    return sorted(candles, key=lambda item: (item[1].time + SPAN[item[1].timeframe], item[1].timeframe))


def expected_breach(feed, limits: LossLimits) -> tuple[int, str]:
    """Where the account's equity (the strategies' equities summed after each candle, each strategy run
    alone by the core) first breaches `limits`: the index in the feed and the reason."""
    runs = {sid: StrategyOrchestrator(sid, build_strategy("sma_crossover", CONFIG), "BTC/USD", tf, Decimal(10000),
                                      MemoryStore(), MemoryPublisher()) for sid, tf in MARKETS.items()}
    equity = {sid: Decimal(10000) for sid in MARKETS}
    marks = EquityMarks()
    for index, (sid, candle) in enumerate(feed):
        runs[sid].process(candle)
        equity[sid] = runs[sid].marks.last
        marks.mark(candle.time, sum(equity.values()), Decimal(20000))
        reason = limits.breach(sum(equity.values()), marks.peak, marks.day_start)
        if reason is not None:
            return index, reason
    raise AssertionError("the account never breached its limit on these candles")


@pytest.fixture(params=LIMITS, ids=lambda limits: next(iter(limits)))
def breached(request, make_strategy, feed):
    """Both strategies fed until 60 candles after the account's breach; returns (breach index, reason)."""
    for sid, timeframe in MARKETS.items():
        make_strategy(sid, symbol="BTC/USD", timeframe=timeframe, **CONFIG)
    models.AccountLimit.objects.create(account="paper", **request.param)
    index, reason = expected_breach(feed, LossLimits(**request.param))
    for sid, candle in feed[:index + 60]:
        live.ingest_candle(candle.to_mapping())
    return index, reason


def test_the_account_halts_at_the_breaching_candle_and_each_strategy_once(breached, feed):
    index, reason = breached
    sid, candle = feed[index]

    limits = models.AccountLimit.objects.get(account="paper")
    assert (limits.halted_reason, limits.halted_at) == (reason, candle.time)
    for strategy_id in MARKETS:
        halts = models.Event.objects.filter(strategy_id=strategy_id, type="RISK_HALTED")
        assert halts.count() == 1, strategy_id
        halt = halts.get()
        assert halt.payload["reason"] == f"account paper: {reason}"
        # The one whose candle breached is halted at it; the other at its own next candle.
        following = next(c for s, c in feed[index:] if s == strategy_id)
        assert halt.time == following.time
        assert models.Strategy.objects.get(strategy_id=strategy_id).halted_with_account
        assert not models.Order.objects.filter(strategy_id=strategy_id, intent="open", created_at__gte=halt.time).exists()


def test_only_the_account_resumes_them_and_then_they_enter_again(client, breached, feed, make_user):
    index, _ = breached
    viewer, trader = make_user("viewer"), make_user("trader", can_control=True)
    url = reverse("account_resume", args=["paper"])
    client.force_login(viewer)
    assert client.post(url).status_code == 403
    assert "Resume account" not in client.get(reverse("dashboard")).content.decode()
    client.force_login(trader)
    assert client.post(reverse("strategy_resume", args=["one"])).status_code == 409
    assert "Resume account" in client.get(reverse("dashboard")).content.decode()

    response = client.post(url, headers={"HX-Request": "true"})

    assert response.status_code == 200 and "Account halted" not in response.content.decode()
    assert models.AccountLimit.objects.get(account="paper").halted_reason == ""
    for strategy_id in MARKETS:
        assert models.Event.objects.filter(strategy_id=strategy_id, type="RISK_RESUMED").count() == 1
        assert models.ControlAction.objects.get(strategy_id=strategy_id).action == "resume"
        assert not models.Strategy.objects.get(strategy_id=strategy_id).halted_reason
    assert client.post(url).status_code == 409
    resumed = dict(models.Event.objects.filter(type="RISK_RESUMED").values_list("strategy_id", "sequence"))
    for sid, candle in feed[index + 60:index + 400]:
        live.ingest_candle(candle.to_mapping())
    entries = [e for e in models.Event.objects.filter(type="ORDER_CREATED", payload__intent="open")
               if e.sequence > resumed[e.strategy_id]]
    assert entries, "entries are allowed again"
    assert not models.Event.objects.filter(type="RISK_HALTED").exclude(payload__reason__startswith="account paper: ").exists()


def test_resuming_an_account_rejects_get_an_unknown_account_and_one_not_halted(client, make_user):
    client.force_login(make_user("trader", can_control=True))
    models.AccountLimit.objects.create(account="paper", max_drawdown_pct=Decimal("0.1"))

    assert client.get(reverse("account_resume", args=["paper"])).status_code == 405
    assert client.post(reverse("account_resume", args=["nobody"])).status_code == 404
    assert client.post(reverse("account_resume", args=["paper"])).status_code == 409


def test_editing_the_limits_in_the_admin_keeps_a_halt_written_meanwhile(admin_client, monkeypatch):
    limits = models.AccountLimit.objects.create(account="paper", max_drawdown_pct=Decimal("0.1"))
    url = reverse("admin:desk_accountlimit_change", args=[limits.pk])
    validate = models.AccountLimit.clean

    def halted_by_a_worker_meanwhile(self):
        # A worker's batch halts the account after the admin loaded the row and before it saves it.
        validate(self)
        models.AccountLimit.objects.filter(pk=self.pk).update(halted_reason="drawdown 11%", marks={"peak_equity": "100"})

    monkeypatch.setattr(models.AccountLimit, "clean", halted_by_a_worker_meanwhile)

    response = admin_client.post(url, {"max_drawdown_pct": "0.2", "daily_loss_pct": "", "_save": "Save"})

    assert response.status_code == 302
    limits.refresh_from_db()
    assert (limits.max_drawdown_pct, limits.halted_reason, limits.marks) == (Decimal("0.2"), "drawdown 11%", {"peak_equity": "100"})
