"""Loss limits: drawdown from peak equity and loss since the UTC day began, marked close by close, for one
strategy (its risk rules) or for every strategy of an account together (`AccountWatch`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

from orchestrator.events import decimal_text


EARLIEST = datetime.min.replace(tzinfo=timezone.utc)


@dataclass(slots=True)
class EquityMarks:
    """The highest equity seen, the equity the current UTC day started from (the one at the last close
    before it), and the last equity marked."""

    peak: Decimal | None = None
    day: date | None = None
    day_start: Decimal | None = None
    last: Decimal | None = None
    # Where `day` begins and ends (not saved: they follow from `day`), so a close of the same day is told by
    # two comparisons, without making a date.
    day_begins: datetime = field(default=EARLIEST, compare=False, repr=False)
    day_ends: datetime = field(default=EARLIEST, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.day is not None:
            self._bound_day()

    def _bound_day(self) -> None:
        self.day_begins = datetime.combine(self.day, time(), timezone.utc)
        self.day_ends = self.day_begins + timedelta(days=1)

    def mark(self, at: datetime, equity: Decimal, start: Decimal) -> None:
        """Mark `equity` at the close at `at`; `start` is the equity before the first mark."""
        if not self.day_begins <= at < self.day_ends:
            self.day = at.date()
            self.day_start = self.last if self.last is not None else start
            self._bound_day()
        self.last = equity
        peak = self.peak if self.peak is not None else start
        self.peak = equity if equity > peak else peak

    def restart_from(self, equity: Decimal) -> None:
        """Measure drawdown, and the loss of the rest of the day, from `equity` on (a halt was lifted)."""
        self.peak = self.day_start = equity

    def to_json(self) -> dict:
        return {
            "peak_equity": decimal_text(self.peak),
            "day": self.day.isoformat() if self.day else None,
            "day_start_equity": decimal_text(self.day_start),
            "last_equity": decimal_text(self.last),
        }

    @classmethod
    def from_json(cls, data: dict, shift: Decimal = Decimal(0)) -> EquityMarks:
        """Marks saved by `to_json`, each moved by `shift` (a capital that changed since)."""

        def amount(text: str | None) -> Decimal | None:
            return Decimal(text) + shift if text is not None else None

        day = data.get("day")
        return cls(amount(data.get("peak_equity")), date.fromisoformat(day) if day else None,
                   amount(data.get("day_start_equity")), amount(data.get("last_equity")))


@dataclass(frozen=True, slots=True)
class LossLimits:
    """Fractions of the peak equity and of the day's first equity that may be lost (None: no limit)."""

    max_drawdown_pct: Decimal | None = None
    daily_loss_pct: Decimal | None = None

    def breach(self, equity: Decimal, peak: Decimal, day_start: Decimal) -> str | None:
        """Why `equity` is past a limit, or None while it is within them."""
        if self.max_drawdown_pct is not None and peak > 0 and (peak - equity) / peak >= self.max_drawdown_pct:
            return f"drawdown {(peak - equity) / peak:.2%} from peak equity {peak:.2f} reached the limit of {self.max_drawdown_pct:.2%}"
        if self.daily_loss_pct is not None and day_start > 0 and (day_start - equity) / day_start >= self.daily_loss_pct:
            return f"loss {(day_start - equity) / day_start:.2%} since the UTC day began reached the limit of {self.daily_loss_pct:.2%}"
        return None


@dataclass(slots=True)
class AccountWatch:
    """An account's equity (the sum of its strategies'), marked against the account's limits. The first
    breach halts the account: every strategy of it stops entering until a user resumes the account."""

    account: str
    limits: LossLimits
    marks: EquityMarks
    halted: str | None = None

    def mark(self, time: datetime, equity: Decimal, start: Decimal) -> str | None:
        """Mark the account's equity at a close (`start`: its strategies' capital, before the first mark);
        returns the reason when this mark halts the account."""
        self.marks.mark(time, equity, start)
        if self.halted is not None:
            return None
        self.halted = self.limits.breach(equity, self.marks.peak, self.marks.day_start)
        return self.halted

    def strategy_reason(self) -> str:
        """What a strategy halted with its account says."""
        return f"account {self.account}: {self.halted}"
