"""A backtest's progress as a bar of characters, drawn again only as each 1% of its candles is passed: `run_backtest`
reports at uneven counts (each candle, or from due candle to due candle), so a bar cannot wait for exact
multiples."""

from __future__ import annotations


class ProgressBar:
    """A bar of `width` characters over `total` candles."""

    __slots__ = ("total", "width", "_percent")

    def __init__(self, total: int, width: int = 30) -> None:
        self.total = total
        self.width = width
        self._percent = -1

    def redraw(self, done: int) -> str | None:
        """The bar after `done` candles ("[###....]") if a new 1% was passed since it was last drawn, or this is the
        last candle; None otherwise (and with no candles at all)."""
        total = self.total
        if not total:
            return None
        percent = done * 100 // total
        if percent <= self._percent and done != total:
            return None
        self._percent = percent
        filled = self.width * done // total
        return f"[{'#' * filled}{'.' * (self.width - filled)}]"
