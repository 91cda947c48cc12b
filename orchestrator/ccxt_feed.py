"""Closed candles from a real exchange through ccxt's fetch_ohlcv."""

from __future__ import annotations

from datetime import datetime, timezone

import ccxt

from typing import Any

from orchestrator.candles import TIMEFRAMES


class ExchangeUnavailable(RuntimeError):
    """The exchange could not be asked or refused the request; the message says which and why."""


class CcxtCandleSource:
    """Polls one market and returns only candles that have closed and were not returned before,
    each naming the one returned before it (`previous`).

    It sets the exchange to parse numbers as strings (ccxt's `number = str`), so prices reach
    the mapping exactly as the exchange sent them. Rows are returned as candle mappings,
    unvalidated: the ingest validates every candle from every feed the same way and reports
    a bad one as DATA_REJECTED.
    """

    def __init__(self, exchange: "ccxt.Exchange", symbol: str, timeframe: str, limit: int = 100) -> None:
        if timeframe not in TIMEFRAMES:
            raise ValueError(f"unknown timeframe {timeframe!r}; use one of {', '.join(TIMEFRAMES)}")
        # ccxt parses prices to float by default, which drops digits; str keeps the exchange's own text.
        exchange.number = str
        self.exchange = exchange
        self.symbol = symbol
        self.timeframe = timeframe
        self.limit = limit
        self.last_time: datetime | None = None

    @classmethod
    def for_exchange(cls, exchange_id: str, symbol: str, timeframe: str) -> "CcxtCandleSource":
        """A source on a public (keyless) ccxt exchange by id, e.g. 'binance'."""
        # Look the id up in ccxt's list: getattr alone would accept any ccxt attribute (errors, helpers).
        if exchange_id not in ccxt.exchanges:
            raise ExchangeUnavailable(f"ccxt has no exchange {exchange_id!r}")
        return cls(getattr(ccxt, exchange_id)({"enableRateLimit": True}), symbol, timeframe)

    def poll(self) -> list[dict[str, Any]]:
        """New closed candles as mappings, oldest first. Raises ExchangeUnavailable on network or exchange errors."""
        since = None if self.last_time is None else int(self.last_time.timestamp() * 1000) + 1
        try:
            rows = self.exchange.fetch_ohlcv(self.symbol, self.timeframe, since=since, limit=self.limit)
        except ccxt.NetworkError as error:
            raise ExchangeUnavailable(f"{self.exchange.id} unreachable: {type(error).__name__}: {error}") from error
        except ccxt.ExchangeError as error:
            raise ExchangeUnavailable(f"{self.exchange.id} refused fetch_ohlcv: {type(error).__name__}: {error}") from error
        now_ms = self.exchange.milliseconds()
        step_ms = int(TIMEFRAMES[self.timeframe].total_seconds() * 1000)
        candles: list[dict[str, Any]] = []
        for row in rows:
            if row[0] + step_ms > now_ms:
                continue  # the candle still forming: not closed, so not ours yet
            time = datetime.fromtimestamp(row[0] / 1000, tz=timezone.utc)
            if self.last_time is not None and time <= self.last_time:
                continue
            names = ("open", "high", "low", "close", "volume")
            candle = {"symbol": self.symbol, "timeframe": self.timeframe, "time": time.isoformat()}
            if self.last_time is not None:
                # The candle before it, as this exchange listed them: a break in the market is not a gap.
                candle["previous"] = self.last_time.isoformat()
            candle.update({name: (None if value is None else str(value)) for name, value in zip(names, row[1:6])})
            candles.append(candle)
            self.last_time = time
        return candles
