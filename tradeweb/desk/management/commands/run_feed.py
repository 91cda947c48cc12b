"""Replay shipped historical candles as if live, or poll an exchange through ccxt, into Celery."""

from __future__ import annotations

import logging
import time
from typing import Iterator

from django.core.management.base import BaseCommand, CommandError

from orchestrator.candles import TIMEFRAMES, Candle
from orchestrator.datasets import DATASETS, load_candles
from tradeweb.desk import models
from tradeweb.desk.tasks import process_candle

log = logging.getLogger(__name__)


def interleave(series: list[list[Candle]]) -> Iterator[list[Candle]]:
    """Step through several candle lists together: the i-th candle of each, then the next."""
    for step in range(max((len(s) for s in series), default=0)):
        yield [s[step] for s in series if step < len(s)]


class Command(BaseCommand):
    help = "Emit closed candles to the workers: a replay of shipped data (default) or a live ccxt poll."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--source", choices=["replay", "ccxt"], default="replay")
        parser.add_argument("--symbol", action="append", help="Symbol to feed; repeat for several. Default: every shipped dataset.")
        parser.add_argument("--timeframe", default="1m", choices=list(TIMEFRAMES))
        parser.add_argument("--speed", type=float, default=600.0, help="Replay speed: 600 sends a 1m candle every 0.1 s.")
        parser.add_argument("--limit", type=int, default=None, help="Stop after this many candles per symbol.")
        parser.add_argument("--exchange", default="binance", help="ccxt exchange id for --source ccxt.")
        parser.add_argument("--poll", type=float, default=10.0, help="Seconds between ccxt polls.")
        parser.add_argument(
            "--keep-alive", action="store_true",
            help="After the replay, stay running instead of exiting (a process runner such as honcho "
                 "stops the whole stack when one process exits).",
        )

    def handle(self, *args, **options) -> None:
        if options["speed"] <= 0:
            raise CommandError("--speed must be positive")
        if options["source"] == "ccxt":
            self.poll_exchange(options)
        else:
            self.replay(options)

    def replay(self, options) -> None:
        symbols = options["symbol"] or list(DATASETS)
        unknown = [s for s in symbols if s not in DATASETS]
        if unknown:
            raise CommandError(f"no shipped data for {', '.join(unknown)}; known: {', '.join(DATASETS)}")
        timeframe = options["timeframe"]
        series = []
        for symbol in symbols:
            # Resume after the last stored candle, so a restart neither repeats nor rejects history.
            last = (
                models.Candle.objects.filter(symbol=symbol, timeframe=timeframe)
                .order_by("-time").values_list("time", flat=True).first()
            )
            candles = load_candles(symbol, timeframe, start=last, limit=options["limit"])
            self.stdout.write(f"{symbol} {timeframe}: {len(candles)} candles to replay" + (f" after {last:%Y-%m-%d %H:%M}" if last else ""))
            series.append(candles)
        interval = TIMEFRAMES[timeframe].total_seconds() / options["speed"]
        sent = 0
        next_at = time.monotonic()
        for batch in interleave(series):
            for candle in batch:
                process_candle.delay(candle.to_mapping())
                sent += 1
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
        self.stdout.write(self.style.SUCCESS(f"replay finished: {sent} candles sent"))
        if options["keep_alive"]:
            self.stdout.write("the shipped data is used up; the desk stays open (Ctrl-C to stop)")
            self.stdout.flush()
            while True:
                time.sleep(3600)

    def poll_exchange(self, options) -> None:
        from orchestrator.ccxt_feed import CcxtCandleSource, ExchangeUnavailable

        symbols = options["symbol"] or []
        if not symbols:
            raise CommandError("--source ccxt needs at least one --symbol, e.g. --symbol BTC/USDT")
        sources = [CcxtCandleSource.for_exchange(options["exchange"], s, options["timeframe"]) for s in symbols]
        while True:
            for source in sources:
                try:
                    candles = source.poll()
                except ExchangeUnavailable as error:
                    log.warning("%s %s: %s; retrying in %ss", source.symbol, source.timeframe, error, options["poll"])
                    continue
                for candle in candles:
                    process_candle.delay(candle)
            time.sleep(options["poll"])
