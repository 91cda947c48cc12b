"""Risk rules: how big an entry may be, where its stop and target sit, how many may be open."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

from orchestrator.config import StrategyConfig
from orchestrator.loss_limits import LossLimits
from orchestrator.positions import PRICE_STEP, Side

QUANTITY_STEP = Decimal("0.00000001")
ZERO = Decimal(0)


class RiskRejected(Exception):
    """An entry the risk rules refuse; the message is shown to the user as the reason."""


class CapitalLimitHit(RiskRejected):
    """An entry that needs more capital than the strategy has available."""

    def __init__(self, needed: Decimal, available: Decimal) -> None:
        super().__init__(f"needs {needed:.2f} of capital, {max(available, ZERO):.2f} available")
        self.needed = needed
        self.available = available


def check_capital(needed: Decimal, available: Decimal) -> None:
    """Raise CapitalLimitHit when an entry needs more than the available capital."""
    if needed > available:
        raise CapitalLimitHit(needed, available)


@dataclass(frozen=True, slots=True)
class RiskRules:
    """Per-strategy limits, taken from the strategy's config."""

    position_size: Decimal
    stop_loss_pct: Decimal | None
    take_profit_pct: Decimal | None
    max_open_positions: int
    max_drawdown_pct: Decimal | None = None
    daily_loss_pct: Decimal | None = None
    max_gross_exposure: Decimal | None = None
    # Whether any limit can halt the strategy (otherwise there is nothing to check at each close); asked on
    # every candle, so worked out once.
    halts: bool = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "halts", any(
            limit is not None for limit in (self.max_drawdown_pct, self.daily_loss_pct, self.max_gross_exposure)))

    @classmethod
    def from_config(cls, config: StrategyConfig) -> "RiskRules":
        """The risk part of a strategy config."""
        return cls(
            config.position_size, config.stop_loss_pct, config.take_profit_pct, config.max_open_positions,
            config.max_drawdown_pct, config.daily_loss_pct, config.max_gross_exposure,
        )

    def halt_reason(self, equity: Decimal, peak: Decimal, day_start: Decimal, exposure: Decimal) -> str | None:
        """Why a strategy at `equity` (its peak, its equity when the UTC day began, its open notional) must
        stop entering, or None while it is within its limits."""
        reason = LossLimits(self.max_drawdown_pct, self.daily_loss_pct).breach(equity, peak, day_start)
        if reason is not None:
            return reason
        if self.max_gross_exposure is not None and equity > 0 and exposure / equity > self.max_gross_exposure:
            return f"gross exposure {exposure / equity:.2f}x equity is over the limit of {self.max_gross_exposure}x"
        return None

    def check_exposure(self, equity: Decimal, exposure: Decimal, added: Decimal) -> None:
        """Raise RiskRejected when an entry adding `added` notional would take gross exposure over the limit."""
        if self.max_gross_exposure is not None and equity > 0 and (exposure + added) / equity > self.max_gross_exposure:
            raise RiskRejected(
                f"gross exposure would be {(exposure + added) / equity:.2f}x equity, over the limit of {self.max_gross_exposure}x"
            )

    def entry_quantity(self, equity: Decimal, price: Decimal, open_count: int) -> Decimal:
        """Quantity for a new entry: `position_size` of equity at `price`, rounded down.

        Raises RiskRejected when the strategy already holds its maximum or equity is gone.
        """
        if open_count >= self.max_open_positions:
            raise RiskRejected(f"{open_count} of at most {self.max_open_positions} positions already open or pending")
        if equity <= 0:
            raise RiskRejected(f"equity is {equity}: nothing left to risk")
        quantity = (equity * self.position_size / price).quantize(QUANTITY_STEP, rounding=ROUND_DOWN)
        if quantity <= 0:
            raise RiskRejected(f"{self.position_size} of equity {equity} buys nothing at {price}")
        return quantity

    def protective_prices(self, side: Side, entry_price: Decimal) -> tuple[Decimal | None, Decimal | None]:
        """Stop-loss and take-profit prices for a position entered at `entry_price`."""
        sign = side.sign
        stop = target = None
        if self.stop_loss_pct is not None:
            stop = (entry_price * (1 - sign * self.stop_loss_pct)).quantize(PRICE_STEP)
        if self.take_profit_pct is not None:
            target = (entry_price * (1 + sign * self.take_profit_pct)).quantize(PRICE_STEP)
        return stop, target
