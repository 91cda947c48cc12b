"""Slots: an account and a symbol. In an exclusive one, switching a strategy on switches the active one out in
the same transaction; concurrent switches never leave two active; a shared one runs any number."""

from __future__ import annotations

import pytest

from tests.at_once import at_once
from tradeweb.desk import live, models
from tradeweb.desk.control import set_active

pytestmark = pytest.mark.django_db(transaction=True)

CONFIG = {"fast_period": 5, "slow_period": 20, "allow_short": True, "stop_loss_pct": "0.002", "take_profit_pct": "0.003"}


def exclusive(symbol: str = "BTC/USD") -> None:
    models.Slot.objects.filter(account="paper", symbol=symbol).update(exclusive=True)


def statuses() -> dict[str, str]:
    return dict(models.Strategy.objects.values_list("strategy_id", "status"))


def test_saving_a_strategy_registers_its_slot_shared(make_strategy):
    make_strategy("alpha")
    make_strategy("beta", symbol="GBP/USD", status="dormant")

    assert list(models.Slot.objects.values_list("account", "symbol", "exclusive")) == [
        ("paper", "BTC/USD", False), ("paper", "GBP/USD", False)]


def test_switching_a_strategy_whose_slot_row_is_gone_registers_it_again_shared(make_strategy, make_user):
    make_strategy("alpha", status="dormant")
    models.Slot.objects.all().delete()

    set_active("alpha", make_user("trader", can_control=True), True)

    assert list(models.Slot.objects.values_list("account", "symbol", "exclusive")) == [("paper", "BTC/USD", False)]
    assert statuses() == {"alpha": "active"}


def test_a_shared_slot_runs_several_strategies_side_by_side(make_strategy, make_user):
    for sid in ("alpha", "beta", "gamma"):
        make_strategy(sid, status="dormant")
    trader = make_user("trader", can_control=True)

    for sid in ("alpha", "beta", "gamma"):
        set_active(sid, trader, True)

    assert statuses() == {"alpha": "active", "beta": "active", "gamma": "active"}


def test_switching_in_an_exclusive_slot_switches_the_holder_out_and_it_drains(make_strategy, make_user, btc_candles):
    make_strategy("alpha", **CONFIG)
    make_strategy("beta", status="dormant", **CONFIG)
    make_strategy("gbp", symbol="GBP/USD", strategy_class="rsi_mean_reversion")
    exclusive()
    for candle in btc_candles[:200]:
        live.ingest_candle(candle.to_mapping())
        if models.Position.objects.filter(strategy_id="alpha", closed_at__isnull=True).exists():
            break
    assert models.Position.objects.filter(strategy_id="alpha", closed_at__isnull=True).exists()

    set_active("beta", make_user("trader", can_control=True), True)

    assert statuses() == {"alpha": "draining", "beta": "active", "gbp": "active"}
    out = models.Event.objects.filter(strategy_id="alpha", type="STRATEGY_DEACTIVATED").get()
    assert out.payload == {"user": "trader", "previous_status": "active", "status": "draining",
                                "wind_down": "drain", "switched_for": "beta"}
    action = models.ControlAction.objects.get(strategy_id="alpha")
    assert action.detail == "status active -> draining; switched out for beta"


def test_concurrent_switches_in_an_exclusive_slot_never_leave_two_active(make_strategy, make_user):
    ids = [f"s-{n}" for n in range(4)]
    for sid in ids:
        make_strategy(sid, status="dormant")
    exclusive()
    trader = make_user("trader", can_control=True)

    for round_ in range(5):
        outcomes = at_once([lambda sid=sid: set_active(sid, trader, True) for sid in ids])

        errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        assert not errors, errors  # a click must never fail
        active = [sid for sid, status in statuses().items() if status == "active"]
        assert len(active) == 1, f"round {round_}: {statuses()}"
    # Every click was applied, one after the other: each switched the one before it out.
    assert models.ControlAction.objects.filter(action="activate").count() == 5 * len(ids)


def test_an_operator_makes_a_slot_exclusive_in_the_admin_and_cannot_rename_or_delete_it(admin_client, make_strategy):
    from django.urls import reverse

    make_strategy("alpha")
    slot = models.Slot.objects.get()
    url = reverse("admin:desk_slot_change", args=[slot.pk])

    response = admin_client.post(url, {"exclusive": "on", "account": "other", "symbol": "ETH/USD", "_save": "Save"})

    assert response.status_code == 302
    slot.refresh_from_db()
    assert (slot.account, slot.symbol, slot.exclusive) == ("paper", "BTC/USD", True)
    assert admin_client.post(reverse("admin:desk_slot_delete", args=[slot.pk]), {"post": "yes"}).status_code == 403
    assert models.Slot.objects.filter(pk=slot.pk).exists()
