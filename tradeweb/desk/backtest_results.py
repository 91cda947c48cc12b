"""A backtest's result as JSON, and stored as a `BacktestRun`: the same shape for `manage.py backtest --json`,
the results pages and their exports."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from orchestrator.backtest import BacktestResult
from orchestrator.config import config_to_json
from orchestrator.events import decimal_text
from orchestrator.exit_reasons import exit_reasons, reason_counts
from orchestrator.metrics import Metrics
from orchestrator.orders import OrderIntent
from tradeweb.desk import models


def metrics_json(m: Metrics) -> dict:
    return {
        "total_return": m.total_return, "cagr": m.cagr, "volatility": m.volatility, "sharpe": m.sharpe,
        "sortino": m.sortino, "calmar": m.calmar, "max_drawdown": m.max_drawdown,
        "max_drawdown_duration_seconds": m.max_drawdown_duration.total_seconds(), "trades": m.trades,
        "win_rate": m.win_rate, "profit_factor": m.profit_factor, "expectancy": decimal_text(m.expectancy),
        "average_win": decimal_text(m.average_win), "average_loss": decimal_text(m.average_loss),
        "exposure": m.exposure, "fees": decimal_text(m.fees),
    }


def result_json(result: BacktestResult) -> dict:
    """Everything a run gives, for other tools: config, metrics, every trade, every equity curve."""
    metrics = result.metrics()
    spec = result.spec
    strategies = {}
    for sid, run in result.runs.items():
        allocation = run.allocation
        exits: dict[str, list] = {}
        for fill in (f for r in run.store.results for f in r.fills if f.intent is OrderIntent.CLOSE):
            exits.setdefault(fill.position_id, []).append(fill)
        final = {p.position_id: p for r in run.store.results for p in r.positions}
        reasons = exit_reasons((f for r in run.store.results for f in r.fills), (o for r in run.store.results for o in r.orders))
        strategies[sid] = {
            "class": allocation.strategy.name, "config": config_to_json(allocation.strategy.config),
            "symbol": allocation.symbol, "timeframe": allocation.timeframe, "weight": decimal_text(allocation.weight),
            "capital": decimal_text(run.capital), "metrics": metrics_json(metrics[sid]),
            "trades": [
                {"position_id": p.position_id, "side": str(p.side), "quantity": decimal_text(p.initial_quantity),
                 "entry_time": p.opened_at.isoformat(), "entry_price": decimal_text(p.entry_price),
                 "exit_time": p.closed_at.isoformat(), "exit_price": decimal_text(exit_price(exits[p.position_id])),
                 "fees": decimal_text(p.fees), "pnl": decimal_text(p.realized_pnl),
                 "exit_reason": reasons[p.position_id]}
                for p in final.values() if p.closed_at is not None
            ],
            "equity": [[t.isoformat(), decimal_text(e)] for t, e in run.equity],
        }
    return {
        "config": {"capital": decimal_text(spec.capital), "from": spec.start.isoformat() if spec.start else None,
                   "to": spec.end.isoformat() if spec.end else None, "candles": result.candles},
        "portfolio": {"metrics": metrics_json(metrics["portfolio"]), "cash": decimal_text(result.cash),
                      "equity": [[t.isoformat(), decimal_text(e)] for t, e in result.equity]},
        "strategies": strategies,
    }


def exit_price(closing: list) -> Decimal | None:
    """The quantity-weighted price of a position's closing fills."""
    quantity = sum((f.quantity for f in closing), Decimal(0))
    return sum((f.price * f.quantity for f in closing), Decimal(0)) / quantity if quantity else None


def store_run(
    result: BacktestResult, user: AbstractBaseUser | None = None, run: models.BacktestRun | None = None,
) -> models.BacktestRun:
    """Store a finished backtest, its portfolio and every strategy's part, in one transaction: into `run` (a
    queued run's row, which its worker fills) or a new row."""
    data = result_json(result)
    with transaction.atomic():
        if run is None:
            run = models.BacktestRun(created_by=user)
        run.status = models.BacktestRun.Status.DONE
        run.spec, run.portfolio = data["config"], data["portfolio"]
        run.candles_done = run.candles_total = result.candles
        run.finished_at = datetime.now(timezone.utc)
        run.save()
        models.BacktestStrategyResult.objects.bulk_create(
            models.BacktestStrategyResult(run=run, strategy_id=sid, result=part) for sid, part in data["strategies"].items()
        )
    return run


# The trade list's columns: as exported, and those a user may sort the results page by.
TRADE_COLUMNS = (
    "position_id", "side", "quantity", "entry_time", "entry_price", "exit_time", "exit_price", "fees", "pnl", "exit_reason",
)
TRADE_SORTS = ("strategy_id", "entry_time", "exit_time", "side", "pnl", "fees", "exit_reason")


def page(run: models.BacktestRun, sort: str, descending: bool) -> dict:
    """What a results page shows: the strategies and the portfolio compared, every trade sorted, every curve."""
    parts = list(run.strategies.all())
    trades = sorted(
        ({"strategy_id": part.strategy_id, **trade} for part in parts for trade in part.result["trades"]),
        key=lambda trade: Decimal(trade[sort]) if sort in ("pnl", "fees") else trade.get(sort, ""),
        reverse=descending,
    )
    compared = [(part.strategy_id, part.result["metrics"]) for part in parts]
    compared.append(("portfolio", run.portfolio.get("metrics", {})))
    curves = {"portfolio": run.portfolio.get("equity", [])} | {part.strategy_id: part.result["equity"] for part in parts}
    return {"run": run, "parts": parts, "compared": compared, "trades": trades, "sort": sort,
            "descending": descending, "sorts": TRADE_SORTS, "curves": curves,
            "reason_counts": reason_counts(trade.get("exit_reason") for trade in trades)}


def stored_json(run: models.BacktestRun) -> dict:
    """A stored run in the shape `result_json` gives."""
    return {"config": run.spec, "portfolio": run.portfolio,
            "strategies": {part.strategy_id: part.result for part in run.strategies.all()}}


def trades_csv(run: models.BacktestRun) -> str:
    """Every trade of a stored run, one CSV row each."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["strategy_id", *TRADE_COLUMNS])
    for part in run.strategies.all():
        for trade in part.result["trades"]:
            # Runs stored before exit reasons were recorded have none.
            writer.writerow([part.strategy_id, *(trade.get(column, "") for column in TRADE_COLUMNS)])
    return out.getvalue()
