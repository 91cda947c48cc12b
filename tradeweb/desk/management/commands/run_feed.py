"""Replay shipped historical candles as if live, or poll an exchange through ccxt, into Celery."""

from __future__ import annotations

import logging
import time
from typing import Iterator

from django.core.management.base import BaseCommand, CommandError

from orchestrator.candles import TIMEFRAMES
from orchestrator.datasets import DATASETS, load_candles
from orchestrator.market_rules import feed_messages
from tradeweb.desk import models
from tradeweb.desk.delivery import CandleDelivery
from tradeweb.desk.tasks import process_candle

log = logging.getLogger(__name__)


def interleave(series: list[list[dict]]) -> Iterator[list[dict]]:
    """Step through several lists of candle messages together: the i-th of each, then the next."""
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
            "--resend-after", type=float, default=10.0,
            help="Seconds after which a candle not yet stored and processed is sent again.",
        )
        parser.add_argument(
            "--max-in-flight", type=int, default=1000,
            help="Candles sent but not yet processed before the feed waits for the workers.",
        )
        parser.add_argument(
            "--wait", type=float, default=60.0,
            help="After the replay, seconds to wait for the last candles to be processed before exiting.",
        )
        parser.add_argument(
            "--keep-alive", action="store_true",
            help="After the replay, stay running instead of exiting (a process runner such as honcho "
                 "stops the whole stack when one process exits).",
        )

    def handle(self, *args, **options) -> None:
        if options["speed"] <= 0:
            raise CommandError("--speed must be positive")
        self.delivery = CandleDelivery(process_candle.delay, resend_after=options["resend_after"])
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
            # Each message names the candle before it, so the market's own breaks are not taken for gaps.
            series.append(list(feed_messages(candles, previous=last)))
        interval = TIMEFRAMES[timeframe].total_seconds() / options["speed"]
        sent = 0
        next_at = checked_at = time.monotonic()
        for batch in interleave(series):
            for message in batch:
                self.delivery.send(message)
                sent += 1
            if time.monotonic() - checked_at >= 1.0:
                self.delivery.check()
                checked_at = time.monotonic()
            while len(self.delivery.pending) >= options["max_in_flight"] and self.delivery.check():
                time.sleep(0.2)  # the workers are behind: wait for them rather than pile up messages
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
        self.stdout.write(self.style.SUCCESS(f"replay finished: {sent} candles sent"))
        if options["keep_alive"]:
            self.stdout.write("the shipped data is used up; the desk stays open (Ctrl-C to stop)")
            self.stdout.flush()
            while True:
                self.delivery.check()
                time.sleep(1.0)
        pending = self.delivery.wait(options["wait"])
        if pending:
            self.stderr.write(f"{pending} candles were not processed within {options['wait']:g}s; run the feed again to resend them")

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
                    self.delivery.send(candle)
            self.delivery.check()
            time.sleep(options["poll"])
