"""`manage.py backtest`: a portfolio of stored strategies or a class with its config, on stored, shipped or given
candles, with a comparison table, the whole result as JSON and every decision as JSON lines."""

from __future__ import annotations

import gzip
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from orchestrator.datasets import DATASETS, load_candles
from tests.core_runs import ReferenceRun

pytestmark = pytest.mark.django_db

SMA = {"fast_period": 10, "slow_period": 30}


def backtest(*args) -> str:
    out = StringIO()
    call_command("backtest", *args, stdout=out)
    return out.getvalue()


def test_a_class_with_its_config_on_the_shipped_data_writes_table_json_and_decisions(tmp_path):
    result, log = tmp_path / "result.json", tmp_path / "decisions.jsonl"

    output = backtest("--class", "sma_crossover", "--config", json.dumps(SMA), "--symbol", "BTC/USD",
                      "--timeframe", "15m", "--capital", "5000", "--json", str(result), "--log", str(log))

    table = output.split("\r")[-1]
    assert "sma_crossover" in table and "portfolio" in table and "Sharpe" in table
    written = json.loads(result.read_text())
    run = written["strategies"]["sma_crossover"]
    assert written["config"]["candles"] == len(load_candles("BTC/USD", "15m"))
    assert len(run["trades"]) == run["metrics"]["trades"] == written["portfolio"]["metrics"]["trades"] >= 10
    assert run["capital"] == "5000" and len(run["equity"]) == written["config"]["candles"]
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines and all(line["strategy_id"] == "sma_crossover" for line in lines)
    assert sum(line["type"] == "POSITION_CLOSED" for line in lines) == len(run["trades"])


def test_stored_strategies_with_weights_over_a_period_trade_as_their_core_runs(tmp_path, make_strategy):
    btc = make_strategy("btc-sma", **SMA)
    make_strategy("gbp-rsi", strategy_class="rsi_mean_reversion", symbol="GBP/USD", rsi_period=14)
    result = tmp_path / "result.json"

    backtest("--strategy", "btc-sma:0.5", "--strategy", "gbp-rsi:0.3", "--from", "2022-01-03", "--to", "2022-01-04",
             "--capital", "20000", "--json", str(result))

    written = json.loads(result.read_text())
    assert {sid: s["capital"] for sid, s in written["strategies"].items()} == {"btc-sma": "10000", "gbp-rsi": "6000"}
    assert written["portfolio"]["cash"] == "4000"
    assert written["strategies"]["gbp-rsi"]["equity"] == [], "its shipped data is of 2012: nothing in the period"
    days = [c for c in load_candles("BTC/USD") if c.time.date().isoformat() in ("2022-01-03", "2022-01-04")]
    reference = ReferenceRun(btc).take(days)
    expected = sorted(p.opened_at.isoformat() for r in reference.store.results for p in r.positions if p.closed_at)
    assert sorted(t["entry_time"] for t in written["strategies"]["btc-sma"]["trades"]) == expected and expected


def test_a_csv_the_user_brings_is_resampled_to_the_timeframe_asked(tmp_path):
    data = tmp_path / "candles.csv"
    with gzip.open(DATASETS["BTC/USD"].path, "rt") as shipped:
        data.write_text("".join(line for _, line in zip(range(3001), shipped)))
    result = tmp_path / "result.json"

    backtest("--class", "sma_crossover", "--config", json.dumps(SMA), "--symbol", "XBT/EUR", "--timeframe", "15m",
             "--data", str(data), "--json", str(result))

    written = json.loads(result.read_text())
    # 3,000 minutes from 23:01 fill 15-minute buckets on the UTC clock: 23:00 (14 of them), 199 whole ones, 01:00.
    assert written["config"]["candles"] == 201
    assert written["strategies"]["sma_crossover"]["symbol"] == "XBT/EUR"


@pytest.mark.parametrize("args, message", [
    (["--strategy", "nobody:0.5"], "no strategy 'nobody'"),
    (["--class", "sma_crossover", "--symbol", "BTC/USD", "--weight", "1.5"], "weights: add up to 1.5, more than 1"),
    (["--class", "sma_crossover", "--symbol", "BTC/USD", "--config", '{"fast_period": 40}'], "slow_period"),
    (["--class", "sma_crossover", "--symbol", "DOGE/USD"], "no candles for DOGE/USD 1m"),
    ([], "give --strategy"),
])
def test_bad_input_is_refused_with_a_message_naming_it(args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(")):
        backtest(*args)
