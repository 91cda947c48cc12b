"""Desk-wide loss limits in the live path: an account's equity (the sum of its strategies') is marked at
every candle a batch takes, against the account's `AccountLimit`.

A breach halts the account. Every strategy of it that takes a candle from then on is halted at that
candle with its own RISK_HALTED event (the ones in the breaching batch at once, the others at their
next candle: a strategy acts on nothing but candles, so none can enter in between). The account stays
halted until a user resumes it (`control.resume_account`).

Strategies of other markets count with the equity their rows hold (their last close). The limits row
is locked after the batch's strategy rows, as every writer of it does, so two markets of one account
take turns and never deadlock.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Iterable

from orchestrator.engine import StrategyOrchestrator
from orchestrator.loss_limits import AccountWatch, EquityMarks, LossLimits
from tradeweb.desk import models


def account_watch(row: models.AccountLimit) -> AccountWatch:
    """The core's watch over one account, as its row leaves it."""
    return AccountWatch(
        row.account, LossLimits(row.max_drawdown_pct, row.daily_loss_pct), EquityMarks.from_json(row.marks),
        row.halted_reason or None,
    )


class AccountWatches:
    """The limited accounts of one batch's strategies, marked candle by candle and saved with the batch."""

    def __init__(self, rows: list[models.AccountLimit]) -> None:
        self.rows = {row.account: row for row in rows}
        self.watches = {row.account: account_watch(row) for row in rows}
        # Every strategy of each account: its equity as stored (the latest of those in the batch replaces it).
        self.equity: dict[str, dict[str, Decimal]] = defaultdict(dict)
        self.capital: dict[str, Decimal] = defaultdict(Decimal)
        members = models.Strategy.objects.filter(account__in=list(self.rows)).values_list(
            "strategy_id", "account", "equity", "capital")
        for sid, account, equity, capital in members:
            self.equity[account][sid] = equity if equity is not None else capital
            self.capital[account] += capital

    def mark(self, time: datetime, used: dict[str, StrategyOrchestrator], took: Iterable[str]) -> None:
        """After the strategies in `took` processed the candle at `time`: mark each account, and halt those of
        its strategies that took it while the account is halted."""
        took = list(took)
        for account, watch in self.watches.items():
            members = self.equity[account]
            for sid in took:
                if sid in members and used[sid].marks.last is not None:
                    members[sid] = used[sid].marks.last
            if watch.mark(time, sum(members.values()), self.capital[account]) is not None:
                self.rows[account].halted_at = time
            if watch.halted is not None:
                for sid in took:
                    if sid in members:
                        used[sid].halt(watch.strategy_reason(), time)

    def save(self) -> None:
        """Write each account's marks and halt, in the batch's transaction."""
        for account, row in self.rows.items():
            watch = self.watches[account]
            row.marks = watch.marks.to_json()
            row.halted_reason = watch.halted or ""
            row.save(update_fields=["marks", "halted_reason", "halted_at"])


def watch_accounts(accounts: set[str]) -> AccountWatches | None:
    """The limits of these accounts, locked for the batch; None when none of them has any (one query)."""
    rows = list(models.AccountLimit.objects.select_for_update().filter(account__in=accounts).order_by("account"))
    return AccountWatches(rows) if rows else None
