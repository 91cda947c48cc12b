"""Backtest a portfolio of strategies from the terminal, on the live engine (`orchestrator.backtest`).

Strategies come from the database (`--strategy ID:WEIGHT`, repeatable) or from a class and a config
(`--class sma_crossover --config '{...}' --symbol BTC/USD --timeframe 1h`). Candles are the desk's stored
candles of each market in the period, else the shipped dataset of its symbol, or a CSV the user brings
(`--data FILE.csv`, resampled to the strategy's timeframe). The end is a comparison table; `--json PATH`
writes the whole result and `--log PATH` every decision as JSON lines.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from orchestrator.backtest import BacktestResult, InvalidBacktest, run_backtest
from orchestrator.candles import CandleRejected
from orchestrator.metrics import Metrics
from orchestrator.progress_bar import ProgressBar
from tradeweb.desk.backtest_requests import BacktestRequest, PortfolioPart, build_spec, candle_streams
from tradeweb.desk.backtest_results import result_json, store_run

BAR = 30  # characters of the progress bar


def utc_day(text: str) -> datetime:
    """A --from/--to date (YYYY-MM-DD, or a full ISO time; naive means UTC)."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class Command(BaseCommand):
    help = "Backtest strategies (by id with a weight, or by class and config) on stored, shipped or given candles."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--strategy", action="append", default=[], metavar="ID:WEIGHT",
                            help="A stored strategy and its share of the capital; repeat for a portfolio.")
        parser.add_argument("--class", dest="strategy_class", help="A strategy class, without a stored strategy.")
        parser.add_argument("--config", default="{}", help="Its config as JSON (with --class).")
        parser.add_argument("--symbol", help="Its symbol (with --class).")
        parser.add_argument("--timeframe", default="1m", help="Its timeframe (with --class).")
        parser.add_argument("--weight", default="1", help="Its share of the capital (with --class).")
        parser.add_argument("--from", dest="start", type=utc_day, help="First day (UTC), included.")
        parser.add_argument("--to", dest="end", type=utc_day, help="Last day (UTC), included.")
        parser.add_argument("--capital", default="10000", help="Capital of the whole portfolio.")
        parser.add_argument("--fee", help="Fee rate for every strategy (instead of each config's).")
        parser.add_argument("--slippage", help="Slippage for every strategy (instead of each config's).")
        parser.add_argument("--data", type=Path, help="An OHLCV CSV to backtest on instead (see the README).")
        parser.add_argument("--json", dest="json_path", type=Path, help="Write the whole result here as JSON.")
        parser.add_argument("--log", dest="log_path", type=Path, help="Write every decision here as JSON lines.")
        parser.add_argument("--save", action="store_true", help="Store the run: its results page shows it.")

    def handle(self, *args, **options) -> None:
        try:
            request = BacktestRequest(
                self.parts(options), Decimal(options["capital"]), options["start"],
                options["end"] + timedelta(days=1) if options["end"] is not None else None,
                Decimal(options["fee"]) if options["fee"] else None,
                Decimal(options["slippage"]) if options["slippage"] else None,
            )
        except (InvalidOperation, ValueError) as error:
            raise CommandError(str(error) or "invalid number") from None
        try:
            spec = build_spec(request)
            streams = candle_streams(spec, options["data"])
            bar = ProgressBar(sum(len(c) for c in streams.values()), BAR)
            result = run_backtest(spec, streams, progress=lambda done: self.progress(done, bar))
        except (InvalidBacktest, CandleRejected) as error:
            raise CommandError(str(error)) from None
        self.stdout.write("")
        self.stdout.write(comparison_table(result.metrics()))
        if options["json_path"]:
            options["json_path"].write_text(json.dumps(result_json(result), indent=1))
            self.stdout.write(f"result written to {options['json_path']}")
        if options["save"]:
            run = store_run(result)
            self.stdout.write(f"stored as backtest {run.pk}: /backtests/{run.pk}/")
        if options["log_path"]:
            with options["log_path"].open("w") as log:
                for line in decision_lines(result):
                    log.write(json.dumps(line) + "\n")
            self.stdout.write(f"decisions written to {options['log_path']}")

    def parts(self, options) -> tuple[PortfolioPart, ...]:
        """The portfolio as asked: stored strategies by id and weight, or one class with its config."""
        parts = []
        for item in options["strategy"]:
            strategy_id, _, weight = item.partition(":")
            parts.append(PortfolioPart(strategy_id, Decimal(weight or "1")))
        if options["strategy_class"]:
            if not options["symbol"]:
                raise CommandError("--class needs --symbol")
            try:
                config = json.loads(options["config"])
            except ValueError:
                raise CommandError("--config is not valid JSON") from None
            parts.append(PortfolioPart(options["strategy_class"], Decimal(options["weight"]), options["strategy_class"],
                                       config, options["symbol"], options["timeframe"]))
        if not parts:
            raise CommandError("give --strategy ID:WEIGHT (repeatable) or --class with --symbol")
        return tuple(parts)

    def progress(self, done: int, bar: ProgressBar) -> None:
        """The bar on the terminal, redrawn as each 1% of the candles is passed."""
        drawn = bar.redraw(done)
        if drawn is not None:
            self.stdout.write(f"\r{drawn} {done:,} candles", ending="")
            sys.stdout.flush()


COLUMNS = ("return", "CAGR", "Sharpe", "Sortino", "max DD", "trades", "win rate", "profit f.", "fees")


def comparison_table(metrics: dict[str, Metrics]) -> str:
    """The strategies and the portfolio side by side."""

    def ratio(value: float | None, form: str) -> str:
        return "-" if value is None else format(value, form)

    rows = [
        (name, ratio(m.total_return, ".2%"), ratio(m.cagr, ".2%"), ratio(m.sharpe, ".2f"), ratio(m.sortino, ".2f"),
         ratio(m.max_drawdown, ".2%"), str(m.trades), ratio(m.win_rate, ".1%"), ratio(m.profit_factor, ".2f"),
         f"{m.fees:.2f}")
        for name, m in metrics.items()
    ]
    header = ("strategy", *COLUMNS)
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
                     for row in [header, *rows])


def decision_lines(result: BacktestResult):
    """Every event of every strategy as one JSON object, in time order (strategy_id on each; empty on the
    portfolio's CONFLICT_DETECTED events, which name the strategies involved)."""
    events = sorted([*(e for run in result.runs.values() for e in run.publisher.events), *result.conflicts],
                    key=lambda e: (e.time, e.strategy_id, e.sequence))
    return (e.to_mapping() for e in events)
