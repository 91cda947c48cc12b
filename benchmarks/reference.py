"""The independent reference the engine is held to: backtesting.py's SMA crossover, long only, all in on the cross
above and out on the cross below, filled at the next open, with one commission and no stops. The benchmark times
it and the reference-trades test compares trades with it."""

from __future__ import annotations

import pandas as pd
from backtesting import Strategy
from backtesting.lib import crossover

FAST, SLOW = 10, 30
COMMISSION = "0.002"


class SmaCross(Strategy):
    """backtesting.py's SMA crossover, long only: all in on the cross above, out on the cross below."""

    def init(self):
        close = pd.Series(self.data.Close)
        self.fast = self.I(lambda: close.rolling(FAST).mean())
        self.slow = self.I(lambda: close.rolling(SLOW).mean())

    def next(self):
        if crossover(self.fast, self.slow):
            if not self.position:
                self.buy()
        elif crossover(self.slow, self.fast):
            self.position.close()
