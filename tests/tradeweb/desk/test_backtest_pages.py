"""Stored backtests: the list and results pages (login required), sorting, and the CSV and JSON exports."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import pytest
from django.urls import reverse

from orchestrator.backtest import Allocation, BacktestSpec, run_backtest
from orchestrator.datasets import load_candles
from strategies import build_strategy
from tradeweb.desk import models
from tradeweb.desk.backtest_results import result_json, store_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored(make_user):
    candles = {("BTC/USD", "15m"): load_candles("BTC/USD", "15m")}
    allocations = [
        Allocation("fast", build_strategy("sma_crossover", {"fast_period": 5, "slow_period": 20}), "BTC/USD", "15m", Decimal("0.5")),
        Allocation("slow", build_strategy("sma_crossover", {"fast_period": 10, "slow_period": 30, "stop_loss_pct": "0.01", "take_profit_pct": "0.02"}), "BTC/USD", "15m", Decimal("0.4")),
    ]
    result = run_backtest(BacktestSpec(allocations, Decimal(10_000)), candles)
    return store_run(result, make_user("quant")), result_json(result), result


def test_the_list_compares_stored_runs(client, stored, make_user):
    run, *_ = stored
    client.force_login(make_user("viewer"))

    html = client.get(reverse("backtest_list")).content.decode()

    assert reverse("backtest_detail", args=[run.pk]) in html and "quant" in html


def test_the_results_page_compares_strategies_and_lists_every_trade_sorted(client, stored, make_user):
    run, result, _ = stored
    client.force_login(make_user("viewer"))

    page = client.get(reverse("backtest_detail", args=[run.pk]), {"sort": "pnl", "order": "desc"})

    assert page.status_code == 200
    html = page.content.decode()
    assert all(name in html for name in ("fast", "slow", "portfolio", "equity-chart", "drawdown-chart"))
    trades = page.context["trades"]
    everything = [t for part in result["strategies"].values() for t in part["trades"]]
    assert len(trades) == len(everything) >= 20
    assert [Decimal(t["pnl"]) for t in trades] == sorted((Decimal(t["pnl"]) for t in everything), reverse=True)
    curves = json.loads(html.split('id="backtest-curves" type="application/json">')[1].split("</script>")[0])
    assert curves["portfolio"] == result["portfolio"]["equity"]


def test_every_trade_has_the_exit_reason_of_its_closing_fill_and_the_page_counts_them(client, stored, make_user):
    run, result, ran = stored
    client.force_login(make_user("viewer"))
    triggers = {"stop_loss": "stop-loss", "take_profit": "take-profit", "market": "signal"}

    page = client.get(reverse("backtest_detail", args=[run.pk]), {"sort": "exit_reason"})

    for sid, part in result["strategies"].items():
        closing = {f.position_id: f for r in ran.runs[sid].store.results for f in r.fills if f.intent == "close"}
        assert {t["position_id"]: t["exit_reason"] for t in part["trades"]} == {
            t["position_id"]: triggers[closing[t["position_id"]].trigger] for t in part["trades"]
        }
    counts = page.context["reason_counts"]
    assert counts["stop-loss"] > 0 and counts["take-profit"] > 0 and counts["signal"] > 0
    assert sum(counts.values()) == len(page.context["trades"])
    assert [t["exit_reason"] for t in page.context["trades"]] == sorted(t["exit_reason"] for t in page.context["trades"])
    assert f"stop-loss <b>{counts['stop-loss']}</b>" in page.content.decode()


def test_an_unknown_sort_falls_back_and_an_unknown_run_or_export_is_404(client, stored, make_user):
    run, *_ = stored
    client.force_login(make_user("viewer"))

    assert client.get(reverse("backtest_detail", args=[run.pk]), {"sort": "password"}).context["sort"] == "exit_time"
    assert client.get(reverse("backtest_detail", args=[run.pk + 1])).status_code == 404
    assert client.get(reverse("backtest_export", args=[run.pk, "xml"])).status_code == 404
    assert client.post(reverse("backtest_detail", args=[run.pk])).status_code == 405


def test_the_exports_hold_every_trade_and_the_whole_result(client, stored, make_user):
    run, result, _ = stored
    client.force_login(make_user("viewer"))

    rows = list(csv.DictReader(io.StringIO(client.get(reverse("backtest_export", args=[run.pk, "csv"])).content.decode())))
    exported = client.get(reverse("backtest_export", args=[run.pk, "json"])).json()

    assert len(rows) == sum(len(part["trades"]) for part in result["strategies"].values())
    assert {row["strategy_id"] for row in rows} == {"fast", "slow"}
    assert exported == json.loads(json.dumps(result))


def test_every_backtest_page_needs_a_login(client, stored):
    run, *_ = stored
    for url in (reverse("backtest_list"), reverse("backtest_detail", args=[run.pk]),
                reverse("backtest_export", args=[run.pk, "json"])):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert models.BacktestRun.objects.count() == 1
