"""Candles to the desk as the feed delivers them, in the test's own process: the live path, no worker."""

from __future__ import annotations


def feed(candles) -> None:
    """Each candle through `ingest_candle`, in order: stored, then its market advanced."""
    from tradeweb.desk import live

    for candle in candles:
        live.ingest_candle(candle.to_mapping())
