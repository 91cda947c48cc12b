"""The shipped real-candle datasets: reading, resampling and conversion to Candles."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.candles import TIMEFRAMES, CandleRejected
from orchestrator.datasets import (
    DATASETS,
    UnknownDataset,
    frame_to_candles,
    load_candles,
    read_candle_frame,
    resample_frame,
)

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
UTC = timezone.utc


@pytest.fixture(scope="module")
def btc_frame() -> pd.DataFrame:
    return read_candle_frame(DATASETS["BTC/USD"].path)


@pytest.fixture(scope="module")
def gbp_frame() -> pd.DataFrame:
    return read_candle_frame(DATASETS["GBP/USD"].path)


def test_datasets_point_at_the_files_in_the_repository_data_folder():
    assert set(DATASETS) == {"BTC/USD", "GBP/USD"}
    for symbol, dataset in DATASETS.items():
        assert dataset.symbol == symbol
        assert dataset.path.parent == REPOSITORY_ROOT / "data"
        assert dataset.path.is_file()
        assert dataset.source == "nautilus_trader test data (tests/test_data/)"


@pytest.mark.parametrize(("symbol", "rows"), [("BTC/USD", 45_031), ("GBP/USD", 30_117)])
def test_frame_has_one_row_per_line_of_the_file(symbol, rows):
    assert len(read_candle_frame(DATASETS[symbol].path)) == rows


@pytest.mark.parametrize("symbol", ["BTC/USD", "GBP/USD"])
def test_frame_has_a_utc_time_index_and_float_ohlcv_columns(symbol):
    frame = read_candle_frame(DATASETS[symbol].path)
    assert frame.index.name == "time"
    assert str(frame.index.tz) == "UTC"
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert (frame.dtypes == "float64").all()
    assert frame.index.is_monotonic_increasing and frame.index.is_unique


def test_naive_btc_timestamps_are_read_as_utc(btc_frame):
    assert btc_frame.index[0] == pd.Timestamp("2021-12-31 23:01", tz="UTC")
    assert btc_frame.index[-1] == pd.Timestamp("2022-02-01 05:31", tz="UTC")
    assert btc_frame.iloc[0].to_dict() == {
        "open": 46319.0, "high": 46385.0, "low": 46319.0, "close": 46377.0, "volume": 2300413.7295,
    }


def test_offset_gbp_timestamps_are_read_as_utc_with_zero_volume(gbp_frame):
    assert gbp_frame.index[0] == pd.Timestamp("2012-02-01 00:00", tz="UTC")
    assert gbp_frame.iloc[0]["close"] == 1.57576
    assert (gbp_frame["volume"] == 0.0).all()


def test_read_candle_frame_names_missing_columns(tmp_path):
    path = tmp_path / "no-close.csv"
    path.write_text("timestamp,open,high,low\n2024-01-01 00:00:00,1,2,0.5\n")
    with pytest.raises(CandleRejected, match="missing column.*close"):
        read_candle_frame(path)


def test_read_candle_frame_rejects_times_out_of_order(tmp_path):
    path = tmp_path / "backwards.csv"
    path.write_text(
        "timestamp,open,high,low,close\n"
        "2024-01-01 00:01:00,1,1,1,1\n"
        "2024-01-01 00:00:00,1,1,1,1\n"
    )
    with pytest.raises(CandleRejected, match="not strictly increasing"):
        read_candle_frame(path)


def test_one_minute_resample_returns_the_frame_itself(btc_frame):
    assert resample_frame(btc_frame, "1m") is btc_frame


def test_resample_rejects_an_unknown_timeframe(btc_frame):
    with pytest.raises(CandleRejected, match="unknown timeframe '7m'"):
        resample_frame(btc_frame, "7m")


def test_first_five_minute_buckets_aggregate_their_minutes(btc_frame):
    resampled = resample_frame(btc_frame, "5m")
    # The file starts at 23:01, so the first bucket is 23:00 and holds four minutes.
    assert resampled.index[0] == pd.Timestamp("2021-12-31 23:00", tz="UTC")
    for bucket_start in resampled.index[:6]:
        minutes = btc_frame[(btc_frame.index >= bucket_start) & (btc_frame.index < bucket_start + pd.Timedelta(minutes=5))]
        bucket = resampled.loc[bucket_start]
        assert bucket["open"] == minutes["open"].iloc[0]
        assert bucket["high"] == minutes["high"].max()
        assert bucket["low"] == minutes["low"].min()
        assert bucket["close"] == minutes["close"].iloc[-1]
        assert bucket["volume"] == pytest.approx(minutes["volume"].sum(), rel=1e-12)
    assert list(resampled.index[:3]) == [
        pd.Timestamp("2021-12-31 23:00", tz="UTC"),
        pd.Timestamp("2021-12-31 23:05", tz="UTC"),
        pd.Timestamp("2021-12-31 23:10", tz="UTC"),
    ]


@pytest.mark.parametrize("timeframe", [timeframe for timeframe in TIMEFRAMES if timeframe != "1m"])
@pytest.mark.parametrize("symbol", ["BTC/USD", "GBP/USD"])
def test_resampled_buckets_are_exactly_the_ones_that_hold_a_minute(symbol, timeframe):
    frame = read_candle_frame(DATASETS[symbol].path)
    resampled = resample_frame(frame, timeframe)
    # Buckets are left-labelled on the UTC clock: a minute belongs to the bucket its time floors to.
    assert list(resampled.index) == list(frame.index.floor(pd.Timedelta(TIMEFRAMES[timeframe])).unique())
    assert not resampled.isna().any().any()
    assert resampled["volume"].sum() == pytest.approx(frame["volume"].sum(), rel=1e-12)


def test_gbp_weekend_gap_leaves_no_empty_buckets(gbp_frame):
    resampled = resample_frame(gbp_frame, "1h")
    gaps = resampled.index.to_series().diff().dropna()
    # The market closes Friday evening and reopens Sunday evening: some gaps must span a weekend.
    assert gaps.max() > pd.Timedelta(days=1)
    assert not resampled.isna().any().any()
    assert (resampled.index.day_of_week != 5).all()  # nothing trades on a Saturday


def test_frame_to_candles_keeps_the_shortest_decimal_of_each_float(gbp_frame):
    candles = frame_to_candles(gbp_frame.iloc[:2], "GBP/USD", "1m")
    first = candles[0]
    assert (first.open, first.high, first.low, first.close) == (
        Decimal("1.57597"), Decimal("1.57606"), Decimal("1.57576"), Decimal("1.57576"),
    )
    assert first.volume == 0
    assert first.time == datetime(2012, 2, 1, tzinfo=UTC)
    assert (first.symbol, first.timeframe) == ("GBP/USD", "1m")


@pytest.mark.parametrize(("symbol", "rows"), [("BTC/USD", 45_031), ("GBP/USD", 30_117)])
def test_loaded_candles_are_utc_aware_and_strictly_increasing(symbol, rows):
    candles = load_candles(symbol)
    assert len(candles) == rows
    assert all(candle.time.utcoffset() == timedelta(0) for candle in candles)
    assert all(earlier.time < later.time for earlier, later in zip(candles, candles[1:]))


def test_loaded_resampled_candles_carry_the_bucket_values(btc_frame):
    candles = load_candles("BTC/USD", "15m", limit=2)
    expected = resample_frame(btc_frame, "15m").iloc[1]
    second = candles[1]
    assert second.timeframe == "15m"
    assert second.time == datetime(2021, 12, 31, 23, 15, tzinfo=UTC)
    assert second.close == Decimal(str(expected["close"]))
    assert second.high == Decimal(str(expected["high"]))


def test_unknown_symbol_raises_unknown_dataset_listing_the_known_symbols():
    with pytest.raises(UnknownDataset) as raised:
        load_candles("ETH/USD")
    assert isinstance(raised.value, KeyError)
    assert str(raised.value) == "no dataset for symbol 'ETH/USD'; known symbols: BTC/USD, GBP/USD"


def test_start_keeps_only_candles_after_it():
    start = datetime(2012, 2, 10, 12, 0, tzinfo=UTC)
    candles = load_candles("GBP/USD", "1h", start=start)
    assert candles[0].time == datetime(2012, 2, 10, 13, 0, tzinfo=UTC)
    assert all(candle.time > start for candle in candles)


def test_start_may_be_given_in_any_timezone():
    in_utc = load_candles("GBP/USD", "1h", start=datetime(2012, 2, 10, 12, 0, tzinfo=UTC), limit=3)
    in_new_york = load_candles(
        "GBP/USD", "1h", start=datetime(2012, 2, 10, 7, 0, tzinfo=timezone(timedelta(hours=-5))), limit=3
    )
    assert in_new_york == in_utc


def test_naive_start_is_rejected():
    with pytest.raises(CandleRejected, match="no timezone"):
        load_candles("BTC/USD", start=datetime(2022, 1, 10))


def test_limit_caps_the_count_from_the_first_candle():
    candles = load_candles("BTC/USD", "5m", limit=10)
    assert len(candles) == 10
    assert candles[0].time == datetime(2021, 12, 31, 23, 0, tzinfo=UTC)
    assert candles[-1].time == datetime(2021, 12, 31, 23, 45, tzinfo=UTC)


def test_start_and_limit_together_give_the_next_page():
    first_page = load_candles("BTC/USD", limit=5)
    next_page = load_candles("BTC/USD", start=first_page[-1].time, limit=5)
    assert [candle.time for candle in next_page] == [first_page[-1].time + timedelta(minutes=n) for n in range(1, 6)]


def test_negative_limit_is_rejected():
    with pytest.raises(ValueError, match="limit must not be negative"):
        load_candles("BTC/USD", limit=-1)


def test_a_csv_a_user_brings_may_name_its_columns_as_other_tools_write_them(tmp_path):
    dated = tmp_path / "daily.csv"
    dated.write_text(",Open,High,Low,Close,Volume\n2004-08-19,100,104.06,95.96,100.34,22351900\n"
                     "2004-08-20,101.01,109.08,100.5,108.31,11428600\n")
    timed = tmp_path / "hourly.csv"
    timed.write_text("Date,open,high,low,close\n2017-04-19 09:00:00,1.0716,1.0722,1.07083,1.07219\n")

    daily, hourly = read_candle_frame(dated), read_candle_frame(timed)

    assert [str(t) for t in daily.index] == ["2004-08-19 00:00:00+00:00", "2004-08-20 00:00:00+00:00"]
    assert daily.iloc[1]["close"] == 108.31 and daily.iloc[0]["volume"] == 22351900
    assert str(hourly.index[0]) == "2017-04-19 09:00:00+00:00" and hourly.iloc[0]["volume"] == 0.0
