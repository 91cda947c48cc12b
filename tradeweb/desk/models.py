"""What the desk stores: strategies and everything they own, keyed and indexed by strategy."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, slug_re
from django.db import models

from orchestrator.candles import SYMBOL_LENGTH, TIMEFRAMES
from orchestrator.market_rules import DEFAULT_MAX_MOVE
from orchestrator.config import InvalidConfig, config_to_json
from orchestrator.engine import skipped_to
from orchestrator.events import decimal_text
from strategies import STRATEGIES, parse_strategy_config


def money_field(**kwargs) -> models.DecimalField:
    """Money and quantities: ten decimal places, as the core keeps them."""
    return models.DecimalField(max_digits=30, decimal_places=10, **kwargs)


def is_strategy_id(value: str) -> bool:
    """Whether untrusted text can be a strategy id at all: a slug no longer than the field, checked
    before it reaches a query or a reply."""
    return len(value) <= Strategy._meta.get_field("strategy_id").max_length and slug_re.fullmatch(value) is not None


class Market(models.Model):
    """A market (symbol and timeframe) the desk takes candles for, with the rule its data must pass.

    Candles of any other market are rejected. Saving a strategy registers its market.
    """

    symbol = models.CharField(max_length=SYMBOL_LENGTH)
    timeframe = models.CharField(max_length=8, choices=[(tf, tf) for tf in TIMEFRAMES], default="1m")
    max_move = models.DecimalField(
        max_digits=8, decimal_places=4, default=DEFAULT_MAX_MOVE,
        validators=[MinValueValidator(Decimal("0.0001")), MaxValueValidator(Decimal("100"))],
        help_text="Largest move of any price of a candle against the previous close, as a fraction "
                  "(0.5 = 50%); a candle beyond it is rejected as bad data.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["symbol", "timeframe"]
        constraints = [models.UniqueConstraint(fields=["symbol", "timeframe"], name="market_symbol_timeframe")]

    def __str__(self) -> str:
        return f"{self.symbol} {self.timeframe}"


class Slot(models.Model):
    """Where strategies trade: an account (paper accounts are named) and a symbol. In an exclusive slot at
    most one strategy is active (activating one switches the other out); in a shared one, any number.
    Saving a strategy registers its slot, shared until an operator makes it exclusive."""

    account = models.CharField(max_length=64, default="paper")
    symbol = models.CharField(max_length=SYMBOL_LENGTH)
    exclusive = models.BooleanField(
        default=False, help_text="At most one active strategy: activating one switches the active one out."
    )

    class Meta:
        ordering = ["account", "symbol"]
        constraints = [models.UniqueConstraint(fields=["account", "symbol"], name="slot_account_symbol")]

    def __str__(self) -> str:
        return f"{self.account} · {self.symbol}{' (exclusive)' if self.exclusive else ''}"


class AccountLimit(models.Model):
    """Loss limits across every strategy of an account (their equity summed), and how the account stands
    against them. A breach halts the account: each of its strategies stops entering (exits still managed)
    at its next candle, with its own RISK_HALTED event, until a user resumes the account."""

    account = models.CharField(max_length=64, unique=True)
    max_drawdown_pct = models.DecimalField(
        max_digits=8, decimal_places=6, null=True, blank=True,
        validators=[MinValueValidator(Decimal("0.000001")), MaxValueValidator(Decimal("1"))],
        help_text="Drawdown of the account's equity from its peak that halts it, as a fraction (0.1 = 10%); empty: none.",
    )
    daily_loss_pct = models.DecimalField(
        max_digits=8, decimal_places=6, null=True, blank=True,
        validators=[MinValueValidator(Decimal("0.000001")), MaxValueValidator(Decimal("1"))],
        help_text="Loss of the account's equity since the UTC day began that halts it, as a fraction; empty: none.",
    )
    marks = models.JSONField(default=dict, blank=True, editable=False, help_text="Peak and day-start equity so far.")
    halted_reason = models.TextField(blank=True, editable=False)
    halted_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["account"]

    def __str__(self) -> str:
        return f"limits of account {self.account}"


class Strategy(models.Model):
    """A strategy instance: which class, on which market, with which config, and how it stands."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        DRAINING = "draining", "Draining"  # switched out or off with positions open: exits only, dormant once flat
        DORMANT = "dormant", "Dormant"
        ERROR = "error", "Error"

    class WindDown(models.TextChoices):
        DRAIN = "drain", "Keep managing exits until flat"
        CLOSE = "close", "Close at market on the next candle"

    class Mode(models.TextChoices):
        PAPER = "paper", "Paper"
        LIVE = "live", "Live"

    strategy_id = models.SlugField(max_length=64, unique=True, help_text="Stable id; every row and event carries it.")
    name = models.CharField(max_length=120)
    strategy_class = models.CharField(max_length=64, choices=[(name, name) for name in STRATEGIES])
    config = models.JSONField(default=dict, blank=True, help_text="Settings checked against the strategy's schema.")
    symbol = models.CharField(max_length=SYMBOL_LENGTH)
    timeframe = models.CharField(max_length=8, choices=[(tf, tf) for tf in TIMEFRAMES], default="1m")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DORMANT, db_index=True)
    wind_down = models.CharField(
        max_length=8, choices=WindDown.choices, default=WindDown.DRAIN,
        help_text="What becomes of its open positions when it is switched out or off: no new entry either way.",
    )
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.PAPER)
    account = models.CharField(max_length=64, default="paper", help_text="With the symbol, the strategy's slot.")
    capital = money_field(default=Decimal("10000"), validators=[MinValueValidator(Decimal("0.01"))])
    config_version = models.PositiveIntegerField(default=1, editable=False)
    last_candle_time = models.DateTimeField(null=True, blank=True, editable=False)
    last_sequence = models.PositiveBigIntegerField(default=0, editable=False, help_text="Number of its last event.")
    last_close = models.DecimalField(max_digits=30, decimal_places=10, null=True, blank=True, editable=False)
    equity = money_field(null=True, blank=True, editable=False)
    realized_pnl = money_field(default=Decimal(0), editable=False)
    unrealized_pnl = money_field(default=Decimal(0), editable=False)
    last_error = models.TextField(blank=True, editable=False)
    last_worker = models.CharField(
        max_length=255, blank=True, editable=False, help_text="The worker process that processed its last candle."
    )
    snapshot = models.JSONField(
        null=True, blank=True, editable=False,
        help_text="The orchestrator's memory after its last candle (indicators, the strategy's own state), "
                  "written with it, so that a rebuild continues exactly.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["strategy_id"]
        indexes = [models.Index(fields=["symbol", "timeframe", "status"], name="strategy_market_status")]
        permissions = [("control_strategy", "Can activate and deactivate strategies")]
        verbose_name_plural = "strategies"

    def __str__(self) -> str:
        return f"{self.name} ({self.strategy_id})"

    @property
    def halted_reason(self) -> str:
        """Why its risk limits halted it (no new entries), as its last candle left it; empty if they did not."""
        return ((self.snapshot or {}).get("risk") or {}).get("halted") or ""

    @property
    def halted_with_account(self) -> bool:
        """Whether its account's limits halted it (it resumes with its account, not on its own)."""
        return self.halted_reason.startswith(f"account {self.account}: ")

    def clean(self) -> None:
        """Validate the config against the strategy class's schema and store it normalised; refuse a new market
        or class while the strategy still holds an open position or a pending order."""
        if self.strategy_class not in STRATEGIES:
            raise ValidationError({"strategy_class": f"Unknown strategy; choose one of {', '.join(STRATEGIES)}."})
        if self.mode == self.Mode.LIVE:
            # Refused rather than silently paper-traded: a user choosing live must not believe orders go out.
            raise ValidationError({"mode": "Live trading needs an exchange account, which this desk cannot use yet; choose paper."})
        stored = (
            Strategy.objects.filter(pk=self.pk).values("strategy_id", "symbol", "timeframe", "strategy_class").first()
            if self.pk is not None else None
        )
        changed = [field for field in ("symbol", "timeframe", "strategy_class") if stored and getattr(self, field) != stored[field]]
        if changed:
            # The rebuilt orchestrator knows nothing of what the old one holds: it fails on the old market's
            # position (KeyError on its symbol) and the position is left without its stop.
            open_positions = Position.objects.filter(strategy_id=stored["strategy_id"], closed_at__isnull=True).count()
            pending_orders = Order.objects.filter(strategy_id=stored["strategy_id"], status=Order.Status.PENDING).count()
            if open_positions or pending_orders:
                reason = (
                    f"Cannot change while the strategy holds {open_positions} open position{'' if open_positions == 1 else 's'}"
                    f" and {pending_orders} pending order{'' if pending_orders == 1 else 's'}; close them or wait until it is flat."
                )
                raise ValidationError({field: reason for field in changed})
        try:
            parsed = parse_strategy_config(self.strategy_class, self.config)
        except InvalidConfig as invalid:
            raise ValidationError({"config": [f"{field}: {message}" for field, message in invalid.errors.items()]})
        self.config = config_to_json(parsed)

    def versioned_settings(self) -> dict:
        """The settings a config version holds, as JSON: a change to any of them is a new version."""
        return {
            "strategy_class": self.strategy_class,
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "capital": decimal_text(self.capital),
            "config": dict(self.config),
        }

    def save(self, *args, **kwargs) -> None:
        adding = self._state.adding
        if adding and self.status == self.Status.ACTIVE:
            self.resume_at_market()
        super().save(*args, **kwargs)
        if adding:
            ConfigVersion.objects.create(strategy=self, version=self.config_version, saved=self.versioned_settings())
        update_fields = kwargs.get("update_fields")
        if update_fields is None or {"symbol", "timeframe"} & set(update_fields):
            # The strategy's market becomes a known market: its candles are accepted from now on.
            Market.objects.get_or_create(symbol=self.symbol, timeframe=self.timeframe)
        if update_fields is None or {"symbol", "account"} & set(update_fields):
            Slot.objects.get_or_create(account=self.account, symbol=self.symbol)

    def resume_at_market(self) -> list[str]:
        """Start (again) from the newest stored candle of the market: a strategy that was off does not
        trade the candles it missed; its indicators warm up on them instead, and its risk state stays.
        Returns the changed fields."""
        return self.resume_at(self.newest_candle_time())

    def resume_at(self, newest: datetime | None) -> list[str]:
        """Start (again) from `newest`, the time of its market's newest stored candle (see `resume_at_market`)."""
        if newest is None or (self.last_candle_time is not None and newest <= self.last_candle_time):
            return []
        self.last_candle_time = newest
        # Its risk state (a halt above all) goes on; its indicators warm up on the candles it skips.
        self.snapshot = skipped_to(self.snapshot, newest)
        return ["last_candle_time", "snapshot"]

    def start_at_new_market(self) -> list[str]:
        """After its symbol or timeframe changed: it takes the candle after the new market's newest stored one (its
        first, with none stored), never waits for the old market's chain to go on there. Returns the changed fields."""
        self.last_candle_time = self.newest_candle_time()
        return ["last_candle_time"]

    def newest_candle_time(self) -> datetime | None:
        """The time of its market's newest stored candle, if any."""
        return (
            Candle.objects.filter(symbol=self.symbol, timeframe=self.timeframe)
            .order_by("-time").values_list("time", flat=True).first()
        )

    @property
    def current_equity(self) -> Decimal:
        """Equity after the last candle, or the capital before the first one."""
        return self.equity if self.equity is not None else self.capital

    @property
    def total_pnl(self) -> Decimal:
        """Realized plus unrealized P&L."""
        return self.realized_pnl + self.unrealized_pnl



# The statuses whose strategies take their market's candles: an active one trades, a draining one only exits.
TAKING_CANDLES = (Strategy.Status.ACTIVE, Strategy.Status.DRAINING)

class StrategyOwned(models.Model):
    """A row that belongs to exactly one strategy."""

    # PROTECT: these rows are the desk's ledger; deleting a strategy must never take them with it.
    strategy = models.ForeignKey(Strategy, on_delete=models.PROTECT, to_field="strategy_id", db_column="strategy_id")

    class Meta:
        abstract = True


class Position(StrategyOwned):
    """A position as the core's PositionBook left it after its last change."""

    position_id = models.CharField(max_length=128, unique=True)
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=8)
    quantity = money_field(help_text="Quantity still open.")
    initial_quantity = money_field()
    entry_price = money_field()
    entry_fee = money_field(help_text="Opening fee not yet charged to realized P&L.")
    stop_price = money_field(null=True, blank=True)
    take_profit_price = money_field(null=True, blank=True)
    realized_pnl = money_field(default=Decimal(0))
    fees = money_field(default=Decimal(0))
    exit_value = money_field(default=Decimal(0))
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at"]
        indexes = [models.Index(fields=["strategy", "closed_at"], name="position_strategy_open")]

    def __str__(self) -> str:
        return self.position_id

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    @property
    def exit_price(self) -> Decimal | None:
        closed = self.initial_quantity - self.quantity
        return self.exit_value / closed if closed else None


class Order(StrategyOwned):
    """A market order the strategy sent; pending until the next candle's open fills it."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        FILLED = "filled", "Filled"
        CANCELLED = "cancelled", "Cancelled"

    order_id = models.CharField(max_length=128, unique=True)
    symbol = models.CharField(max_length=32)
    intent = models.CharField(max_length=8)
    position_side = models.CharField(max_length=8)
    position_id = models.CharField(max_length=128)
    quantity = money_field()
    reason = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["strategy", "status"], name="order_strategy_status")]

    def __str__(self) -> str:
        return self.order_id


class Fill(StrategyOwned):
    """An executed order: a trade."""

    order_id = models.CharField(max_length=128, unique=True)
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=4)
    intent = models.CharField(max_length=8)
    position_id = models.CharField(max_length=128)
    quantity = money_field()
    price = money_field()
    fee = money_field()
    trigger = models.CharField(max_length=16)
    time = models.DateTimeField()

    class Meta:
        ordering = ["-time", "-id"]
        indexes = [
            models.Index(fields=["strategy", "-time"], name="fill_strategy_time"),
            # A trade's closing fill, looked up per position for its exit reason on the P&L page.
            models.Index(fields=["strategy", "position_id"], name="fill_strategy_position"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} {self.symbol} @ {self.price}"


class JournalEntry(StrategyOwned):
    """A line of the strategy's journal."""

    time = models.DateTimeField()
    kind = models.CharField(max_length=16)
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-time", "-id"]
        indexes = [models.Index(fields=["strategy", "-time"], name="journal_strategy_time")]
        verbose_name_plural = "journal entries"

    def __str__(self) -> str:
        return self.message


class Event(models.Model):
    """A stored event; `strategy_id` is blank only for system events."""

    strategy_id = models.CharField(max_length=64, blank=True)
    sequence = models.PositiveBigIntegerField()
    type = models.CharField(max_length=32)
    symbol = models.CharField(max_length=32, blank=True)
    time = models.DateTimeField(help_text="Market time of the candle that caused it; wall time for control events.")
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["strategy_id", "-id"], name="event_strategy_recent"),
            # A dormant strategy's last switch-off, told on its card: found at once, not by reading back through
            # every event it ever had; only those events are indexed, so other writes pay nothing for it.
            models.Index(
                fields=["strategy_id", "-id"], condition=models.Q(type="STRATEGY_DEACTIVATED"),
                name="event_strategy_deactivated",
            ),
            # The feed's filter by kind: the newest events of a few types, found without reading the others.
            models.Index(fields=["type", "-id"], name="event_type_recent"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["strategy_id", "sequence"], condition=~models.Q(strategy_id=""), name="event_strategy_sequence"
            )
        ]

    def __str__(self) -> str:
        return f"{self.strategy_id or 'system'} #{self.sequence} {self.type}"

    def to_mapping(self) -> dict:
        """The wire format, identical to orchestrator.events.Event.to_mapping."""
        return {
            "type": self.type,
            "strategy_id": self.strategy_id,
            "symbol": self.symbol,
            "time": self.time.isoformat(),
            "sequence": self.sequence,
            "payload": self.payload,
        }


class Candle(models.Model):
    """A closed candle as the feed delivered it; one per (symbol, timeframe, time).

    `previous_time` links it to the candle before it in its market, so the candles of a market
    form one chain: a strategy takes the candle that follows the last one it processed.
    """

    symbol = models.CharField(max_length=32)
    timeframe = models.CharField(max_length=8)
    time = models.DateTimeField()
    previous_time = models.DateTimeField(null=True, blank=True, help_text="Time of the candle before it in its market.")
    received_at = models.DateTimeField(auto_now_add=True)
    open = money_field()
    high = money_field()
    low = money_field()
    close = money_field()
    volume = money_field(default=Decimal(0))

    class Meta:
        ordering = ["symbol", "timeframe", "time"]
        constraints = [
            models.UniqueConstraint(fields=["symbol", "timeframe", "time"], name="candle_market_time"),
            # One chain per market: no two candles follow the same one.
            models.UniqueConstraint(fields=["symbol", "timeframe", "previous_time"], name="candle_market_previous"),
        ]

    def __str__(self) -> str:
        return f"{self.symbol} {self.timeframe} {self.time.isoformat()}"


class ControlAction(StrategyOwned):
    """Who did what to a strategy, and when."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=32)
    detail = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["strategy", "-created_at"], name="control_strategy_time")]

    def __str__(self) -> str:
        return f"{self.user} {self.action} {self.strategy_id}"


class ConfigVersion(models.Model):
    """One saved version of a strategy's settings (class, market, capital, config): who saved it, and when.
    The highest version is the one in force; it applies from the strategy's next candle."""

    # Not ledger: the versions go with a strategy deleted before it traded (one that traded cannot be deleted).
    strategy = models.ForeignKey(Strategy, on_delete=models.CASCADE, to_field="strategy_id", db_column="strategy_id")
    version = models.PositiveIntegerField()
    saved = models.JSONField(help_text="The settings as saved: strategy_class, symbol, timeframe, capital and config.")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version"]
        constraints = [models.UniqueConstraint(fields=["strategy", "version"], name="config_version_per_strategy")]

    def __str__(self) -> str:
        return f"{self.strategy_id} v{self.version}"


class HistoryCheckpoint(models.Model):
    """A strategy's derived P&L history up to a candle, packed (`tradeweb.desk.history_checkpoints`): a web process
    that has not derived it yet loads it and derives only what came after. Not ledger: derived again when missing."""

    # The strategy's row (its primary key, not its id): a strategy created again under the same id has another.
    strategy = models.OneToOneField(Strategy, on_delete=models.CASCADE, primary_key=True,
                                    related_name="history_checkpoint")
    # With the row, what the history was derived from besides the ledger: another value of any makes it stale.
    strategy_created_at = models.DateTimeField()
    capital = money_field()
    symbol = models.CharField(max_length=SYMBOL_LENGTH)
    timeframe = models.CharField(max_length=8)
    through = models.DateTimeField(help_text="The last candle the packed history holds.")
    data = models.BinaryField(help_text="The packed history, in a format of its own version.")
    written_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"history of strategy {self.strategy_id} through {self.through.isoformat()}"


class BacktestRun(models.Model):
    """One backtest: what was asked, by whom, when, how far it got, and what came out for the portfolio. Not
    ledger: a run is a study, and its strategies need not exist on the desk.

    A run started from the desk is queued, then running (a worker reports its candles done out of the total), then
    done, failed (with its error) or cancelled; only a done run has results."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    request = models.JSONField(
        default=dict, blank=True,
        help_text="What was asked: strategies and weights, capital, period, fee and slippage (empty for a run "
                  "stored by manage.py backtest --save).",
    )
    spec = models.JSONField(default=dict, help_text="Capital, period and candle count, as run.")
    portfolio = models.JSONField(default=dict, help_text="The portfolio's metrics, cash and equity curve.")
    error = models.TextField(blank=True)
    task_id = models.CharField(max_length=64, blank=True, help_text="The Celery task that runs it.")
    candles_done = models.PositiveIntegerField(default=0)
    candles_total = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    attempt = models.PositiveIntegerField(
        default=0, help_text="How many times a worker took the run; only the latest attempt reports and stores.",
    )
    heard_at = models.DateTimeField(
        null=True, blank=True, help_text="When the attempt running it last reported: a run silent for long is taken over.",
    )
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"backtest {self.pk} ({self.status})"

    @property
    def ended(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED, self.Status.CANCELLED)

    def progress(self) -> dict:
        """How far it got, as the run page and the websocket show it (JSON)."""
        return {
            "run_id": self.pk, "status": self.status, "status_label": self.get_status_display(),
            "candles_done": self.candles_done, "candles_total": self.candles_total,
            "percent": round(100 * self.candles_done / self.candles_total, 1) if self.candles_total else 0,
            "cancel_requested": self.cancel_requested_at is not None, "error": self.error,
        }


class BacktestStrategyResult(models.Model):
    """One strategy's part of a stored backtest: its settings, metrics, every trade and its equity curve."""

    run = models.ForeignKey(BacktestRun, on_delete=models.CASCADE, related_name="strategies")
    strategy_id = models.CharField(max_length=64)
    result = models.JSONField()

    class Meta:
        ordering = ["run", "id"]
        constraints = [models.UniqueConstraint(fields=["run", "strategy_id"], name="backtest_result_per_strategy")]

    def __str__(self) -> str:
        return f"{self.strategy_id} in backtest {self.run_id}"
