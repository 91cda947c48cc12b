"""Real recorded candles shipped in data/, read with pandas and handed out as Candles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from orchestrator.candles import TIMEFRAMES, Candle, CandleRejected, to_decimal, to_utc

DATA_DIR = Path(__file__).resolve().parent.parent / "data"

PRICE_COLUMNS = ("open", "high", "low", "close")


@dataclass(frozen=True, slots=True)
class Dataset:
    """One file of real one-minute candles for one symbol, and where it came from."""

    symbol: str
    path: Path
    description: str
    source: str


NAUTILUS_TEST_DATA = "nautilus_trader test data (tests/test_data/)"

DATASETS: dict[str, Dataset] = {
    "BTC/USD": Dataset(
        symbol="BTC/USD",
        path=DATA_DIR / "btcusd-perp-1m-2022-01.csv.gz",
        description="BTC-PERP perpetual, FTX, Jan 2022",
        source=NAUTILUS_TEST_DATA,
    ),
    "GBP/USD": Dataset(
        symbol="GBP/USD",
        path=DATA_DIR / "gbpusd-bid-1m-2012-02.csv.gz",
        description="GBP/USD bid, FXCM, Feb 2012",
        source=NAUTILUS_TEST_DATA,
    ),
}


class UnknownDataset(KeyError):
    """A symbol with no dataset in DATASETS."""

    def __str__(self) -> str:
        # KeyError's own __str__ shows the repr of its argument, quotes and all.
        return str(self.args[0]) if self.args else ""


# Names a candle CSV may give its time column (case does not matter); a first column without a name counts too.
TIME_COLUMNS = ("timestamp", "time", "date", "datetime")


def read_candle_frame(path: Path | str) -> pd.DataFrame:
    """Read a candle CSV (plain or .gz) into float columns open, high, low, close, volume, indexed by UTC "time".

    The header names a time column (timestamp, time, date or datetime; or leaves the first column unnamed, as
    pandas writes an index) and open, high, low, close, optionally volume, in any case. Times may be dates,
    naive (taken as UTC) or carry an offset; a file without volume gets 0.0.
    """
    raw = pd.read_csv(path)
    raw.columns = [str(column).strip().lower() for column in raw.columns]
    if raw.columns[0].startswith("unnamed"):
        raw = raw.rename(columns={raw.columns[0]: "time"})
    time_column = next((column for column in TIME_COLUMNS if column in raw.columns), None)
    missing = ([] if time_column else ["timestamp"]) + [column for column in PRICE_COLUMNS if column not in raw.columns]
    if missing:
        raise CandleRejected(
            f"{path}: missing column(s) {', '.join(missing)}; "
            f"expected timestamp (or time, date, datetime),open,high,low,close[,volume]"
        )
    # utc=True reads naive stamps as UTC and converts offset stamps to UTC, so both files land the same.
    time = pd.DatetimeIndex(pd.to_datetime(raw[time_column], utc=True, format="ISO8601"), name="time")
    if not time.is_monotonic_increasing or not time.is_unique:
        raise CandleRejected(f"{path}: timestamps are not strictly increasing")
    frame = pd.DataFrame(
        {column: raw[column].to_numpy(dtype="float64") for column in PRICE_COLUMNS},
        index=time,
    )
    frame["volume"] = raw["volume"].to_numpy(dtype="float64") if "volume" in raw.columns else 0.0
    return frame


def resample_frame(frame: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """Aggregate one-minute candles into `timeframe` buckets, left-closed and left-labelled.

    Buckets with no minute in them (a market closed for the weekend) are dropped, not filled.
    """
    if timeframe not in TIMEFRAMES:
        raise CandleRejected(f"unknown timeframe {timeframe!r}; use one of {', '.join(TIMEFRAMES)}")
    if timeframe == "1m":
        return frame
    resampled = frame.resample(
        pd.Timedelta(TIMEFRAMES[timeframe]),
        closed="left",
        label="left",
        # Anchored to the Unix epoch so buckets sit on the UTC clock whatever the first row is.
        origin="epoch",
    ).agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    # An empty bucket sums its volume to 0.0 but has NaN prices, so the prices tell it apart.
    return resampled.dropna(subset=["open"])


def frame_to_candles(frame: pd.DataFrame, symbol: str, timeframe: str) -> list[Candle]:
    """Turn a candle frame into Candles, converting floats to Decimal and times to aware UTC datetimes."""
    columns = [frame[column].tolist() for column in (*PRICE_COLUMNS, "volume")]
    candles = []
    for time, open_, high, low, close, volume in zip(frame.index.to_pydatetime(), *columns):
        candles.append(
            Candle(
                symbol=symbol,
                timeframe=timeframe,
                time=time,
                open=to_decimal(open_, "open"),
                high=to_decimal(high, "high"),
                low=to_decimal(low, "low"),
                close=to_decimal(close, "close"),
                volume=to_decimal(volume, "volume"),
            )
        )
    return candles


def load_candles(
    symbol: str,
    timeframe: str = "1m",
    start: datetime | None = None,
    limit: int | None = None,
) -> list[Candle]:
    """Candles of a shipped dataset in `timeframe`, those after `start` (exclusive), at most `limit` of them."""
    dataset = DATASETS.get(symbol)
    if dataset is None:
        raise UnknownDataset(f"no dataset for symbol {symbol!r}; known symbols: {', '.join(DATASETS)}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")
    frame = resample_frame(read_candle_frame(dataset.path), timeframe)
    if start is not None:
        # Comparing a UTC index with a naive datetime raises in pandas; to_utc refuses it with a clearer message.
        frame = frame[frame.index > to_utc(start)]
    if limit is not None:
        frame = frame.iloc[:limit]
    return frame_to_candles(frame, symbol, timeframe)
