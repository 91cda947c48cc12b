"""The ccxt candle feed, run through ccxt's own exchange classes over a fake HTTP transport.

Only the network is faked: ccxt builds the real request URL, `requests` carries it to a
transport adapter that answers with the exchange's documented kline/OHLC JSON, and ccxt
parses that answer as it would in production.
"""

from __future__ import annotations

import io
import json
import socket
from datetime import datetime, timezone
from decimal import Decimal
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import ccxt
import pytest
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from orchestrator.candles import Candle, CandleRejected
from orchestrator.ccxt_feed import CcxtCandleSource, ExchangeUnavailable

MINUTE_MS = 60_000


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2024, 3, 1, hour, minute, second, tzinfo=timezone.utc)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class FakeTransport(BaseAdapter):
    """A `requests` transport that answers from a script and remembers every URL it was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: list[tuple[int, str, str] | BaseException] = []
        self.urls: list[str] = []

    def reply_json(self, payload: Any, status: int = 200) -> None:
        self.answers.append((status, "application/json", json.dumps(payload)))

    def reply_text(self, text: str, status: int) -> None:
        self.answers.append((status, "text/html", text))

    def fail(self, error: BaseException) -> None:
        self.answers.append(error)

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        self.urls.append(request.url)
        if not self.answers:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        status, content_type, body = answer
        response = requests.Response()
        response.status_code = status
        response.reason = HTTPStatus(status).phrase
        response.headers = CaseInsensitiveDict({"Content-Type": content_type})
        response.raw = io.BytesIO(body.encode())
        response.url = request.url
        response.request = request
        return response

    def close(self) -> None:
        pass

    def query(self, index: int = -1) -> dict[str, str]:
        """The query string of a request the exchange made, as a flat dict."""
        return {key: values[0] for key, values in parse_qs(urlsplit(self.urls[index]).query).items()}


class Clock:
    """Stands in for the exchange's `milliseconds()`, so 'closed' does not depend on the wall clock."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def milliseconds(self) -> int:
        return ms(self.now)


def wire(source: CcxtCandleSource, markets: list[dict[str, Any]] | None, now: datetime) -> tuple[FakeTransport, Clock]:
    """Put a source's ccxt exchange on the fake transport and clock; with `markets`, ccxt skips loading them."""
    transport = FakeTransport()
    clock = Clock(now)
    source.exchange.session.mount("https://", transport)
    source.exchange.session.mount("http://", transport)
    source.exchange.milliseconds = clock.milliseconds
    # ccxt's rate limiter reads the same frozen clock, so it would sleep before every request.
    source.exchange.enableRateLimit = False
    if markets is not None:
        source.exchange.set_markets(markets)
    return transport, clock


BINANCE_BTC_USDT = {
    "id": "BTCUSDT", "symbol": "BTC/USDT", "base": "BTC", "quote": "USDT", "baseId": "BTC", "quoteId": "USDT",
    "type": "spot", "spot": True, "margin": False, "swap": False, "future": False, "option": False,
    "contract": False, "active": True,
}
KRAKEN_BTC_USD = {
    "id": "XXBTZUSD", "symbol": "BTC/USD", "base": "BTC", "quote": "USD", "baseId": "XXBT", "quoteId": "ZUSD",
    "type": "spot", "spot": True, "margin": False, "swap": False, "future": False, "option": False,
    "contract": False, "active": True,
}


def kline(open_time: datetime, open_: str, high: str, low: str, close: str, volume: str) -> list[Any]:
    """One row of binance `GET /api/v3/klines`."""
    start = ms(open_time)
    return [start, open_, high, low, close, volume, start + MINUTE_MS - 1, "1000.00000000", 42, "1.00000000", "2.00000000", "0"]


def kraken_ohlc(open_time: datetime, open_: str, high: str, low: str, close: str, volume: str) -> list[Any]:
    """One row of kraken `GET /0/public/OHLC`: seconds, o, h, l, c, vwap, volume, count."""
    return [int(open_time.timestamp()), open_, high, low, close, close, volume, 7]


def kraken_response(*rows: list[Any]) -> dict[str, Any]:
    return {"error": [], "result": {"XXBTZUSD": list(rows), "last": rows[-1][0] if rows else 0}}


@pytest.fixture(autouse=True)
def no_real_sockets(monkeypatch):
    """Any attempt to resolve or reach a host fails the test instead of touching the network."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"a test tried to reach the network: {args!r}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


@pytest.fixture
def binance():
    source = CcxtCandleSource.for_exchange("binance", "BTC/USDT", "1m")
    transport, clock = wire(source, [BINANCE_BTC_USDT], now=at(12, 3, 30))
    return source, transport, clock


@pytest.fixture
def kraken():
    source = CcxtCandleSource.for_exchange("kraken", "BTC/USD", "1m")
    transport, clock = wire(source, [KRAKEN_BTC_USD], now=at(12, 3, 30))
    return source, transport, clock


# --- closed candles, exactly as sent -------------------------------------------------------


def test_binance_closed_candles_come_back_with_the_exchange_prices_as_sent_and_the_forming_one_left_out(binance):
    source, transport, _ = binance
    transport.reply_json([
        kline(at(12, 0), "42000.10000000", "42010.00000000", "41990.50000000", "42005.00000000", "12.34567890"),
        kline(at(12, 1), "42005.00000000", "42020.00000000", "42000.00000000", "42015.25000000", "98765432.98765432"),
        kline(at(12, 2), "42015.25000000", "42030.00000000", "42010.00000000", "42020.00000000", "3.00000000"),
        kline(at(12, 3), "42020.00000000", "42025.00000000", "42019.00000000", "42021.00000000", "0.50000000"),
    ])

    candles = source.poll()

    assert candles == [
        {"symbol": "BTC/USDT", "timeframe": "1m", "time": "2024-03-01T12:00:00+00:00", "open": "42000.10000000",
         "high": "42010.00000000", "low": "41990.50000000", "close": "42005.00000000", "volume": "12.34567890"},
        {"symbol": "BTC/USDT", "timeframe": "1m", "time": "2024-03-01T12:01:00+00:00",
         "previous": "2024-03-01T12:00:00+00:00", "open": "42005.00000000",
         "high": "42020.00000000", "low": "42000.00000000", "close": "42015.25000000", "volume": "98765432.98765432"},
        {"symbol": "BTC/USDT", "timeframe": "1m", "time": "2024-03-01T12:02:00+00:00",
         "previous": "2024-03-01T12:01:00+00:00", "open": "42015.25000000",
         "high": "42030.00000000", "low": "42010.00000000", "close": "42020.00000000", "volume": "3.00000000"},
    ]
    assert urlsplit(transport.urls[0]).path == "/api/v3/klines"
    assert transport.query(0) == {"interval": "1m", "limit": "100", "symbol": "BTCUSDT"}


def test_a_candle_that_closes_exactly_now_is_returned(binance):
    source, transport, clock = binance
    clock.now = at(12, 3)
    transport.reply_json([
        kline(at(12, 2), "1.0", "1.0", "1.0", "1.0", "1.0"),
        kline(at(12, 3), "1.0", "1.0", "1.0", "1.0", "1.0"),
    ])

    assert [candle["time"] for candle in source.poll()] == ["2024-03-01T12:02:00+00:00"]


def test_kraken_closed_candles_come_back_with_the_exchange_prices_as_sent_and_the_forming_one_left_out(kraken):
    source, transport, _ = kraken
    transport.reply_json(kraken_response(
        kraken_ohlc(at(12, 1), "61000.0", "61050.5", "60990.0", "61020.1", "1.20000000"),
        kraken_ohlc(at(12, 2), "61020.1", "61030.0", "61000.0", "61005.0", "0.00000000"),
        kraken_ohlc(at(12, 3), "61005.0", "61006.0", "61004.0", "61005.5", "0.01000000"),
    ))

    candles = source.poll()

    assert candles == [
        {"symbol": "BTC/USD", "timeframe": "1m", "time": "2024-03-01T12:01:00+00:00", "open": "61000.0",
         "high": "61050.5", "low": "60990.0", "close": "61020.1", "volume": "1.20000000"},
        {"symbol": "BTC/USD", "timeframe": "1m", "time": "2024-03-01T12:02:00+00:00",
         "previous": "2024-03-01T12:01:00+00:00", "open": "61020.1",
         "high": "61030.0", "low": "61000.0", "close": "61005.0", "volume": "0.00000000"},
    ]
    assert urlsplit(transport.urls[0]).path == "/0/public/OHLC"
    assert transport.query(0) == {"pair": "XXBTZUSD", "interval": "1"}


def test_kraken_markets_loaded_by_ccxt_over_the_transport_lead_to_the_right_candle_request():
    source = CcxtCandleSource.for_exchange("kraken", "BTC/USD", "1m")
    transport, _ = wire(source, markets=None, now=at(12, 3, 30))
    transport.reply_json({"error": [], "result": {
        "XXBT": {"aclass": "currency", "altname": "XBT", "decimals": 10, "display_decimals": 5, "status": "enabled"},
        "ZUSD": {"aclass": "currency", "altname": "USD", "decimals": 4, "display_decimals": 2, "status": "enabled"},
    }})
    transport.reply_json({"error": [], "result": {"XXBTZUSD": {
        "altname": "XBTUSD", "wsname": "XBT/USD", "aclass_base": "currency", "base": "XXBT",
        "aclass_quote": "currency", "quote": "ZUSD", "lot": "unit", "cost_decimals": 5, "pair_decimals": 1,
        "lot_decimals": 8, "lot_multiplier": 1, "leverage_buy": [2, 3], "leverage_sell": [2, 3],
        "fees": [[0, 0.4]], "fees_maker": [[0, 0.25]], "fee_volume_currency": "ZUSD", "margin_call": 80,
        "margin_stop": 40, "ordermin": "0.0001", "costmin": "0.5", "tick_size": "0.1", "status": "online",
    }}})
    transport.reply_json(kraken_response(
        kraken_ohlc(at(12, 2), "61000.0", "61010.0", "60990.0", "61005.0", "1.50000000"),
        kraken_ohlc(at(12, 3), "61005.0", "61005.0", "61005.0", "61005.0", "0.10000000"),
    ))

    candles = source.poll()

    assert [urlsplit(url).path for url in transport.urls] == ["/0/public/Assets", "/0/public/AssetPairs", "/0/public/OHLC"]
    assert transport.query(2) == {"pair": "XXBTZUSD", "interval": "1"}
    assert [(candle["time"], candle["close"], candle["volume"]) for candle in candles] == [
        ("2024-03-01T12:02:00+00:00", "61005.0", "1.50000000"),
    ]


# --- polling again ---------------------------------------------------------------------------


def test_binance_second_poll_asks_from_one_millisecond_after_the_last_candle_and_returns_only_newer_ones(binance):
    source, transport, clock = binance
    transport.reply_json([
        kline(at(12, 1), "100.0", "101.0", "99.0", "100.5", "1.0"),
        kline(at(12, 2), "100.5", "102.0", "100.0", "101.0", "2.0"),
        kline(at(12, 3), "101.0", "101.5", "100.5", "101.2", "0.1"),
    ])
    assert [candle["time"] for candle in source.poll()] == ["2024-03-01T12:01:00+00:00", "2024-03-01T12:02:00+00:00"]

    clock.now = at(12, 5, 10)
    transport.reply_json([
        kline(at(12, 3), "101.0", "101.9", "100.5", "101.8", "4.0"),
        kline(at(12, 4), "101.8", "103.0", "101.7", "102.9", "5.0"),
        kline(at(12, 5), "102.9", "103.1", "102.8", "103.0", "0.2"),
    ])
    second = source.poll()

    assert transport.query(1)["startTime"] == str(ms(at(12, 2)) + 1)
    assert [(candle["time"], candle["close"]) for candle in second] == [
        ("2024-03-01T12:03:00+00:00", "101.8"),
        ("2024-03-01T12:04:00+00:00", "102.9"),
    ]


def test_a_poll_with_nothing_newly_closed_returns_nothing_and_keeps_its_place(binance):
    source, transport, clock = binance
    transport.reply_json([kline(at(12, 2), "1.0", "1.0", "1.0", "1.0", "1.0"), kline(at(12, 3), "1.0", "1.0", "1.0", "1.0", "1.0")])
    source.poll()

    clock.now = at(12, 3, 50)
    transport.reply_json([kline(at(12, 3), "1.0", "1.0", "1.0", "1.0", "1.0")])
    assert source.poll() == []

    clock.now = at(12, 4, 5)
    transport.reply_json([kline(at(12, 3), "1.0", "1.0", "1.0", "1.0", "1.0")])
    assert [candle["time"] for candle in source.poll()] == ["2024-03-01T12:03:00+00:00"]
    assert transport.query(1)["startTime"] == transport.query(2)["startTime"] == str(ms(at(12, 2)) + 1)


def test_kraken_second_poll_drops_the_overlap_kraken_sends_back(kraken):
    source, transport, clock = kraken
    transport.reply_json(kraken_response(
        kraken_ohlc(at(12, 2), "10.0", "10.0", "10.0", "10.0", "1.0"),
        kraken_ohlc(at(12, 3), "10.0", "10.0", "10.0", "10.0", "1.0"),
    ))
    source.poll()

    clock.now = at(12, 5, 1)
    # Kraken is asked from one candle earlier (ccxt's choice) and answers with the candles it already gave.
    transport.reply_json(kraken_response(
        kraken_ohlc(at(12, 1), "10.0", "10.0", "10.0", "10.0", "1.0"),
        kraken_ohlc(at(12, 2), "10.0", "10.0", "10.0", "10.0", "1.0"),
        kraken_ohlc(at(12, 3), "10.0", "10.5", "10.0", "10.5", "2.0"),
        kraken_ohlc(at(12, 4), "10.5", "11.0", "10.5", "11.0", "3.0"),
        kraken_ohlc(at(12, 5), "11.0", "11.0", "11.0", "11.0", "0.1"),
    ))
    second = source.poll()

    # ccxt turns since = 12:02:00.001 into kraken's whole seconds, minus one interval.
    assert transport.query(1)["since"] == str(int(at(12, 1).timestamp()))
    assert [(candle["time"], candle["close"]) for candle in second] == [
        ("2024-03-01T12:03:00+00:00", "10.5"),
        ("2024-03-01T12:04:00+00:00", "11.0"),
    ]


# --- what the ingest makes of them -------------------------------------------------------------


def test_returned_mappings_build_candles_with_the_exact_decimal_prices(binance):
    source, transport, _ = binance
    transport.reply_json([
        kline(at(12, 1), "0.00000987", "0.00000990", "0.00000980", "0.00000985", "123456789012.12345678"),
        kline(at(12, 2), "0.00000985", "0.00000986", "0.00000985", "0.00000986", "0.00000000"),
        kline(at(12, 3), "0.00000986", "0.00000986", "0.00000986", "0.00000986", "1.00000000"),
    ])

    candles = [Candle.from_mapping(mapping) for mapping in source.poll()]

    assert candles[0] == Candle(
        symbol="BTC/USDT", timeframe="1m", time=at(12, 1),
        open=Decimal("0.00000987"), high=Decimal("0.00000990"), low=Decimal("0.00000980"),
        close=Decimal("0.00000985"), volume=Decimal("123456789012.12345678"),
    )
    assert [candle.time for candle in candles] == [at(12, 1), at(12, 2)]


def test_a_row_with_high_below_low_is_passed_on_unchanged_for_the_ingest_to_reject(binance):
    source, transport, _ = binance
    transport.reply_json([
        kline(at(12, 1), "42000.00000000", "41000.00000000", "42500.00000000", "42000.00000000", "1.00000000"),
        kline(at(12, 2), "42000.00000000", "42100.00000000", "41900.00000000", "42050.00000000", "1.00000000"),
    ])

    bad, good = source.poll()

    assert (bad["time"], bad["high"], bad["low"]) == ("2024-03-01T12:01:00+00:00", "41000.00000000", "42500.00000000")
    with pytest.raises(CandleRejected, match="below open/close"):
        Candle.from_mapping(bad)
    assert Candle.from_mapping(good).time == at(12, 2)


# --- failures ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "ccxt_error"),
    [
        pytest.param((503, "<html>Service Unavailable</html>"), ccxt.ExchangeNotAvailable, id="http-503"),
        pytest.param((500, "<html>Internal Server Error</html>"), ccxt.ExchangeNotAvailable, id="http-500"),
        pytest.param(requests.exceptions.ReadTimeout("read timed out"), ccxt.RequestTimeout, id="timeout"),
        pytest.param(requests.exceptions.ConnectionError("connection refused"), ccxt.NetworkError, id="connection-error"),
    ],
)
def test_an_unreachable_exchange_raises_exchange_unavailable_naming_it(binance, answer, ccxt_error):
    source, transport, _ = binance
    if isinstance(answer, BaseException):
        transport.fail(answer)
    else:
        transport.reply_text(answer[1], status=answer[0])

    with pytest.raises(ExchangeUnavailable, match=r"^binance unreachable") as raised:
        source.poll()

    assert isinstance(raised.value.__cause__, ccxt_error)
    assert source.last_time is None


def test_binance_error_payload_raises_exchange_unavailable_with_the_exchange_reason(binance):
    source, transport, _ = binance
    transport.reply_json({"code": -1121, "msg": "Invalid symbol."}, status=400)

    with pytest.raises(ExchangeUnavailable, match=r"^binance refused fetch_ohlcv: BadSymbol: .*Invalid symbol\."):
        source.poll()


def test_kraken_error_payload_sent_with_http_200_raises_exchange_unavailable(kraken):
    source, transport, _ = kraken
    transport.reply_json({"error": ["EQuery:Invalid asset pair"]})

    with pytest.raises(ExchangeUnavailable, match=r"^kraken refused fetch_ohlcv: BadSymbol: .*Invalid asset pair"):
        source.poll()


def test_a_failed_poll_does_not_lose_the_place_of_the_next_one(binance):
    source, transport, clock = binance
    transport.reply_json([kline(at(12, 2), "1.0", "1.0", "1.0", "1.0", "1.0")])
    source.poll()
    clock.now = at(12, 4, 30)
    transport.fail(requests.exceptions.ConnectionError("connection reset"))
    with pytest.raises(ExchangeUnavailable):
        source.poll()

    clock.now = at(12, 5, 30)
    transport.reply_json([kline(at(12, 3), "1.0", "1.0", "1.0", "1.0", "1.0"), kline(at(12, 4), "1.0", "1.0", "1.0", "1.0", "1.0")])

    assert [candle["time"] for candle in source.poll()] == ["2024-03-01T12:03:00+00:00", "2024-03-01T12:04:00+00:00"]
    assert transport.query(2)["startTime"] == str(ms(at(12, 2)) + 1)


# --- building a source ---------------------------------------------------------------------------


@pytest.mark.parametrize("exchange_id", ["nope", "exchanges", "Exchange", "NetworkError"])
def test_for_exchange_refuses_a_name_that_is_not_a_ccxt_exchange(exchange_id):
    with pytest.raises(ExchangeUnavailable, match=repr(exchange_id)):
        CcxtCandleSource.for_exchange(exchange_id, "BTC/USDT", "1m")


def test_for_exchange_builds_the_named_ccxt_exchange():
    source = CcxtCandleSource.for_exchange("kraken", "BTC/USD", "1h")

    assert isinstance(source.exchange, ccxt.kraken)
    assert (source.symbol, source.timeframe, source.last_time) == ("BTC/USD", "1h", None)


@pytest.mark.parametrize("timeframe", ["2m", "1M", "", "1H"])
def test_an_unknown_timeframe_is_refused(timeframe):
    with pytest.raises(ValueError, match="unknown timeframe"):
        CcxtCandleSource(ccxt.binance(), "BTC/USDT", timeframe)


def test_the_socket_guard_stops_a_request_that_misses_the_fake_transport():
    source = CcxtCandleSource.for_exchange("binance", "BTC/USDT", "1m")
    source.exchange.set_markets([BINANCE_BTC_USDT])

    with pytest.raises(AssertionError, match="tried to reach the network"):
        source.poll()
