"""A risk halt on the desk: real BTC candles through the live path halt a strategy past its drawdown limit;
its card says why; only a user with the control permission resumes it, and it then trades on exactly as
the core engine resumed at the same moment."""

from __future__ import annotations

import pytest
from django.urls import reverse

from orchestrator.engine import StrategyOrchestrator
from orchestrator.ports import MemoryPublisher, MemoryStore
from strategies import build_strategy
from tests.core_runs import money
from tradeweb.desk import live, models, orchestrators

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_worker")]

CONFIG = {"fast_period": 5, "slow_period": 20, "allow_short": True, "position_size": "1",
          "stop_loss_pct": "0.004", "take_profit_pct": "0.006", "max_drawdown_pct": "0.003"}


@pytest.fixture
def halted(make_strategy, btc_candles):
    """Strategy alpha fed real candles until its drawdown limit halted it; returns the candles it took."""
    make_strategy("alpha", **CONFIG)
    for count, candle in enumerate(btc_candles, 1):
        live.ingest_candle(candle.to_mapping())
        if models.Event.objects.filter(strategy_id="alpha", type="RISK_HALTED").exists():
            return btc_candles[:count]
    raise AssertionError("the drawdown limit was never reached")


def resume_url() -> str:
    return reverse("strategy_resume", args=["alpha"])


def test_the_card_says_why_it_is_halted_and_only_a_controller_may_resume(client, halted, make_user):
    reason = models.Event.objects.get(strategy_id="alpha", type="RISK_HALTED").payload["reason"]
    assert models.Strategy.objects.get(strategy_id="alpha").halted_reason == reason
    client.force_login(make_user("viewer"))

    html = client.get(reverse("strategy_card", args=["alpha"])).content.decode()

    assert f"Halted by its risk limits: {reason}. No new entries; exits still managed." in html
    assert "Resume" not in html
    assert client.post(resume_url()).status_code == 403
    assert not models.Event.objects.filter(strategy_id="alpha", type="RISK_RESUMED").exists()


def test_a_resumed_strategy_trades_on_exactly_as_the_core_resumed_at_that_moment(client, halted, make_user, btc_candles):
    client.force_login(make_user("trader", can_control=True))

    response = client.post(resume_url(), headers={"HX-Request": "true"})

    assert response.status_code == 200 and "Halted by" not in response.content.decode()
    row = models.Strategy.objects.get(strategy_id="alpha")
    assert row.halted_reason == ""
    resumed = models.Event.objects.get(strategy_id="alpha", type="RISK_RESUMED")
    assert resumed.sequence == row.last_sequence and resumed.payload["user"] == "trader"
    assert models.ControlAction.objects.get(strategy_id="alpha").action == "resume"
    assert client.post(resume_url()).status_code == 409

    rest = btc_candles[len(halted):len(halted) + 1500]
    orchestrators.forget_all()
    for candle in rest:
        live.ingest_candle(candle.to_mapping())

    core = StrategyOrchestrator("alpha", build_strategy(row.strategy_class, row.config), "BTC/USD", "1m", row.capital,
                                MemoryStore(), MemoryPublisher())
    for candle in halted:
        core.process(candle)
    filled_before = sum(len(r.fills) for r in core.store.results)
    core.resume(resumed.time, "trader")
    for candle in rest:
        core.process(candle)
    fills = [(f.order_id, money(f.price), money(f.quantity)) for r in core.store.results for f in r.fills]
    assert list(models.Fill.objects.filter(strategy_id="alpha").order_by("time", "id").values_list(
        "order_id", "price", "quantity")) == fills
    assert len(fills) > filled_before, "it traded after resuming"
    assert list(models.Event.objects.filter(strategy_id="alpha").order_by("sequence").values_list("type", flat=True)) == [
        str(e.type) for e in core.publisher.events]


def test_resume_needs_the_csrf_token_htmx_sends(halted, make_user):
    from django.test import Client

    from tests.tradeweb.desk.test_control import HTMX, csrf_token_of_the_dashboard

    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("trader", can_control=True))
    token = csrf_token_of_the_dashboard(client)

    assert client.post(resume_url(), headers=HTMX).status_code == 403
    assert models.Strategy.objects.get(strategy_id="alpha").halted_reason
    assert client.post(resume_url(), headers=HTMX | {"X-CSRFToken": token}).status_code == 200
    assert not models.Strategy.objects.get(strategy_id="alpha").halted_reason


def test_a_halted_strategy_switched_off_and_on_again_is_still_halted(halted, make_user):
    from orchestrator.datasets import load_candles
    from tradeweb.desk.control import set_active

    trader = make_user("trader", can_control=True)
    reason = models.Strategy.objects.get(strategy_id="alpha").halted_reason
    set_active("alpha", trader, False)
    rest = iter(load_candles("BTC/USD", limit=len(halted) + 1500)[len(halted):])
    while models.Strategy.objects.get(strategy_id="alpha").status != "dormant":
        live.ingest_candle(next(rest).to_mapping())
    live.ingest_candle(next(rest).to_mapping())  # a candle it skips while dormant

    set_active("alpha", trader, True)
    activated = models.Strategy.objects.get(strategy_id="alpha").last_sequence
    for _ in range(600):
        live.ingest_candle(next(rest).to_mapping())

    row = models.Strategy.objects.get(strategy_id="alpha")
    assert row.halted_reason == reason
    after = list(models.Event.objects.filter(strategy_id="alpha", sequence__gt=activated).values_list("type", flat=True))
    assert "SIGNAL_REJECTED" in after, "it wanted to enter, and was refused"
    assert not {"POSITION_OPENED", "RISK_HALTED"} & set(after)
