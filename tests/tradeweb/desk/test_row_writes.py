"""Rows written in one round trip: the same rows `save` and `bulk_create` write, and errors as Django's own."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from django.db import IntegrityError, transaction

from tradeweb.desk import models
from tradeweb.desk.row_writes import insert_rows, one_round_trip, update_rows

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2022, 1, 3, 12, 0, tzinfo=timezone.utc)


def event(sid: str, sequence: int, **payload) -> models.Event:
    return models.Event(strategy_id=sid, sequence=sequence, type="STRATEGY_ACTIVATED", symbol="BTC/USD", time=NOW,
                        payload=payload)


def test_updates_write_the_named_fields_only_with_auto_now_and_json_prepared(make_strategy):
    alpha, beta = make_strategy("alpha"), make_strategy("beta", status="dormant")
    before = models.Strategy.objects.get(strategy_id="beta").updated_at
    alpha.status, alpha.name = "draining", "not written"
    beta.status, beta.last_candle_time, beta.snapshot = "active", NOW, {"indicators": {"sma_5": [1.5, None]}}

    with transaction.atomic(), one_round_trip():
        update_rows([(alpha, ["status"]), (beta, ["status", "last_candle_time", "snapshot", "updated_at"])])

    alpha_row, beta_row = models.Strategy.objects.get(strategy_id="alpha"), models.Strategy.objects.get(strategy_id="beta")
    assert (alpha_row.status, alpha_row.name) == ("draining", "Alpha")
    assert (beta_row.status, beta_row.last_candle_time) == ("active", NOW)
    assert beta_row.snapshot == {"indicators": {"sma_5": [1.5, None]}}
    assert beta_row.updated_at > before


def test_inserts_give_the_rows_bulk_create_gives(make_strategy, make_user):
    make_strategy("alpha")
    user = make_user("trader")
    started = datetime.now(timezone.utc)

    with transaction.atomic(), one_round_trip():
        insert_rows([event("alpha", 1, user="trader", amount="1.50"), event("alpha", 2)])
        insert_rows([models.ControlAction(strategy_id="alpha", user=user, action="activate", detail="status a -> b")])
    models.Event.objects.bulk_create([event("alpha", 3, user="trader", amount="1.50")])

    rows = list(models.Event.objects.order_by("sequence").values("sequence", "type", "time", "payload", "created_at"))
    assert [row["sequence"] for row in rows] == [1, 2, 3]
    assert rows[0]["payload"] == rows[2]["payload"] == {"user": "trader", "amount": "1.50"}
    assert all(row["time"] == NOW and started <= row["created_at"] <= started + timedelta(minutes=1) for row in rows)
    action = models.ControlAction.objects.get()
    assert (action.strategy_id, action.user, action.action, action.detail) == ("alpha", user, "activate", "status a -> b")
    assert action.created_at >= started


def test_an_error_in_the_round_trip_is_djangos_and_nothing_of_the_transaction_stays(make_strategy):
    alpha = make_strategy("alpha")
    models.Event.objects.create(strategy_id="alpha", sequence=1, type="FILL", time=NOW)
    alpha.status = "dormant"

    with pytest.raises(IntegrityError):
        with transaction.atomic(), one_round_trip():
            update_rows([(alpha, ["status"])])
            insert_rows([event("alpha", 2), event("alpha", 1)])

    assert models.Strategy.objects.get(strategy_id="alpha").status == "active"
    assert list(models.Event.objects.values_list("sequence", "type")) == [(1, "FILL")]
